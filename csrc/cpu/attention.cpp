// Dot-product and additive attention on the CPU; see attention.h for the layout and threading.
//
// Memory choice of the additive backward pass: it needs t = tanh(q_id + k_jd) for every
// (b, i, j, d). Keeping those B*Tq*Tv*D values from the forward pass would cost 46 MB in
// float32 at the translation task's shapes (B=64, Tq=11, Tv=16, D=1024) and a full write and
// read of that array; recomputing them costs one vectorised tanh per element, about what the
// forward pass spends anyway, and keeps the cache at O(B*Tq*Tv). So the cache holds only the
// weights, and the backward pass recomputes tanh.
#include "cpu/attention.h"

#include <omp.h>

#include <algorithm>

#include "cpu/finite.h"
#include "cpu/parallel.h"
#include "cpu/workspace.h"
#include "fusedrnn/attention_math.h"

namespace fusedrnn {
namespace cpu {

namespace {

// Work of one parallel region cut into units: every batch item into `per_batch` parts, so that
// there are at least as many units as threads when the batch is small.
struct Units {
  int per_batch;
  int count;
};

Units make_units(int batch, int items, int nt, int align) {
  const int chunks = std::max(1, (items + align - 1) / align);
  const int per = std::max(1, std::min(chunks, (nt + batch - 1) / batch));
  return {per, batch * per};
}

namespace rows {

// sum_d scale_d * tanh(q_d + k_d) over d in [0, n).
template <typename T>
T additive_score(int n, const T* __restrict q, const T* __restrict k, const T* __restrict scale) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int d = 0; d < n; ++d) acc += math::additive_term(q[d], k[d], scale[d]);
  return acc;
}

template <typename T>
T additive_score_unscaled(int n, const T* __restrict q, const T* __restrict k) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int d = 0; d < n; ++d) acc += math::tanh_(q[d] + k[d]);
  return acc;
}

// One (query, key) pair's contribution to the additive gradients over features [0, n):
// dq_d += g, dk_d += g, dscale_d += ds * t, with t = tanh(q_d + k_d), g = ds * scale_d (1 - t^2).
template <typename T>
void additive_grad(int n, T ds, const T* __restrict q, const T* __restrict k, const T* __restrict scale,
                   T* __restrict dq, T* __restrict dk, T* __restrict dscale) {
  for (int d = 0; d < n; ++d) {
    const T t = math::tanh_(q[d] + k[d]);
    const T g = math::additive_preact_grad(t, ds, scale[d]);
    dq[d] += g;
    dk[d] += g;
    dscale[d] += ds * t;
  }
}

template <typename T>
void additive_grad_unscaled(int n, T ds, const T* __restrict q, const T* __restrict k, T* __restrict dq,
                            T* __restrict dk) {
  for (int d = 0; d < n; ++d) {
    const T t = math::tanh_(q[d] + k[d]);
    const T g = math::additive_preact_grad(t, ds, T(1));
    dq[d] += g;
    dk[d] += g;
  }
}

template <typename T>
T dot(int n, const T* __restrict a, const T* __restrict b) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int k = 0; k < n; ++k) acc += a[k] * b[k];
  return acc;
}

template <typename T>
void zero(int n, T* __restrict p) {
  for (int k = 0; k < n; ++k) p[k] = T(0);
}

template <typename T>
void copy(int n, const T* __restrict src, T* __restrict dst) {
  for (int k = 0; k < n; ++k) dst[k] = src[k];
}

template <typename T>
void add(int n, const T* __restrict src, T* __restrict dst) {
  for (int k = 0; k < n; ++k) dst[k] += src[k];
}

}  // namespace rows

// Pointers into batch item b.
template <typename T>
struct BatchView {
  const T* q;
  const T* k;
  const T* v;
  const uint8_t* qmask;
  const uint8_t* vmask;
};

template <typename T>
BatchView<T> batch_view(const AttentionProblem<T>& p, int b) {
  return {p.query + static_cast<long>(b) * p.tq * p.dim, p.key + static_cast<long>(b) * p.tv * p.dim,
          p.value + static_cast<long>(b) * p.tv * p.value_dim,
          p.query_mask ? p.query_mask + static_cast<long>(b) * p.tq : nullptr,
          p.value_mask ? p.value_mask + static_cast<long>(b) * p.tv : nullptr};
}

void flag(std::atomic<int>* bits, int bit) { bits->fetch_or(bit, std::memory_order_relaxed); }

// Forward of query rows [r0, r1) of batch item b.
template <typename T>
void forward_rows(const AttentionProblem<T>& p, const AttentionOutputs<T>& out, int b, int r0, int r1) {
  const int nr = r1 - r0, Tv = p.tv, D = p.dim, Dv = p.value_dim;
  if (nr <= 0) return;
  const BatchView<T> v = batch_view(p, b);
  if (p.nonfinite) {
    // The GEMMs below read the same rows right after: checking them costs little extra traffic.
    if (!values_finite(v.q + static_cast<long>(r0) * D, static_cast<long>(nr) * D)) flag(p.nonfinite, kQueryBad);
    if (r0 == 0) {
      if (!p.key_is_value && !values_finite(v.k, static_cast<long>(Tv) * D)) flag(p.nonfinite, kKeyBad);
      if (!values_finite(v.v, static_cast<long>(Tv) * Dv)) flag(p.nonfinite, kValueBad);
    }
  }
  const long row0 = static_cast<long>(b) * p.tq + r0;
  T* w = out.weights + row0 * Tv;
  T a = T(1);
  if (p.kind == ScoreKind::kDot) {
    // Raw scores q.k^T; the scale multiplies them inside the softmax, as Keras multiplies the
    // matmul's result.
    T* s = out.scores + row0 * Tv;
    gemm(false, true, nr, Tv, D, T(1), v.q + static_cast<long>(r0) * D, D, v.k, D, T(0), s, Tv);
    if (p.scale) a = p.scale[0];
    for (int i = r0; i < r1; ++i)
      math::masked_softmax_row(s + (i - r0) * Tv, a, v.vmask, math::attention_key_limit(p.causal, i, Tv), Tv,
                               w + (i - r0) * Tv);
  } else {
    for (int i = r0; i < r1; ++i) {
      const T* qi = v.q + static_cast<long>(i) * D;
      T* wi = w + (i - r0) * Tv;
      const int limit = math::attention_key_limit(p.causal, i, Tv);
      for (int j = 0; j < Tv; ++j) {
        // Scores of keys the softmax ignores are not computed.
        if (!math::attention_key_allowed(v.vmask, limit, j)) {
          wi[j] = T(0);
          continue;
        }
        const T* kj = v.k + static_cast<long>(j) * D;
        wi[j] = p.scale ? rows::additive_score(D, qi, kj, p.scale) : rows::additive_score_unscaled(D, qi, kj);
      }
      math::masked_softmax_row(wi, T(1), v.vmask, limit, Tv, wi);
    }
  }
  T* c = out.context + row0 * Dv;
  gemm(false, false, nr, Dv, Tv, T(1), w, Tv, v.v, Dv, T(0), c, Dv);
  if (v.qmask)
    for (int i = r0; i < r1; ++i)
      if (!v.qmask[i]) rows::zero(Dv, c + static_cast<long>(i - r0) * Dv);
}

// Everything the backward units share.
template <typename T>
struct BackwardState {
  const AttentionProblem<T>& p;
  const T* weights;
  const T* scores;
  const T* d_context;
  const T* d_weights;
  const AttentionGrads<T>& grads;
  T* ds;              // (B, Tq, Tv): gradient of the (scaled) scores
  T* wmask;           // (B, Tq, Tv): weights with query-masked rows zeroed (null: no query mask)
  T* scale_partial;   // dot: one value per thread; additive: D values per thread
};

// Phase A, query rows [r0, r1) of batch item b: ds = softmax backward of the weight gradient
// (dC v^T + d_weights), and for the dot form d_query and the thread's share of d_scale.
template <typename T>
void backward_rows(const BackwardState<T>& st, int tid, int b, int r0, int r1) {
  const AttentionProblem<T>& p = st.p;
  const int nr = r1 - r0, Tv = p.tv, D = p.dim, Dv = p.value_dim;
  if (nr <= 0) return;
  const BatchView<T> v = batch_view(p, b);
  const long row0 = static_cast<long>(b) * p.tq + r0;
  const T* w = st.weights + row0 * Tv;
  T* ds = st.ds + row0 * Tv;
  if (p.nonfinite) {
    if (st.d_context && !values_finite(st.d_context + row0 * Dv, static_cast<long>(nr) * Dv))
      flag(p.nonfinite, kDContextBad);
    if (st.d_weights && !values_finite(st.d_weights + row0 * Tv, static_cast<long>(nr) * Tv))
      flag(p.nonfinite, kDWeightsBad);
  }
  if (st.d_context)
    gemm(false, true, nr, Tv, Dv, T(1), st.d_context + row0 * Dv, Dv, v.v, Dv, T(0), ds, Tv);
  else
    rows::zero(nr * Tv, ds);
  for (int i = r0; i < r1; ++i) {
    T* dsi = ds + (i - r0) * Tv;
    // Keras zeroes the context of masked query rows: no gradient reaches them through it.
    const bool kept = v.qmask == nullptr || v.qmask[i] != 0;
    if (!kept) rows::zero(Tv, dsi);
    if (st.wmask) {
      T* wm = st.wmask + (row0 + i - r0) * Tv;
      if (kept) rows::copy(Tv, w + (i - r0) * Tv, wm);
      else rows::zero(Tv, wm);
    }
    if (st.d_weights) rows::add(Tv, st.d_weights + (row0 + i - r0) * Tv, dsi);
    math::softmax_backward_row(w + (i - r0) * Tv, dsi, Tv, dsi);
  }
  if (p.kind != ScoreKind::kDot) return;
  const T a = p.scale ? p.scale[0] : T(1);
  if (p.scale) st.scale_partial[tid] += rows::dot(nr * Tv, ds, st.scores + row0 * Tv);
  gemm(false, false, nr, D, Tv, a, ds, Tv, v.k, D, T(0), st.grads.d_query + row0 * D, D);
}

// Phase B, feature columns of batch item b (part `part` of `parts`): d_value, d_key, and for
// the additive form d_query and the thread's share of d_scale.
template <typename T>
void backward_columns(const BackwardState<T>& st, int tid, int b, int part, int parts) {
  const AttentionProblem<T>& p = st.p;
  const int Tq = p.tq, Tv = p.tv, D = p.dim, Dv = p.value_dim;
  const BatchView<T> v = batch_view(p, b);
  const long qrow0 = static_cast<long>(b) * Tq, vrow0 = static_cast<long>(b) * Tv;
  const T* ds = st.ds + qrow0 * Tv;
  T* dv = st.grads.d_value + vrow0 * Dv;
  // key_is_value means D == Dv, so both column splits agree and d_key can go into d_value.
  T* dk = p.key_is_value ? dv : st.grads.d_key + vrow0 * D;

  const Range cv = split_range(Dv, part, parts);
  if (cv.size() > 0) {
    if (st.d_context) {
      const T* w = (st.wmask ? st.wmask : st.weights) + qrow0 * Tv;
      gemm(true, false, Tv, cv.size(), Tq, T(1), w, Tv, st.d_context + qrow0 * Dv + cv.begin, Dv, T(0),
           dv + cv.begin, Dv);
    } else {
      for (int j = 0; j < Tv; ++j) rows::zero(cv.size(), dv + static_cast<long>(j) * Dv + cv.begin);
    }
  }
  const Range c = split_range(D, part, parts);
  const int n = c.size();
  if (n <= 0) return;
  if (p.kind == ScoreKind::kDot) {
    const T a = p.scale ? p.scale[0] : T(1);
    gemm(true, false, Tv, n, Tq, a, ds, Tv, v.q + c.begin, D, p.key_is_value ? T(1) : T(0), dk + c.begin, D);
    return;
  }
  T* dq = st.grads.d_query + qrow0 * D;
  for (int i = 0; i < Tq; ++i) rows::zero(n, dq + static_cast<long>(i) * D + c.begin);
  if (!p.key_is_value)
    for (int j = 0; j < Tv; ++j) rows::zero(n, dk + static_cast<long>(j) * D + c.begin);
  T* dscale = p.scale ? st.scale_partial + static_cast<long>(tid) * D + c.begin : nullptr;
  for (int i = 0; i < Tq; ++i) {
    const T* qi = v.q + static_cast<long>(i) * D + c.begin;
    T* dqi = dq + static_cast<long>(i) * D + c.begin;
    for (int j = 0; j < Tv; ++j) {
      const T g = ds[i * Tv + j];
      if (g == T(0)) continue;  // masked keys and rows without incoming gradient
      const T* kj = v.k + static_cast<long>(j) * D + c.begin;
      T* dkj = dk + static_cast<long>(j) * D + c.begin;
      if (dscale)
        rows::additive_grad(n, g, qi, kj, p.scale + c.begin, dqi, dkj, dscale);
      else
        rows::additive_grad_unscaled(n, g, qi, kj, dqi, dkj);
    }
  }
}

}  // namespace

template <typename T>
void attention_forward(const AttentionProblem<T>& p, const AttentionOutputs<T>& out) {
  parallel_region(region_threads(), [&] {
    const Units u = make_units(p.batch, p.tq, omp_get_num_threads(), 1);
#pragma omp for schedule(static)
    for (int k = 0; k < u.count; ++k) {
      const Range r = split_range(p.tq, k % u.per_batch, u.per_batch, 1);
      forward_rows(p, out, k / u.per_batch, r.begin, r.end);
    }
  });
}

template <typename T>
void attention_backward(const AttentionProblem<T>& p, const T* weights, const T* scores, const T* d_context,
                        const T* d_weights, const AttentionGrads<T>& grads) {
  const long rows_ = static_cast<long>(p.batch) * p.tq;
  const int max_threads = region_threads();
  Workspace ws;
  T* ds = ws.take<T>(static_cast<size_t>(rows_) * p.tv);
  T* wmask = p.query_mask ? ws.take<T>(static_cast<size_t>(rows_) * p.tv) : nullptr;
  const int partial_width = p.kind == ScoreKind::kDot ? 1 : p.dim;
  T* partial = ws.take<T>(static_cast<size_t>(max_threads) * partial_width);
  std::fill(partial, partial + static_cast<long>(max_threads) * partial_width, T(0));
  const BackwardState<T> st{p, weights, scores, d_context, d_weights, grads, ds, wmask, partial};

  parallel_region(max_threads, [&] {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const Units ur = make_units(p.batch, p.tq, nt, 1);
#pragma omp for schedule(static)
    for (int k = 0; k < ur.count; ++k) {
      const Range r = split_range(p.tq, k % ur.per_batch, ur.per_batch, 1);
      backward_rows(st, tid, k / ur.per_batch, r.begin, r.end);
    }
    // (implicit barrier of the omp for: ds and wmask are complete)
    const Units uc = make_units(p.batch, std::max(p.dim, p.value_dim), nt, 16);
#pragma omp for schedule(static)
    for (int k = 0; k < uc.count; ++k) backward_columns(st, tid, k / uc.per_batch, k % uc.per_batch, uc.per_batch);
  });
  if (grads.d_scale) {
    for (int d = 0; d < partial_width; ++d) {
      T acc = T(0);
      for (int t = 0; t < max_threads; ++t) acc += partial[static_cast<long>(t) * partial_width + d];
      grads.d_scale[d] = acc;
    }
  }
}

template <typename T>
void dense_forward(int n, int in, int units, const T* x, const T* kernel, const T* bias, T* y) {
  parallel_region(region_threads(), [&] {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    if (bias) {
      const Range r = split_range(n, tid, nt, 1);
      for (int i = r.begin; i < r.end; ++i) rows::copy(units, bias, y + static_cast<long>(i) * units);
#pragma omp barrier
    }
    gemm_share(tid, nt, false, false, n, units, in, T(1), x, in, kernel, units, bias ? T(1) : T(0), y, units);
  });
}

template <typename T>
void dense_backward(int n, int in, int units, const T* x, const T* kernel, const T* dy, T* dx, T* d_kernel,
                    T* d_bias) {
  parallel_region(region_threads(), [&] {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    if (dx) gemm_share(tid, nt, false, true, n, in, units, T(1), dy, units, kernel, units, T(0), dx, in);
    if (d_kernel) gemm_share(tid, nt, true, false, in, units, n, T(1), x, in, dy, units, T(0), d_kernel, units);
    if (d_bias) {
      const Range r = split_range(units, tid, nt);
      if (r.size() > 0) {
        rows::zero(r.size(), d_bias + r.begin);
        for (int i = 0; i < n; ++i) rows::add(r.size(), dy + static_cast<long>(i) * units + r.begin, d_bias + r.begin);
      }
    }
  });
}

template void attention_forward<float>(const AttentionProblem<float>&, const AttentionOutputs<float>&);
template void attention_forward<double>(const AttentionProblem<double>&, const AttentionOutputs<double>&);
template void attention_backward<float>(const AttentionProblem<float>&, const float*, const float*, const float*,
                                        const float*, const AttentionGrads<float>&);
template void attention_backward<double>(const AttentionProblem<double>&, const double*, const double*,
                                         const double*, const double*, const AttentionGrads<double>&);
template void dense_forward<float>(int, int, int, const float*, const float*, const float*, float*);
template void dense_forward<double>(int, int, int, const double*, const double*, const double*, double*);
template void dense_backward<float>(int, int, int, const float*, const float*, const float*, float*, float*,
                                    float*);
template void dense_backward<double>(int, int, int, const double*, const double*, const double*, double*,
                                     double*, double*);

}  // namespace cpu
}  // namespace fusedrnn
