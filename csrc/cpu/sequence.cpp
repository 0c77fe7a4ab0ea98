#include "cpu/sequence.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <string>

#include "cpu/blas.h"

namespace fusedrnn {
namespace cpu {

namespace {
std::atomic<bool> g_poison{false};

// The rows r = (b, t) of a (B*T, d) matrix src, times the mask m[b, :] of their sequence when m
// is set: src's own rows, or their masked copy written to dst (r.size() rows).
template <typename T>
const T* rows_times_mask(Range r, const T* src, const T* m, int steps, int d, T* dst) {
  if (m == nullptr) return src + static_cast<long>(r.begin) * d;
  for (int row = r.begin; row < r.end; ++row) {
    const T* mb = m + static_cast<long>(row / steps) * d;
    const T* s = src + static_cast<long>(row) * d;
    T* o = dst + static_cast<long>(row - r.begin) * d;
    for (int k = 0; k < d; ++k) o[k] = s[k] * mb[k];
  }
  return dst;
}

// out[c] = sum over rows r of a[row, c] (a row-major with leading dimension lda).
template <typename T>
void column_sums(Range r, const T* a, int cols, int lda, T* out) {
  std::fill(out, out + cols, T(0));
  for (long row = r.begin; row < r.end; ++row) {
    const T* ar = a + row * lda;
    for (int c = 0; c < cols; ++c) out[c] += ar[c];
  }
}

// Zeros columns c of a (rows, G*H) weight gradient, or rows c of its (G*H, rows) transpose when
// gate_major.
template <typename T>
void zero_columns(T* w, int rows, int GH, Range c, bool gate_major) {
  if (gate_major) {
    std::fill(w + static_cast<long>(c.begin) * rows, w + static_cast<long>(c.end) * rows, T(0));
    return;
  }
  for (long i = 0; i < rows; ++i) std::fill(w + i * GH + c.begin, w + i * GH + c.end, T(0));
}
}  // namespace

bool poison_outputs() { return g_poison.load(); }
void set_poison_outputs(bool on) { g_poison.store(on); }

namespace {
std::atomic<int> g_weight_grads_blas{-1};

// Whether OpenBLAS runs kernels at least as wide as the panel kernel of this build: an AVX2 or
// SSE build next to OpenBLAS's AVX2 (Haswell, Zen) or AVX-512 kernels. (An AVX-512 build keeps
// the panel kernel: it was measured faster than OpenBLAS's AVX2 kernels, which a pinned
// OPENBLAS_CORETYPE selects, and has not been compared with its AVX-512 ones.)
bool blas_as_wide() {
  static const bool wide = [] {
    if (kVectorBytes > 32) return false;
    const char* core = scipy_openblas_get_corename();
    if (core == nullptr) return false;
    std::string name(core);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const char* wide_core : {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"})
      if (name.find(wide_core) != std::string::npos) return true;
    return false;
  }();
  return wide;
}
}  // namespace

bool weight_grads_on_blas(long rows) {
  const int mode = g_weight_grads_blas.load(std::memory_order_relaxed);
  if (mode >= 0) return mode == 1;
  return rows >= kBlasWeightGradRows && blas_as_wide();
}
void set_weight_grads_blas(int mode) { g_weight_grads_blas.store(mode < 0 ? -1 : (mode > 0 ? 1 : 0)); }

namespace {
// Calls f(g_begin, g_end, c_begin, c_end) for each run of consecutive gates in [g0, g1) that
// share one dropout mask (masks(g)), with [c_begin, c_end) their columns within c.
template <typename Masks, typename F>
void for_each_mask_run(int g0, int g1, int H, Range c, Masks&& masks, F&& f) {
  for (int g = g0; g < g1;) {
    int e = g + 1;
    while (e < g1 && masks(e) == masks(g)) ++e;
    const int lo = std::max(c.begin, g * H), hi = std::min(c.end, e * H);
    if (lo < hi) f(g, e, lo, hi);
    g = e;
  }
}
}  // namespace

template <typename T>
void input_gradient_rows(Range r, const SequenceInputs<T>& in, const PanelMatrix<T>& kernel_t, const T* dgx, T* dx) {
  if (in.ids != nullptr || r.size() <= 0) return;
  const int I = in.input_size, H = in.units, GH = in.width();
  const T* dgr = dgx + static_cast<long>(r.begin) * GH;
  // dx = sum_g (dgx_g kernel_g^T) * dropout_g, one product per run of gates sharing a mask.
  bool first = true;
  for_each_mask_run(0, in.gates, H, Range{0, GH}, [&](int g) { return in.dropout_of_gate(g); },
                    [&](int g, int, int lo, int hi) {
                      const T* m = in.dropout_of_gate(g);
                      kernel_t.multiply(r.size(), &dgr, GH, false, lo, hi, 0, I,
                                        [&](int i, int u0, int u1, const T* tile) {
                                          const long row = r.begin + i;
                                          T* o = dx + row * I;
                                          const T* mb = m == nullptr ? nullptr : m + row / in.steps * I;
                                          for (int k = u0; k < u1; ++k) {
                                            const T v = mb == nullptr ? tile[k - u0] : tile[k - u0] * mb[k];
                                            o[k] = first ? v : o[k] + v;
                                          }
                                        });
                      first = false;
                    });
}

namespace {
// out[:, lo:hi] = left^T dg[:, lo:hi] for K rows of left (K, n) and dg (K, GH) (both row-major,
// pointing at their first row), out (n, GH), or its transpose out^T[lo:hi, :] with out (GH, n)
// when gate_major. One BLAS GEMM where weight_grads_on_blas(K); otherwise on the panel kernel:
// left is packed once; dg is taken in blocks of columns, each copied into
// contiguous memory that stays in L2 while every group of left's columns multiplies it (read in
// place, its columns would be a stride of G*H apart). A block's product comes out transposed (a
// row per column of dg): gate-major output takes it as it comes; otherwise it goes through a
// buffer and is written to out in tiles.
template <typename T>
void transposed_product(int K, const T* left, int n, const T* dg, int GH, int lo, int hi, T* out, bool gate_major,
                        const GradientScratch<T>& scratch) {
  if (weight_grads_on_blas(K)) {
    if (gate_major) gemm(true, false, hi - lo, n, K, T(1), dg + lo, GH, left, n, T(0), out + static_cast<long>(lo) * n, n);
    else gemm(true, false, n, hi - lo, K, T(1), left, n, dg + lo, GH, T(0), out + lo, GH);
    return;
  }
  const PanelMatrix<T> right(units_plan(0, 0), K, K, n, PanelSource<T>{left, left, n, 0, 1}, scratch.packed);
  right.fill(0, right.groups());
  const int width = scratch.block_columns(K), ld = GradientScratch<T>::result_stride(n);
  for (int c0 = lo; c0 < hi; c0 += width) {
    const int m = std::min(width, hi - c0);
    for (long k = 0; k < K; ++k) std::copy(dg + k * GH + c0, dg + k * GH + c0 + m, scratch.columns + k * m);
    T* rows_out = gate_major ? out + static_cast<long>(c0) * n : scratch.result;
    const long rows_ld = gate_major ? n : ld;
    right.multiply_by_columns(m, scratch.columns, m, 0, K, 0, n, [&](int c, int u0, int u1, const T* tile) {
      std::copy(tile, tile + (u1 - u0), rows_out + c * rows_ld + u0);
    });
    if (gate_major) continue;
    constexpr int kTile = 16;
    for (int i0 = 0; i0 < n; i0 += kTile)
      for (int j0 = 0; j0 < m; j0 += kTile)
        for (int i = i0; i < std::min(n, i0 + kTile); ++i) {
          T* o = out + static_cast<long>(i) * GH + c0;
          for (int j = j0; j < std::min(m, j0 + kTile); ++j) o[j] = scratch.result[static_cast<long>(j) * ld + i];
        }
  }
}
}  // namespace

template <typename T>
void kernel_gradients(Range r, Range c, const SequenceInputs<T>& in, const T* dgx, T* dkernel, T* dbias,
                      bool gate_major, const GradientScratch<T>& scratch) {
  const int I = in.input_size, H = in.units, GH = in.width();
  if (c.size() <= 0) return;
  if (dbias != nullptr) column_sums(r, dgx + c.begin, c.size(), GH, dbias + c.begin);
  if (in.ids != nullptr) return;  // one_hot_kernel_grads_share
  if (r.size() <= 0) {
    zero_columns(dkernel, I, GH, c, gate_major);
    return;
  }
  // d_kernel = (x * dropout_g)^T dgx, one product per run of gates sharing a mask.
  for_each_mask_run(0, in.gates, H, c, [&](int g) { return in.dropout_of_gate(g); },
                    [&](int g, int, int lo, int hi) {
                      const T* left = rows_times_mask(r, in.x, in.dropout_of_gate(g), in.steps, I, scratch.masked);
                      transposed_product(r.size(), left, I, dgx + static_cast<long>(r.begin) * GH, GH, lo, hi, dkernel,
                                         gate_major, scratch);
                    });
}

// One-hot input: dkernel[id, :] += dgx[row, :] * dropout_g[b, id] over all rows; each thread
// owns a range of columns, so the scatter needs no atomics.
template <typename T>
void one_hot_kernel_grads_share(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dkernel,
                                bool gate_major) {
  const int H = in.units, GH = in.width(), I = in.input_size;
  const Range c = split_range(GH, tid, nt);
  if (c.size() <= 0) return;
  zero_columns(dkernel, I, GH, c, gate_major);
  // Element (id, k) of the (I, G*H) gradient is o[k * k_stride] from o = dkernel + id * id_stride.
  const long id_stride = gate_major ? 1 : GH, k_stride = gate_major ? I : 1;
  const long rows = static_cast<long>(in.batch) * in.steps;
  for (long row = 0; row < rows; ++row) {
    const long id = in.ids[row], b = row / in.steps;
    const T* d = dgx + row * GH;
    T* o = dkernel + id * id_stride;
    for (int g = c.begin / H; g < in.gates && g * H < c.end; ++g) {
      const T* m = in.dropout_of_gate(g);
      const T scale = m == nullptr ? T(1) : m[b * in.input_size + id];
      const int lo = std::max(c.begin, g * H), hi = std::min(c.end, (g + 1) * H);
      for (int k = lo; k < hi; ++k) o[k * k_stride] += d[k] * scale;
    }
  }
}

template <typename T>
void recurrent_gradients(Range r, Range c, const SequenceInputs<T>& in, const T* left, bool apply_dropout,
                         const T* dgrec, int g_begin, int g_end, T* drecurrent, T* drecurrent_bias,
                         bool gate_major, const GradientScratch<T>& scratch) {
  const int H = in.units, GH = in.width();
  const Range cols{std::max(c.begin, g_begin * H), std::min(c.end, g_end * H)};
  if (cols.size() <= 0) return;
  if (drecurrent_bias != nullptr)
    column_sums(r, dgrec + cols.begin, cols.size(), GH, drecurrent_bias + cols.begin);
  if (r.size() <= 0) {
    zero_columns(drecurrent, H, GH, cols, gate_major);
    return;
  }
  auto mask_of = [&](int g) { return apply_dropout ? in.recurrent_dropout_of_gate(g) : nullptr; };
  for_each_mask_run(g_begin, g_end, H, cols, mask_of, [&](int g, int, int lo, int hi) {
    const T* l = rows_times_mask(r, left, mask_of(g), in.steps, H, scratch.masked);
    transposed_product(r.size(), l, H, dgrec + static_cast<long>(r.begin) * GH, GH, lo, hi, drecurrent, gate_major,
                       scratch);
  });
}

template <typename T>
void sum_partials_share(int tid, int nt, T* out, const T* parts, int n_parts, long part_stride, long n) {
  const Range c = split_range(static_cast<int>(n), tid, nt);
  for (int p = 0; p < n_parts; ++p) {
    const T* part = parts + p * part_stride;
    for (long k = c.begin; k < c.end; ++k) out[k] += part[k];
  }
}

#define FUSEDRNN_INSTANTIATE(T)                                                                              \
  template void input_gradient_rows<T>(Range, const SequenceInputs<T>&, const PanelMatrix<T>&, const T*, T*);  \
  template void kernel_gradients<T>(Range, Range, const SequenceInputs<T>&, const T*, T*, T*, bool,          \
                                    const GradientScratch<T>&);                                               \
  template void one_hot_kernel_grads_share<T>(int, int, const SequenceInputs<T>&, const T*, T*, bool);       \
  template void recurrent_gradients<T>(Range, Range, const SequenceInputs<T>&, const T*, bool, const T*, int,  \
                                       int, T*, T*, bool, const GradientScratch<T>&);                         \
  template void sum_partials_share<T>(int, int, T*, const T*, int, long, long);
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace fusedrnn
