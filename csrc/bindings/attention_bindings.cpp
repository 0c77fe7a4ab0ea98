// Bindings of the attention kernels: attention_forward / attention_backward for the dot and
// additive forms, and the dense projection used by BahdanauAttention (also on a kernel packed
// once, pack_dense); float32 and float64.
// Arguments are validated in fusedrnn/ops/attention.py; these checks are the safety net.
#include <atomic>
#include <memory>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "bindings/arrays.h"
#include "cpu/attention.h"
#include "cpu/packed_dense.h"

namespace fusedrnn {
namespace bindings {
namespace {

cpu::ScoreKind score_kind(const std::string& kind) {
  if (kind == "dot") return cpu::ScoreKind::kDot;
  if (kind == "additive") return cpu::ScoreKind::kAdditive;
  throw py::value_error("kind: expected 'dot' or 'additive', got '" + kind + "'");
}

bool is_float64(const py::array& a, const char* name) {
  if (has_dtype<double>(a)) return true;
  if (has_dtype<float>(a)) return false;
  throw py::type_error(std::string(name) + ": expected float32 or float64");
}

// Raises ValueError naming the first argument the kernel found NaN or inf in.
void raise_nonfinite(int bits) {
  static const std::pair<int, const char*> names[] = {{cpu::kQueryBad, "query"},
                                                      {cpu::kKeyBad, "key"},
                                                      {cpu::kValueBad, "value"},
                                                      {cpu::kDContextBad, "d_context"},
                                                      {cpu::kDWeightsBad, "d_weights"}};
  for (const auto& n : names)
    if (bits & n.first) throw py::value_error(std::string(n.second) + ": contains NaN or inf");
}

// Reads and checks the arguments shared by forward and backward.
template <typename T>
cpu::AttentionProblem<T> problem(const std::string& kind, const py::array& query, const py::object& key,
                                 const py::array& value, const py::object& scale, const py::object& query_mask,
                                 const py::object& value_mask, bool causal) {
  cpu::AttentionProblem<T> p;
  p.kind = score_kind(kind);
  if (query.ndim() != 3) throw py::value_error("query: expected a 3-D array (batch, Tq, dim)");
  if (value.ndim() != 3) throw py::value_error("value: expected a 3-D array (batch, Tv, value_dim)");
  p.batch = static_cast<int>(query.shape(0));
  p.tq = static_cast<int>(query.shape(1));
  p.dim = static_cast<int>(query.shape(2));
  p.tv = static_cast<int>(value.shape(1));
  p.value_dim = static_cast<int>(value.shape(2));
  if (p.batch < 1 || p.tq < 1 || p.dim < 1 || p.tv < 1 || p.value_dim < 1)
    throw py::value_error("query, value: every dimension must be at least 1");
  const py::ssize_t B = p.batch, Tq = p.tq, Tv = p.tv, D = p.dim, Dv = p.value_dim;
  p.query = input_ptr<T>(query, "query", {B, Tq, D});
  p.value = input_ptr<T>(value, "value", {B, Tv, Dv});
  p.key_is_value = key.is_none();
  if (p.key_is_value) {
    if (Dv != D) throw py::value_error("value: without a key its last axis must match the query's");
    p.key = p.value;
  } else {
    p.key = input_ptr<T>(key.cast<py::array>(), "key", {B, Tv, D});
  }
  if (!scale.is_none()) {
    if (p.kind == cpu::ScoreKind::kDot)
      p.scale = input_ptr<T>(scale.cast<py::array>(), "scale", {});
    else
      p.scale = input_ptr<T>(scale.cast<py::array>(), "scale", {D});
  }
  if (!query_mask.is_none()) p.query_mask = input_ptr<uint8_t>(query_mask.cast<py::array>(), "query_mask", {B, Tq});
  if (!value_mask.is_none()) p.value_mask = input_ptr<uint8_t>(value_mask.cast<py::array>(), "value_mask", {B, Tv});
  p.causal = causal;
  return p;
}

template <typename T>
py::tuple forward_impl(const std::string& kind, const py::array& query, const py::object& key,
                       const py::array& value, const py::object& scale, const py::object& query_mask,
                       const py::object& value_mask, bool causal, bool check_finite) {
  cpu::AttentionProblem<T> p = problem<T>(kind, query, key, value, scale, query_mask, value_mask, causal);
  std::atomic<int> nonfinite{0};
  if (check_finite) p.nonfinite = &nonfinite;
  const py::ssize_t B = p.batch, Tq = p.tq, Tv = p.tv, Dv = p.value_dim;
  py::array_t<T> context = new_array<T>({B, Tq, Dv}), weights = new_array<T>({B, Tq, Tv});
  py::object scores = py::none();
  cpu::AttentionOutputs<T> out{context.mutable_data(), weights.mutable_data(), nullptr};
  if (p.kind == cpu::ScoreKind::kDot) {
    py::array_t<T> s = new_array<T>({B, Tq, Tv});
    out.scores = s.mutable_data();
    scores = s;
  }
  {
    py::gil_scoped_release release;
    cpu::attention_forward(p, out);
  }
  raise_nonfinite(nonfinite.load());
  return py::make_tuple(context, weights, scores);
}

template <typename T>
py::tuple backward_impl(const std::string& kind, const py::array& query, const py::object& key,
                        const py::array& value, const py::object& scale, const py::object& query_mask,
                        const py::object& value_mask, bool causal, const py::array& weights,
                        const py::object& scores, const py::object& d_context, const py::object& d_weights,
                        bool check_finite) {
  cpu::AttentionProblem<T> p = problem<T>(kind, query, key, value, scale, query_mask, value_mask, causal);
  std::atomic<int> nonfinite{0};
  if (check_finite) p.nonfinite = &nonfinite;
  const py::ssize_t B = p.batch, Tq = p.tq, Tv = p.tv, D = p.dim, Dv = p.value_dim;
  const T* w = input_ptr<T>(weights, "cache.weights", {B, Tq, Tv});
  const T* s = optional_input_ptr<T>(scores, "cache.scores", {B, Tq, Tv});
  if (p.kind == cpu::ScoreKind::kDot && p.scale && s == nullptr) throw py::value_error("cache.scores: missing");
  const T* dc = optional_input_ptr<T>(d_context, "d_context", {B, Tq, Dv});
  const T* dw = optional_input_ptr<T>(d_weights, "d_weights", {B, Tq, Tv});

  py::array_t<T> dq = new_array<T>({B, Tq, D}), dv = new_array<T>({B, Tv, Dv});
  py::object dk = py::none(), dscale = py::none();
  cpu::AttentionGrads<T> grads{dq.mutable_data(), nullptr, dv.mutable_data(), nullptr};
  if (!p.key_is_value) {
    py::array_t<T> a = new_array<T>({B, Tv, D});
    grads.d_key = a.mutable_data();
    dk = a;
  }
  if (p.scale) {
    py::array_t<T> a = p.kind == cpu::ScoreKind::kDot ? new_array<T>({}) : new_array<T>({D});
    grads.d_scale = a.mutable_data();
    dscale = a;
  }
  {
    py::gil_scoped_release release;
    cpu::attention_backward(p, w, s, dc, dw, grads);
  }
  raise_nonfinite(nonfinite.load());
  return py::make_tuple(dq, dk, dv, dscale);
}

// A dense kernel packed once (cpu::pack_dense), in its dtype or in bfloat16.
struct PackedDenseKernel {
  int in = 0, units = 0;
  bool float64 = false;
  cpu::AlignedVector<float> f32;
  cpu::AlignedVector<double> f64;
  cpu::AlignedVector<cpu::Bf16> bf16;

  size_t nbytes() const {
    return f32.size() * sizeof(float) + f64.size() * sizeof(double) + bf16.size() * sizeof(cpu::Bf16);
  }
};

template <typename T>
std::unique_ptr<PackedDenseKernel> pack_dense_impl(const py::array& kernel, bool bfloat16) {
  if (kernel.ndim() != 2) throw py::value_error("kernel: expected a 2-D array (features, units)");
  const py::ssize_t I = kernel.shape(0), U = kernel.shape(1);
  if (I < 1 || U < 1) throw py::value_error("kernel: every dimension must be at least 1");
  const T* kp = input_ptr<T>(kernel, "kernel", {I, U});
  auto p = std::make_unique<PackedDenseKernel>();
  p->in = static_cast<int>(I);
  p->units = static_cast<int>(U);
  p->float64 = std::is_same<T, double>::value;
  py::gil_scoped_release release;
  if constexpr (std::is_same<T, double>::value) p->f64 = cpu::pack_dense(p->in, p->units, kp);
  else if (bfloat16) p->bf16 = cpu::pack_dense_bf16(p->in, p->units, kp);
  else p->f32 = cpu::pack_dense(p->in, p->units, kp);
  return p;
}

template <typename T>
py::array dense_forward_impl(const py::array& x, const py::array& kernel, const py::object& bias,
                             const py::object& packed) {
  if (x.ndim() != 2) throw py::value_error("x: expected a 2-D array (rows, features)");
  if (kernel.ndim() != 2) throw py::value_error("kernel: expected a 2-D array (features, units)");
  const py::ssize_t N = x.shape(0), I = x.shape(1), U = kernel.shape(1);
  const T* xp = input_ptr<T>(x, "x", {N, I});
  const T* kp = input_ptr<T>(kernel, "kernel", {I, U});
  const T* bp = optional_input_ptr<T>(bias, "bias", {U});
  const PackedDenseKernel* pk = nullptr;
  if (!packed.is_none()) {
    if (!py::isinstance<PackedDenseKernel>(packed)) throw py::type_error("packed: expected the object pack_dense returns");
    pk = &packed.cast<const PackedDenseKernel&>();
    if (pk->float64 != std::is_same<T, double>::value) throw py::type_error("packed: packed for another dtype");
    if (pk->in != I || pk->units != U) throw py::value_error("packed: packed for another kernel shape");
  }
  // bfloat16 weights serve every call that passes them; float ones up to kPackedDenseRows rows.
  const bool use_packed = pk != nullptr && (!pk->bf16.empty() || N <= cpu::kPackedDenseRows);
  py::array_t<T> y = new_array<T>({N, U});
  {
    py::gil_scoped_release release;
    if (use_packed) {
      const T* values = nullptr;
      if constexpr (std::is_same<T, double>::value) values = pk->f64.data();
      else values = pk->bf16.empty() ? pk->f32.data() : nullptr;
      cpu::packed_dense_forward(static_cast<int>(N), static_cast<int>(I), static_cast<int>(U), xp, values,
                                pk->bf16.empty() ? nullptr : pk->bf16.data(), bp, y.mutable_data());
    } else {
      cpu::dense_forward(static_cast<int>(N), static_cast<int>(I), static_cast<int>(U), xp, kp, bp, y.mutable_data());
    }
  }
  return y;
}

template <typename T>
py::tuple dense_backward_impl(const py::array& x, const py::array& kernel, const py::array& dy, bool with_bias,
                              bool input_grad, bool weight_grad) {
  if (x.ndim() != 2) throw py::value_error("x: expected a 2-D array (rows, features)");
  if (kernel.ndim() != 2) throw py::value_error("kernel: expected a 2-D array (features, units)");
  const py::ssize_t N = x.shape(0), I = x.shape(1), U = kernel.shape(1);
  const T* xp = input_ptr<T>(x, "x", {N, I});
  const T* kp = input_ptr<T>(kernel, "kernel", {I, U});
  const T* dyp = input_ptr<T>(dy, "dy", {N, U});
  py::object dx = py::none(), dk = py::none(), db = py::none();
  T* dxp = nullptr;
  T* dkp = nullptr;
  T* dbp = nullptr;
  if (input_grad) {
    py::array_t<T> a = new_array<T>({N, I});
    dxp = a.mutable_data();
    dx = a;
  }
  if (weight_grad) {
    py::array_t<T> a = new_array<T>({I, U});
    dkp = a.mutable_data();
    dk = a;
  }
  if (with_bias) {
    py::array_t<T> a = new_array<T>({U});
    dbp = a.mutable_data();
    db = a;
  }
  {
    py::gil_scoped_release release;
    cpu::dense_backward(static_cast<int>(N), static_cast<int>(I), static_cast<int>(U), xp, kp, dyp, dxp, dkp, dbp);
  }
  return py::make_tuple(dx, dk, db);
}

}  // namespace

void register_attention(py::module_& m) {
  m.def(
      "attention_forward",
      [](const std::string& kind, const py::array& query, const py::object& key, const py::array& value,
         const py::object& scale, const py::object& query_mask, const py::object& value_mask, bool causal,
         bool check_finite) {
        return is_float64(query, "query")
                   ? forward_impl<double>(kind, query, key, value, scale, query_mask, value_mask, causal, check_finite)
                   : forward_impl<float>(kind, query, key, value, scale, query_mask, value_mask, causal, check_finite);
      },
      py::arg("kind"), py::arg("query"), py::arg("key"), py::arg("value"), py::arg("scale"), py::arg("query_mask"),
      py::arg("value_mask"), py::arg("causal"), py::arg("check_finite") = true,
      "Fused attention forward ('dot' or 'additive'). Returns (context, weights, scores); scores (the dot "
      "form's unscaled q.k) is None for the additive form. With check_finite, NaN or inf in query, key or "
      "value raises ValueError naming it (checked inside the kernel, while the data is in cache).");
  m.def(
      "attention_backward",
      [](const std::string& kind, const py::array& query, const py::object& key, const py::array& value,
         const py::object& scale, const py::object& query_mask, const py::object& value_mask, bool causal,
         const py::array& weights, const py::object& scores, const py::object& d_context,
         const py::object& d_weights, bool check_finite) {
        return is_float64(query, "query")
                   ? backward_impl<double>(kind, query, key, value, scale, query_mask, value_mask, causal, weights,
                                           scores, d_context, d_weights, check_finite)
                   : backward_impl<float>(kind, query, key, value, scale, query_mask, value_mask, causal, weights,
                                          scores, d_context, d_weights, check_finite);
      },
      py::arg("kind"), py::arg("query"), py::arg("key"), py::arg("value"), py::arg("scale"), py::arg("query_mask"),
      py::arg("value_mask"), py::arg("causal"), py::arg("weights"), py::arg("scores"), py::arg("d_context"),
      py::arg("d_weights"), py::arg("check_finite") = true,
      "Fused attention backward. Returns (d_query, d_key, d_value, d_scale); d_key is None when the key "
      "was the value (its gradient is then included in d_value), d_scale None without a scale.");
  py::class_<PackedDenseKernel>(m, "PackedDenseKernel", "A dense kernel packed for the CPU kernels (pack_dense).")
      .def_property_readonly("float64", [](const PackedDenseKernel& p) { return p.float64; })
      .def_property_readonly("bfloat16", [](const PackedDenseKernel& p) { return !p.bf16.empty(); })
      .def_property_readonly("shape", [](const PackedDenseKernel& p) { return py::make_tuple(p.in, p.units); })
      .def_property_readonly("nbytes", &PackedDenseKernel::nbytes);
  m.def(
      "pack_dense",
      [](const py::array& kernel, bool bfloat16) {
        if (has_dtype<double>(kernel)) {
          if (bfloat16) throw py::type_error("kernel: bfloat16 packing takes float32 weights, got float64");
          return pack_dense_impl<double>(kernel, false);
        }
        if (has_dtype<float>(kernel)) return pack_dense_impl<float>(kernel, bfloat16);
        throw py::type_error("kernel: expected float32 or float64");
      },
      py::arg("kernel"), py::arg("bfloat16") = false,
      "Packs a dense kernel (features, units) for dense_forward(packed=...): a copy (later changes to the array "
      "are not seen); bfloat16=True (float32 only) rounds it to bfloat16.");
  m.def(
      "dense_forward",
      [](const py::array& x, const py::array& kernel, const py::object& bias, const py::object& packed) {
        return is_float64(x, "x") ? dense_forward_impl<double>(x, kernel, bias, packed)
                                  : dense_forward_impl<float>(x, kernel, bias, packed);
      },
      py::arg("x"), py::arg("kernel"), py::arg("bias"), py::arg("packed") = py::none(),
      "y = x kernel + bias for x (rows, features). `packed` (pack_dense of this kernel): up to 16 rows (bfloat16: "
      "any number) multiply the packed copy, one pass over it for all the rows; the kernel is then not read.");
  m.def(
      "dense_backward",
      [](const py::array& x, const py::array& kernel, const py::array& dy, bool with_bias, bool input_grad,
         bool weight_grad) {
        return is_float64(x, "x") ? dense_backward_impl<double>(x, kernel, dy, with_bias, input_grad, weight_grad)
                                  : dense_backward_impl<float>(x, kernel, dy, with_bias, input_grad, weight_grad);
      },
      py::arg("x"), py::arg("kernel"), py::arg("dy"), py::arg("with_bias"), py::arg("input_grad") = true,
      py::arg("weight_grad") = true,
      "Gradients of dense_forward: (dx or None, d_kernel or None, d_bias or None); input_grad=False skips dx, "
      "weight_grad=False d_kernel.");
}

}  // namespace bindings
}  // namespace fusedrnn
