// The forward weights of one recurrent cell packed once (PackedWeights), shared by the
// recurrent ops' bindings (recurrent_bindings.cpp: forward passes given packed=) and the
// packing and single-step bindings (packed_recurrent_bindings.cpp).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <type_traits>
#include <vector>

#include "bindings/arrays.h"
#include "cpu/aligned_vector.h"
#include "cpu/bfloat16.h"
#include "cpu/recurrent.h"

namespace fusedrnn {
namespace bindings {

// The cell options as the kernels take them, from the names the Python layer passes.
inline cpu::CellConfig make_config(const std::string& cell, const std::string& activation, bool reset_after) {
  cpu::CellConfig cfg;
  if (cell == "rnn") cfg.kind = cpu::CellKind::kRnn;
  else if (cell == "lstm") cfg.kind = cpu::CellKind::kLstm;
  else if (cell == "gru") cfg.kind = cpu::CellKind::kGru;
  else throw py::value_error("cell: expected 'rnn', 'lstm' or 'gru', got '" + cell + "'");
  if (activation == "tanh") cfg.activation = math::Activation::kTanh;
  else if (activation == "relu") cfg.activation = math::Activation::kRelu;
  else throw py::value_error("activation: expected 'tanh' or 'relu', got '" + activation + "'");
  cfg.reset_after = reset_after;
  return cfg;
}

// True when x holds int32 ids standing for one-hot rows (the kernel's dtype is then the op's).
inline bool is_ids(const py::array& x) { return has_dtype<int32_t>(x); }

// The forward weights of one cell packed once (cpu::pack_forward_weights), for the calls that
// pass it: they skip packing, and single steps run on the packed kernel instead of BLAS.
struct PackedWeights {
  cpu::CellConfig cfg;
  std::string cell;
  bool float64 = false;
  bool one_hot = false;
  int input_size = 0, units = 0;
  std::vector<cpu::AlignedVector<float>> f32;
  std::vector<cpu::AlignedVector<double>> f64;
  std::vector<cpu::AlignedVector<cpu::Bf16>> bf16;  // float32 weights kept in bfloat16 (instead of f32)

  size_t nbytes() const {
    size_t n = 0;
    for (const auto& v : f32) n += v.size() * sizeof(float);
    for (const auto& v : f64) n += v.size() * sizeof(double);
    for (const auto& v : bf16) n += v.size() * sizeof(cpu::Bf16);
    return n;
  }

  // Points `in` at the packed arrays, after checking that they were packed for this call.
  template <typename T>
  void attach(const cpu::CellConfig& call, cpu::SequenceInputs<T>& in) const {
    if (call.kind != cfg.kind || (cfg.kind == cpu::CellKind::kGru && call.reset_after != cfg.reset_after))
      throw py::value_error("packed: packed for another cell (" + cell + ")");
    if (float64 != std::is_same<T, double>::value) throw py::type_error("packed: packed for another dtype");
    if (in.input_size != input_size || in.units != units)
      throw py::value_error("packed: packed for other shapes (input_size " + std::to_string(input_size) + ", units " +
                            std::to_string(units) + ")");
    if (one_hot != (in.ids != nullptr))
      throw py::value_error(one_hot ? "packed: packed for one-hot ids, but x is dense"
                                    : "packed: packed for a dense input, but x holds one-hot ids");
    if constexpr (std::is_same<T, float>::value) {
      // bfloat16 weights serve every call that passes them (their products differ from float32's).
      for (size_t i = 0; i < bf16.size() && i < 2; ++i) in.packed_bf16[i] = bf16[i].data();
      if (!bf16.empty()) return;
    }
    if (in.steps == 1 && in.batch > cpu::kPackedStepBatch) return;  // BLAS is faster there
    const auto& arrays = storage<T>();
    for (size_t i = 0; i < arrays.size() && i < 2; ++i) in.packed[i] = arrays[i].data();
  }

  template <typename T>
  const std::vector<cpu::AlignedVector<T>>& storage() const {
    if constexpr (std::is_same<T, double>::value) return f64;
    else return f32;
  }
};

template <typename T>
void attach_packed(const py::object& packed, const cpu::CellConfig& cfg, cpu::SequenceInputs<T>& in) {
  if (packed.is_none()) return;
  if (!py::isinstance<PackedWeights>(packed))
    throw py::type_error("packed: expected the object returned by pack_recurrent_weights");
  packed.cast<const PackedWeights&>().attach(cfg, in);
}

}  // namespace bindings
}  // namespace fusedrnn
