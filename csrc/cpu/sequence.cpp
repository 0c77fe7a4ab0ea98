#include "cpu/sequence.h"

#include <algorithm>
#include <atomic>

namespace fusedrnn {
namespace cpu {

namespace {
std::atomic<bool> g_poison{false};

// dst[row - r.begin, :] = src[b, t, :] * m[b, :] for the rows r = (b, t) of a (B*T, d) matrix.
template <typename T>
void masked_rows(Range r, const T* src, const T* m, int steps, int d, T* dst) {
  for (int row = r.begin; row < r.end; ++row) {
    const T* mb = m + static_cast<long>(row / steps) * d;
    const T* s = src + static_cast<long>(row) * d;
    T* o = dst + static_cast<long>(row - r.begin) * d;
    for (int k = 0; k < d; ++k) o[k] = s[k] * mb[k];
  }
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
}  // namespace

bool poison_outputs() { return g_poison.load(); }
void set_poison_outputs(bool on) { g_poison.store(on); }

template <typename T>
void input_gradients(Range r, const SequenceInputs<T>& in, const T* dgx, T* dx, T* dkernel, T* dbias, T* scratch) {
  const int I = in.input_size, H = in.units, GH = in.width();
  const long r0 = r.begin;
  if (r.size() <= 0) {  // no rows: the partial sums are zero
    if (dbias != nullptr) std::fill(dbias, dbias + GH, T(0));
    if (in.ids == nullptr) std::fill(dkernel, dkernel + static_cast<long>(I) * GH, T(0));
    return;
  }
  if (dbias != nullptr) column_sums(r, dgx, GH, GH, dbias);
  if (in.ids != nullptr) return;  // one_hot_kernel_grads_share; no dx
  // d_kernel: x^T dgx, with x dropped out by the mask of each gate.
  if (in.dropout == nullptr) {
    gemm(true, false, I, GH, r.size(), T(1), in.x + r0 * I, I, dgx + r0 * GH, GH, T(0), dkernel, GH);
  } else {
    for (int m = 0; m < in.n_dropout; ++m) {
      masked_rows(r, in.x, in.dropout + static_cast<long>(m) * in.batch * I, in.steps, I, scratch);
      const int g0 = in.n_dropout == 1 ? 0 : m, g1 = in.n_dropout == 1 ? in.gates : m + 1;
      gemm(true, false, I, (g1 - g0) * H, r.size(), T(1), scratch, I, dgx + r0 * GH + g0 * H, GH, T(0),
           dkernel + g0 * H, GH);
    }
  }
  // dx = sum_g (dgx_g kernel_g^T) * dropout_g.
  T* dxr = dx + r0 * I;
  const T* dgr = dgx + r0 * GH;
  if (in.dropout == nullptr || in.n_dropout == 1) {
    gemm(false, true, r.size(), I, GH, T(1), dgr, GH, in.kernel, GH, T(0), dxr, I);
    if (in.dropout != nullptr) {
      for (int row = r.begin; row < r.end; ++row) {
        const T* m = in.dropout + static_cast<long>(row / in.steps) * I;
        for (int k = 0; k < I; ++k) dx[static_cast<long>(row) * I + k] *= m[k];
      }
    }
  } else {
    std::fill(dxr, dxr + static_cast<long>(r.size()) * I, T(0));
    for (int g = 0; g < in.gates; ++g) {
      gemm(false, true, r.size(), I, H, T(1), dgr + g * H, GH, in.kernel + g * H, GH, T(0), scratch, I);
      const T* mg = in.dropout_of_gate(g);
      for (int row = r.begin; row < r.end; ++row) {
        const T* m = mg + static_cast<long>(row / in.steps) * I;
        const T* p = scratch + static_cast<long>(row - r.begin) * I;
        T* o = dx + static_cast<long>(row) * I;
        for (int k = 0; k < I; ++k) o[k] += p[k] * m[k];
      }
    }
  }
}

// One-hot input: dkernel[id, :] += dgx[row, :] * dropout_g[b, id] over all rows; each thread
// owns a range of columns, so the scatter needs no atomics.
template <typename T>
void one_hot_kernel_grads_share(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dkernel) {
  const int H = in.units, GH = in.width();
  const Range c = split_range(GH, tid, nt);
  if (c.size() <= 0) return;
  for (long i = 0; i < in.input_size; ++i)
    for (int k = c.begin; k < c.end; ++k) dkernel[i * GH + k] = T(0);
  const long rows = static_cast<long>(in.batch) * in.steps;
  for (long row = 0; row < rows; ++row) {
    const long id = in.ids[row], b = row / in.steps;
    const T* d = dgx + row * GH;
    T* o = dkernel + id * GH;
    for (int g = c.begin / H; g < in.gates && g * H < c.end; ++g) {
      const T* m = in.dropout_of_gate(g);
      const T scale = m == nullptr ? T(1) : m[b * in.input_size + id];
      const int lo = std::max(c.begin, g * H), hi = std::min(c.end, (g + 1) * H);
      for (int k = lo; k < hi; ++k) o[k] += d[k] * scale;
    }
  }
}

template <typename T>
void recurrent_gradients(Range r, const SequenceInputs<T>& in, const T* left, bool apply_dropout, const T* dgrec,
                         int g_begin, int g_end, T* drecurrent, T* drecurrent_bias, T* scratch) {
  const int H = in.units, GH = in.width(), cols = (g_end - g_begin) * H;
  const long r0 = r.begin;
  if (r.size() <= 0) {
    for (int k = 0; k < H; ++k) std::fill(drecurrent + static_cast<long>(k) * GH + g_begin * H,
                                          drecurrent + static_cast<long>(k) * GH + g_end * H, T(0));
    if (drecurrent_bias != nullptr) std::fill(drecurrent_bias + g_begin * H, drecurrent_bias + g_end * H, T(0));
    return;
  }
  if (drecurrent_bias != nullptr) column_sums(r, dgrec + g_begin * H, cols, GH, drecurrent_bias + g_begin * H);
  if (!apply_dropout || in.recurrent_dropout == nullptr) {
    gemm(true, false, H, cols, r.size(), T(1), left + r0 * H, H, dgrec + r0 * GH + g_begin * H, GH, T(0),
         drecurrent + g_begin * H, GH);
    return;
  }
  for (int g = g_begin; g < g_end; ++g) {
    masked_rows(r, left, in.recurrent_dropout_of_gate(g), in.steps, H, scratch);
    gemm(true, false, H, H, r.size(), T(1), scratch, H, dgrec + r0 * GH + g * H, GH, T(0), drecurrent + g * H, GH);
  }
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
  template void input_gradients<T>(Range, const SequenceInputs<T>&, const T*, T*, T*, T*, T*);              \
  template void one_hot_kernel_grads_share<T>(int, int, const SequenceInputs<T>&, const T*, T*);             \
  template void recurrent_gradients<T>(Range, const SequenceInputs<T>&, const T*, bool, const T*, int, int, T*, \
                                       T*, T*);                                                               \
  template void sum_partials_share<T>(int, int, T*, const T*, int, long, long);
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace fusedrnn
