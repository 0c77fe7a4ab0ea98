// Bindings of the packed forward weights of a recurrent cell (pack_recurrent_weights,
// PackedRecurrentWeights) and of the single step on them (RecurrentStepPlan), the call that
// decoders and samplers make once per time step. The step's Python wrapper
// (fusedrnn/ops/packed.py) leaves every check of its fast path to this file and runs its precise
// checks only when a call is refused here.
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/packed_recurrent.h"
#include "cpu/finite.h"
#include "cpu/recurrent.h"

namespace fusedrnn {
namespace bindings {
namespace {

template <typename T>
std::unique_ptr<PackedWeights> pack_impl(const cpu::CellConfig& cfg, const std::string& cell,
                                         const py::array& kernel, const py::array& recurrent, bool one_hot,
                                         bool bfloat16) {
  if (kernel.ndim() != 2 || recurrent.ndim() != 2 || recurrent.shape(1) % cfg.gates() != 0)
    throw py::value_error("kernel, recurrent_kernel: expected (input, gates*units) and (units, gates*units)");
  const py::ssize_t H = recurrent.shape(1) / cfg.gates(), I = kernel.shape(0);
  if (H < 1 || I < 1) throw py::value_error("kernel, recurrent_kernel: every dimension must be at least 1");
  const T* k = input_ptr<T>(kernel, "kernel", {I, H * cfg.gates()});
  const T* r = input_ptr<T>(recurrent, "recurrent_kernel", {H, H * cfg.gates()});
  auto p = std::make_unique<PackedWeights>();
  p->cfg = cfg;
  p->cell = cell;
  p->float64 = std::is_same<T, double>::value;
  p->one_hot = one_hot;
  p->input_size = static_cast<int>(I);
  p->units = static_cast<int>(H);
  {
    py::gil_scoped_release release;
    if constexpr (std::is_same<T, double>::value) {
      p->f64 = cpu::pack_forward_weights<T>(cfg, k, r, p->input_size, p->units, one_hot);
    } else if (bfloat16) {
      p->bf16 = cpu::pack_forward_weights_bf16(cfg, k, r, p->input_size, p->units, one_hot);
    } else {
      p->f32 = cpu::pack_forward_weights<T>(cfg, k, r, p->input_size, p->units, one_hot);
    }
  }
  return p;
}

// A (B, H) array of dtype T that the kernel writes: `given` when set (checked), else a new one.
template <typename T>
py::array_t<T> state_out(const py::object& given, const char* name, py::ssize_t B, py::ssize_t H) {
  if (given.is_none()) return new_array<T>({B, H});
  if (!has_dtype<T>(given)) throw py::type_error(std::string(name) + ": wrong dtype");
  auto a = py::reinterpret_borrow<py::array_t<T>>(given);  // no conversion: the dtype was checked
  input_ptr<T>(a, name, {B, H});
  if (!a.writeable()) throw py::value_error(std::string(name) + ": must be writeable");
  return a;
}

// One time step of a cell on weights packed once, with the weights, the bias and the cell's
// options bound when the plan is made: a call passes only x, the states and where the new states
// go, and the plan checks those (dtype, shape, layout, finiteness) without allocating.
class StepPlan {
 public:
  StepPlan(const py::object& packed, const py::array& kernel, const py::array& recurrent, const py::array& bias)
      : packed_(packed), kernel_(kernel), recurrent_(recurrent), bias_(bias) {
    if (!py::isinstance<PackedWeights>(packed))
      throw py::type_error("packed: expected the object returned by pack_recurrent_weights");
    weights_ = &packed.cast<const PackedWeights&>();
    if (weights_->float64) bind<double>();
    else bind<float>();
  }

  // x (B, I) floats, or int32 ids (B,) for weights packed for one-hot input; h, c (B, H) (c for
  // the LSTM only, else None); h_out, c_out: arrays to write the new states into (may be h and c)
  // or None for new ones. Returns (h_new, c_new or None).
  py::tuple operator()(const py::object& x, const py::object& h, const py::object& c, const py::object& h_out,
                       const py::object& c_out) const {
    return weights_->float64 ? run<double>(x, h, c, h_out, c_out) : run<float>(x, h, c, h_out, c_out);
  }

 private:
  // Checks the bound arrays once: the kernel's dtype and every shape against the packed copy.
  template <typename T>
  void bind() {
    const py::ssize_t I = weights_->input_size, H = weights_->units, GH = H * weights_->cfg.gates();
    kernel_ptr_ = input_ptr<T>(kernel_, "kernel", {I, GH});
    recurrent_ptr_ = input_ptr<T>(recurrent_, "recurrent_kernel", {H, GH});
    two_biases_ = weights_->cfg.kind == cpu::CellKind::kGru && weights_->cfg.reset_after;
    bias_ptr_ = two_biases_ ? input_ptr<T>(bias_, "bias", {2, GH}) : input_ptr<T>(bias_, "bias", {GH});
  }

  template <typename T>
  py::tuple run(const py::object& x, const py::object& h, const py::object& c, const py::object& h_out,
                const py::object& c_out) const {
    const PackedWeights& w = *weights_;
    const bool lstm = w.cfg.kind == cpu::CellKind::kLstm;
    cpu::SequenceInputs<T> in;
    in.steps = 1;
    in.input_size = w.input_size;
    in.units = w.units;
    in.gates = w.cfg.gates();
    const py::ssize_t I = in.input_size, H = in.units, GH = in.width();
    if (!py::isinstance<py::array>(x)) throw py::type_error("x: expected a NumPy array");
    const auto xa = py::reinterpret_borrow<py::array>(x);
    const py::ssize_t B = xa.ndim() >= 1 ? xa.shape(0) : 0;
    if (B < 1) throw py::value_error("x: the batch must hold at least one row");
    in.batch = static_cast<int>(B);
    if (w.one_hot) {
      in.ids = input_ptr<int32_t>(xa, "x", {B});
      for (py::ssize_t k = 0; k < B; ++k)  // the kernels index the weights with these
        if (in.ids[k] < 0 || in.ids[k] >= I) throw py::value_error("x: id out of range [0, vocabulary)");
    } else {
      in.x = input_ptr<T>(xa, "x", {B, I});
      if (!cpu::all_finite(in.x, static_cast<long>(B) * I)) throw py::value_error("x: contains NaN or inf");
    }
    in.h0 = optional_input_ptr<T>(h, "h", {B, H});
    if (in.h0 == nullptr) throw py::type_error("h: expected an array, got None");
    if (!cpu::all_finite(in.h0, static_cast<long>(B) * H)) throw py::value_error("h: contains NaN or inf");
    if (lstm) {
      in.c0 = optional_input_ptr<T>(c, "c", {B, H});
      if (in.c0 == nullptr) throw py::type_error("c: required for the LSTM");
      if (!cpu::all_finite(in.c0, static_cast<long>(B) * H)) throw py::value_error("c: contains NaN or inf");
    }
    in.kernel = static_cast<const T*>(kernel_ptr_);
    in.recurrent = static_cast<const T*>(recurrent_ptr_);
    in.bias = static_cast<const T*>(bias_ptr_);
    if (two_biases_) in.recurrent_bias = in.bias + GH;
    // The weights were checked when they were packed; the bias is read here, so checked here.
    if (!cpu::all_finite(in.bias, (two_biases_ ? 2 : 1) * GH)) throw py::value_error("bias: contains NaN or inf");
    w.attach(w.cfg, in);
    py::array_t<T> h_new = state_out<T>(h_out, "h_out", B, H);
    cpu::ForwardOutputs<T> out{nullptr, h_new.mutable_data(), nullptr};
    py::object c_new = py::none();
    if (lstm) {
      py::array_t<T> ca = state_out<T>(c_out, "c_out", B, H);
      out.c_last = ca.mutable_data();
      c_new = ca;
    }
    // The saved gates and states of the one step: work memory of the calling thread.
    static thread_local std::vector<T> work;
    work.resize(static_cast<size_t>(B) * (GH + 2 * H));
    cpu::SavedSequence<T> saved{work.data(), work.data() + B * GH, work.data() + B * (GH + H), 1};
    {
      py::gil_scoped_release release;
      cpu::recurrent_forward(w.cfg, in, saved, out);
    }
    return py::make_tuple(h_new, c_new);
  }

  py::object packed_;                       // keeps *weights_ alive
  py::array kernel_, recurrent_, bias_;     // keep the bound arrays alive
  const PackedWeights* weights_ = nullptr;
  const void* kernel_ptr_ = nullptr;
  const void* recurrent_ptr_ = nullptr;
  const void* bias_ptr_ = nullptr;
  bool two_biases_ = false;
};

}  // namespace

void register_packed_recurrent(py::module_& m) {
  py::class_<PackedWeights>(m, "PackedRecurrentWeights",
                            "Forward weights of one cell packed for the CPU kernels (pack_recurrent_weights).")
      .def_property_readonly("cell", [](const PackedWeights& p) { return p.cell; })
      .def_property_readonly("reset_after", [](const PackedWeights& p) { return p.cfg.reset_after; })
      .def_property_readonly("float64", [](const PackedWeights& p) { return p.float64; })
      .def_property_readonly("bfloat16", [](const PackedWeights& p) { return !p.bf16.empty(); })
      .def_property_readonly("one_hot", [](const PackedWeights& p) { return p.one_hot; })
      .def_property_readonly("input_size", [](const PackedWeights& p) { return p.input_size; })
      .def_property_readonly("units", [](const PackedWeights& p) { return p.units; })
      .def_property_readonly("nbytes", &PackedWeights::nbytes);
  m.def(
      "pack_recurrent_weights",
      [](const std::string& cell, const py::array& kernel, const py::array& recurrent, const std::string& activation,
         bool reset_after, bool one_hot, bool bfloat16) {
        const cpu::CellConfig cfg = make_config(cell, activation, reset_after);
        if (has_dtype<double>(kernel)) {
          if (bfloat16) throw py::type_error("kernel: bfloat16 packing takes float32 weights, got float64");
          return pack_impl<double>(cfg, cell, kernel, recurrent, one_hot, false);
        }
        if (has_dtype<float>(kernel))
          return pack_impl<float>(cfg, cell, kernel, recurrent, one_hot, bfloat16);
        throw py::type_error("kernel: expected float32 or float64");
      },
      py::arg("cell"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("activation"), py::arg("reset_after"),
      py::arg("one_hot"), py::arg("bfloat16") = false,
      "Packs the forward weights [kernel; recurrent_kernel] of a cell (only recurrent_kernel for one-hot ids) "
      "for recurrent_forward(packed=...) and RecurrentStepPlan; a copy: later changes to the arrays are not seen. "
      "bfloat16=True (float32 weights only) keeps them rounded to bfloat16, for inference: calls passing them "
      "widen them back to float32 as they load them and sum in float32; forward passes with keep_cache=True refuse them.");
  py::class_<StepPlan>(m, "RecurrentStepPlan",
                       "One time step of a cell on its packed weights (a PackedRecurrentWeights), with the "
                       "kernel, recurrent kernel and bias bound (and kept alive) when it is made: the kernel and "
                       "the recurrent kernel are read where the packed copy does not stand for them (more than "
                       "8 rows: BLAS; one-hot ids: the kernel's rows), the bias on every call. Call it with "
                       "(x, h, c, h_out, c_out).")
      .def(py::init<const py::object&, const py::array&, const py::array&, const py::array&>(), py::arg("packed"),
           py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"))
      .def("__call__", &StepPlan::operator(), py::arg("x"), py::arg("h"), py::arg("c"), py::arg("h_out"),
           py::arg("c_out"),
           "One step: x (B, I) (int32 ids (B,) for one-hot weights), h and c (B, H) (c None but for the "
           "LSTM) -> (h_new, c_new or None), written into h_out and c_out (new arrays when None; they may be "
           "h and c themselves).");
}

}  // namespace bindings
}  // namespace fusedrnn
