// Bindings of the recurrent kernels: recurrent_forward / recurrent_backward /
// recurrent_weight_grads for every cell, float32 and float64 (packed weights and the single step:
// packed_recurrent_bindings.cpp). Arguments are validated in fusedrnn/ops/recurrent.py.
#include <algorithm>
#include <string>

#include "bindings/arrays.h"
#include "bindings/packed_recurrent.h"
#include "cpu/recurrent.h"

namespace fusedrnn {
namespace bindings {
namespace {

// Reads the shared arguments of forward and backward into SequenceInputs. h0 None (with c0
// None): no initial states, the units from the recurrent kernel (recurrent_weight_grads).
template <typename T>
cpu::SequenceInputs<T> sequence_inputs(const cpu::CellConfig& cfg, const py::array& x, const py::object& h0,
                                       const py::object& c0, const py::array& kernel,
                                       const py::array& recurrent, const py::array& bias,
                                       const py::object& mask, const py::object& dropout,
                                       const py::object& recurrent_dropout, bool go_backwards) {
  cpu::SequenceInputs<T> in;
  const bool one_hot = is_ids(x);
  if (one_hot) {
    if (x.ndim() != 2) throw py::value_error("x: expected a 2-D array of int32 ids (batch, time)");
    if (kernel.ndim() != 2) throw py::value_error("kernel: expected a 2-D array (vocabulary, gates*units)");
    in.input_size = static_cast<int>(kernel.shape(0));
  } else {
    if (x.ndim() != 3) throw py::value_error("x: expected a 3-D array (batch, time, features)");
    in.input_size = static_cast<int>(x.shape(2));
  }
  in.batch = static_cast<int>(x.shape(0));
  in.steps = static_cast<int>(x.shape(1));
  const bool states = !h0.is_none();
  if (states) {
    const py::array h = h0.cast<py::array>();
    if (h.ndim() != 2) throw py::value_error("h0: expected a 2-D array (batch, units)");
    in.units = static_cast<int>(h.shape(1));
  } else {
    if (recurrent.ndim() != 2) throw py::value_error("recurrent_kernel: expected a 2-D array (units, gates*units)");
    in.units = static_cast<int>(recurrent.shape(0));
  }
  in.gates = cfg.gates();
  if (in.batch < 1 || in.steps < 1 || in.input_size < 1 || in.units < 1)
    throw py::value_error("x, h0: every dimension must be at least 1");
  const py::ssize_t B = in.batch, S = in.steps, I = in.input_size, H = in.units, GH = in.width();
  if (one_hot) {
    in.ids = input_ptr<int32_t>(x, "x", {B, S});
    for (py::ssize_t k = 0; k < B * S; ++k)  // the kernels index the weights with these
      if (in.ids[k] < 0 || in.ids[k] >= I) throw py::value_error("x: id out of range [0, vocabulary)");
  } else {
    in.x = input_ptr<T>(x, "x", {B, S, I});
  }
  if (states) in.h0 = input_ptr<T>(h0.cast<py::array>(), "h0", {B, H});
  if (states && cfg.kind == cpu::CellKind::kLstm) {
    if (c0.is_none()) throw py::value_error("c0: required for the LSTM");
    in.c0 = input_ptr<T>(c0.cast<py::array>(), "c0", {B, H});
  }
  in.kernel = input_ptr<T>(kernel, "kernel", {I, GH});
  in.recurrent = input_ptr<T>(recurrent, "recurrent_kernel", {H, GH});
  if (cfg.kind == cpu::CellKind::kGru && cfg.reset_after) {
    const T* b = input_ptr<T>(bias, "bias", {2, GH});
    in.bias = b;
    in.recurrent_bias = b + GH;
  } else {
    in.bias = input_ptr<T>(bias, "bias", {GH});
  }
  if (!mask.is_none()) in.mask = input_ptr<uint8_t>(mask.cast<py::array>(), "mask", {B, S});
  if (!dropout.is_none()) {
    const py::array d = dropout.cast<py::array>();
    in.n_dropout = d.ndim() == 3 ? static_cast<int>(d.shape(0)) : 0;
    if (in.n_dropout != 1 && in.n_dropout != in.gates)
      throw py::value_error("dropout_mask: expected shape (1 or gates, batch, features)");
    in.dropout = input_ptr<T>(d, "dropout_mask", {in.n_dropout, B, I});
  }
  if (!recurrent_dropout.is_none()) {
    const py::array d = recurrent_dropout.cast<py::array>();
    in.n_recurrent_dropout = d.ndim() == 3 ? static_cast<int>(d.shape(0)) : 0;
    if (in.n_recurrent_dropout != 1 && in.n_recurrent_dropout != in.gates)
      throw py::value_error("recurrent_dropout_mask: expected shape (1 or gates, batch, units)");
    in.recurrent_dropout = input_ptr<T>(d, "recurrent_dropout_mask", {in.n_recurrent_dropout, B, H});
  }
  in.go_backwards = go_backwards;
  return in;
}

bool has_aux(const cpu::CellConfig& cfg) { return cfg.kind != cpu::CellKind::kRnn; }

template <typename T>
py::tuple forward_impl(const cpu::CellConfig& cfg, const py::array& x, const py::array& h0, const py::object& c0,
                       const py::array& kernel, const py::array& recurrent, const py::array& bias,
                       const py::object& mask, const py::object& dropout, const py::object& recurrent_dropout,
                       bool go_backwards, bool keep_cache, const py::object& packed) {
  cpu::SequenceInputs<T> in =
      sequence_inputs<T>(cfg, x, h0, c0, kernel, recurrent, bias, mask, dropout, recurrent_dropout, go_backwards);
  attach_packed(packed, cfg, in);
  if (keep_cache && in.packed_bf16[0] != nullptr)
    throw py::value_error("packed: bfloat16 weights are for inference only (keep_cache=False)");
  const py::ssize_t B = in.batch, S = in.steps, H = in.units, GH = in.width();
  py::array_t<T> outputs = new_array<T>({B, S, H}), h_last = new_array<T>({B, H});
  py::object c_last = py::none();
  // Without a cache the saved buffers keep two steps (the previous one and the current one).
  const py::ssize_t slots = keep_cache ? S : std::min<py::ssize_t>(S, 2);
  py::array_t<T> gates = new_array<T>({B, slots, GH}), hprev = new_array<T>({B, slots, H});
  py::object aux = py::none();
  cpu::SavedSequence<T> saved{gates.mutable_data(), hprev.mutable_data(), nullptr, static_cast<int>(slots)};
  cpu::ForwardOutputs<T> out{outputs.mutable_data(), h_last.mutable_data(), nullptr};
  if (has_aux(cfg)) {
    py::array_t<T> a = new_array<T>({B, slots, H});
    saved.aux = a.mutable_data();
    aux = a;
  }
  if (cfg.kind == cpu::CellKind::kLstm) {
    py::array_t<T> c = new_array<T>({B, H});
    out.c_last = c.mutable_data();
    c_last = c;
  }
  {
    py::gil_scoped_release release;
    cpu::recurrent_forward(cfg, in, saved, out);
  }
  if (!keep_cache) return py::make_tuple(outputs, h_last, c_last, py::none(), py::none(), py::none());
  return py::make_tuple(outputs, h_last, c_last, gates, hprev, aux);
}

template <typename T>
py::tuple backward_impl(const cpu::CellConfig& cfg, const py::array& x, const py::array& h0, const py::object& c0,
                        const py::array& kernel, const py::array& recurrent, const py::array& bias,
                        const py::object& mask, const py::object& dropout, const py::object& recurrent_dropout,
                        bool go_backwards, const py::array& gates, const py::array& hprev, const py::object& aux,
                        const py::object& d_outputs, const py::object& d_h_last, const py::object& d_c_last,
                        bool gate_major, bool defer_weight_grads) {
  const cpu::SequenceInputs<T> in =
      sequence_inputs<T>(cfg, x, h0, c0, kernel, recurrent, bias, mask, dropout, recurrent_dropout, go_backwards);
  const py::ssize_t B = in.batch, S = in.steps, I = in.input_size, H = in.units, GH = in.width();
  // The saved buffers are only read; the kernel signature is shared with the forward pass.
  cpu::SavedSequence<T> saved{const_cast<T*>(input_ptr<T>(gates, "cache.gates", {B, S, GH})),
                              const_cast<T*>(input_ptr<T>(hprev, "cache.hprev", {B, S, H})), nullptr,
                              static_cast<int>(S)};
  if (has_aux(cfg)) saved.aux = const_cast<T*>(optional_input_ptr<T>(aux, "cache.aux", {B, S, H}));
  if (has_aux(cfg) && saved.aux == nullptr) throw py::value_error("cache.aux: missing");
  cpu::IncomingGrads<T> incoming{optional_input_ptr<T>(d_outputs, "d_outputs", {B, S, H}),
                                 optional_input_ptr<T>(d_h_last, "d_h_last", {B, H}), nullptr};
  if (cfg.kind == cpu::CellKind::kLstm) incoming.d_c_last = optional_input_ptr<T>(d_c_last, "d_c_last", {B, H});

  const bool two_biases = cfg.kind == cpu::CellKind::kGru && cfg.reset_after;
  py::object dx = py::none();
  T* dx_data = nullptr;
  if (in.ids == nullptr) {
    py::array_t<T> a = new_array<T>({B, S, I});
    dx_data = a.mutable_data();
    dx = a;
  }
  py::array_t<T> dh0 = new_array<T>({B, H});
  py::object dc0 = py::none();
  cpu::SequenceGrads<T> grads{dx_data, dh0.mutable_data()};
  grads.gate_major = gate_major;
  if (cfg.kind == cpu::CellKind::kLstm) {
    py::array_t<T> d = new_array<T>({B, H});
    grads.dc0 = d.mutable_data();
    dc0 = d;
  }
  py::object w1 = py::none(), w2 = py::none(), w3 = py::none();  // the weight gradients, or the gate gradients
  if (defer_weight_grads) {
    py::array_t<T> dgates = new_array<T>({B, S, GH});
    grads.dgates = dgates.mutable_data();
    w1 = dgates;
    if (two_biases) {
      py::array_t<T> drec = new_array<T>({B, S, GH});
      grads.drecurrent_gates = drec.mutable_data();
      w2 = drec;
    }
  } else {
    py::array_t<T> dkernel = gate_major ? new_array<T>({GH, I}) : new_array<T>({I, GH});
    py::array_t<T> drecurrent = gate_major ? new_array<T>({GH, H}) : new_array<T>({H, GH});
    py::array_t<T> dbias = two_biases ? new_array<T>({2, GH}) : new_array<T>({GH});
    grads.dkernel = dkernel.mutable_data();
    grads.drecurrent = drecurrent.mutable_data();
    grads.dbias = dbias.mutable_data();
    grads.drecurrent_bias = two_biases ? dbias.mutable_data() + GH : nullptr;
    w1 = dkernel, w2 = drecurrent, w3 = dbias;
  }
  {
    py::gil_scoped_release release;
    cpu::recurrent_backward(cfg, in, saved, incoming, grads);
  }
  return py::make_tuple(dx, dh0, dc0, w1, w2, w3);
}

template <typename T>
py::tuple weight_grads_impl(const cpu::CellConfig& cfg, const py::array& x, const py::array& kernel,
                            const py::array& recurrent, const py::array& bias, const py::object& dropout,
                            const py::object& recurrent_dropout, const py::array& hprev, const py::object& aux,
                            const py::array& dgates, const py::object& drecurrent_gates, bool gate_major) {
  const cpu::SequenceInputs<T> in = sequence_inputs<T>(cfg, x, py::none(), py::none(), kernel, recurrent, bias,
                                                       py::none(), dropout, recurrent_dropout, false);
  const py::ssize_t B = in.batch, S = in.steps, I = in.input_size, H = in.units, GH = in.width();
  cpu::SavedSequence<T> saved{nullptr, const_cast<T*>(input_ptr<T>(hprev, "hprev", {B, S, H})), nullptr,
                              static_cast<int>(S)};
  const bool gru_before = cfg.kind == cpu::CellKind::kGru && !cfg.reset_after;
  if (gru_before) saved.aux = const_cast<T*>(optional_input_ptr<T>(aux, "aux", {B, S, H}));
  if (gru_before && saved.aux == nullptr) throw py::value_error("aux: required for the GRU with reset_after=False");
  const T* dg = input_ptr<T>(dgates, "d_gates", {B, S, GH});
  const bool two_biases = cfg.kind == cpu::CellKind::kGru && cfg.reset_after;
  const T* drg = two_biases ? optional_input_ptr<T>(drecurrent_gates, "d_recurrent_gates", {B, S, GH}) : nullptr;
  if (two_biases && drg == nullptr) throw py::value_error("d_recurrent_gates: required for the GRU with reset_after=True");
  py::array_t<T> dkernel = gate_major ? new_array<T>({GH, I}) : new_array<T>({I, GH});
  py::array_t<T> drecurrent = gate_major ? new_array<T>({GH, H}) : new_array<T>({H, GH});
  py::array_t<T> dbias = two_biases ? new_array<T>({2, GH}) : new_array<T>({GH});
  cpu::SequenceGrads<T> grads{nullptr, nullptr, nullptr, dkernel.mutable_data(), drecurrent.mutable_data(),
                              dbias.mutable_data(), two_biases ? dbias.mutable_data() + GH : nullptr, gate_major};
  {
    py::gil_scoped_release release;
    cpu::recurrent_weight_grads(cfg, in, saved, dg, drg, grads);
  }
  return py::make_tuple(dkernel, drecurrent, dbias);
}

// The op's dtype: x's, or the kernel's when x holds one-hot ids.
bool is_float64(const py::array& x, const py::array& kernel) {
  const py::array& a = is_ids(x) ? kernel : x;
  if (has_dtype<double>(a)) return true;
  if (has_dtype<float>(a)) return false;
  throw py::type_error(is_ids(x) ? "kernel: expected float32 or float64" : "x: expected float32 or float64");
}

}  // namespace

void register_recurrent(py::module_& m) {
  m.def(
      "recurrent_forward",
      [](const std::string& cell, const py::array& x, const py::array& h0, const py::object& c0,
         const py::array& kernel, const py::array& recurrent, const py::array& bias, const py::object& mask,
         const py::object& dropout, const py::object& recurrent_dropout, bool go_backwards,
         const std::string& activation, bool reset_after, bool keep_cache, const py::object& packed) {
        const cpu::CellConfig cfg = make_config(cell, activation, reset_after);
        return is_float64(x, kernel) ? forward_impl<double>(cfg, x, h0, c0, kernel, recurrent, bias, mask, dropout,
                                                    recurrent_dropout, go_backwards, keep_cache, packed)
                             : forward_impl<float>(cfg, x, h0, c0, kernel, recurrent, bias, mask, dropout,
                                                   recurrent_dropout, go_backwards, keep_cache, packed);
      },
      py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
      py::arg("bias"), py::arg("mask"), py::arg("dropout_mask"), py::arg("recurrent_dropout_mask"),
      py::arg("go_backwards"), py::arg("activation"), py::arg("reset_after"), py::arg("keep_cache") = true,
      py::arg("packed") = py::none(),
      "Fused forward pass over a whole sequence. Returns (outputs, h_last, c_last, gates, hprev, aux); the last "
      "three are None with keep_cache=False (a forward pass that no backward pass will follow). `packed`: the "
      "weights as pack_recurrent_weights packed them (then kernel and recurrent_kernel are not read again, but "
      "for one-hot ids the kernel's rows).");

  m.def("set_project_inputs_batch", &cpu::set_project_inputs_batch, py::arg("n"),
        "Benchmark/test hook: forward passes of at most n sequences (default 2, most 8; 0: none) project the "
        "inputs of all steps before the time loop.");
  m.def("get_project_inputs_batch", &cpu::project_inputs_batch);
  m.def("set_weight_grads_blas", &cpu::set_weight_grads_blas, py::arg("mode"),
        "Test hook: the weight gradients' products run on BLAS by their size and OpenBLAS's kernels (-1, the "
        "default), never (0) or always (1).");
  m.def("weight_grads_on_blas", &cpu::weight_grads_on_blas, py::arg("rows"),
        "Whether a weight-gradient product over `rows` rows runs on BLAS.");
  m.def(
      "recurrent_backward",
      [](const std::string& cell, const py::array& x, const py::array& h0, const py::object& c0,
         const py::array& kernel, const py::array& recurrent, const py::array& bias, const py::object& mask,
         const py::object& dropout, const py::object& recurrent_dropout, bool go_backwards,
         const std::string& activation, bool reset_after, const py::array& gates, const py::array& hprev,
         const py::object& aux, const py::object& d_outputs, const py::object& d_h_last,
         const py::object& d_c_last, bool gate_major, bool defer_weight_grads) {
        const cpu::CellConfig cfg = make_config(cell, activation, reset_after);
        return is_float64(x, kernel) ? backward_impl<double>(cfg, x, h0, c0, kernel, recurrent, bias, mask, dropout,
                                                     recurrent_dropout, go_backwards, gates, hprev, aux,
                                                     d_outputs, d_h_last, d_c_last, gate_major, defer_weight_grads)
                             : backward_impl<float>(cfg, x, h0, c0, kernel, recurrent, bias, mask, dropout,
                                                    recurrent_dropout, go_backwards, gates, hprev, aux,
                                                    d_outputs, d_h_last, d_c_last, gate_major, defer_weight_grads);
      },
      py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("kernel"), py::arg("recurrent_kernel"),
      py::arg("bias"), py::arg("mask"), py::arg("dropout_mask"), py::arg("recurrent_dropout_mask"),
      py::arg("go_backwards"), py::arg("activation"), py::arg("reset_after"), py::arg("gates"), py::arg("hprev"),
      py::arg("aux"), py::arg("d_outputs"), py::arg("d_h_last"), py::arg("d_c_last"), py::arg("gate_major") = false,
      py::arg("defer_weight_grads") = false,
      "Fused backward pass. Returns (dx, dh0, dc0, d_kernel, d_recurrent_kernel, d_bias); with gate_major the "
      "weight gradients come transposed, d_kernel (G*H, I) and d_recurrent_kernel (G*H, H) (torch.nn's layout). "
      "With defer_weight_grads no weight gradient is computed: it returns (dx, dh0, dc0, d_gates (B, T, G*H), "
      "d_recurrent_gates (B, T, G*H) for the GRU with reset_after, else None, None), what "
      "recurrent_weight_grads takes.");
  m.def(
      "recurrent_weight_grads",
      [](const std::string& cell, const py::array& x, const py::array& kernel, const py::array& recurrent,
         const py::array& bias, const py::object& dropout, const py::object& recurrent_dropout,
         const std::string& activation, bool reset_after, const py::array& hprev, const py::object& aux,
         const py::array& dgates, const py::object& drecurrent_gates, bool gate_major) {
        const cpu::CellConfig cfg = make_config(cell, activation, reset_after);
        return is_float64(x, kernel) ? weight_grads_impl<double>(cfg, x, kernel, recurrent, bias, dropout,
                                                                 recurrent_dropout, hprev, aux, dgates,
                                                                 drecurrent_gates, gate_major)
                                     : weight_grads_impl<float>(cfg, x, kernel, recurrent, bias, dropout,
                                                                recurrent_dropout, hprev, aux, dgates,
                                                                drecurrent_gates, gate_major);
      },
      py::arg("cell"), py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"),
      py::arg("dropout_mask"), py::arg("recurrent_dropout_mask"), py::arg("activation"), py::arg("reset_after"),
      py::arg("hprev"), py::arg("aux"), py::arg("d_gates"), py::arg("d_recurrent_gates"), py::arg("gate_major") = false,
      "The weight gradients (d_kernel, d_recurrent_kernel, d_bias) of the rows of x (B, T, I) (or ids (B, T)) "
      "with their dropout masks, hprev (B, T, H), aux (B, T, H; the GRU with reset_after=False only) and the "
      "gate gradients of a backward pass with defer_weight_grads (d_gates, d_recurrent_gates: (B, T, G*H)).");
}

}  // namespace bindings
}  // namespace fusedrnn
