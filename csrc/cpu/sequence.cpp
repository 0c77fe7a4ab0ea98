#include "cpu/sequence.h"

#include <algorithm>
#include <atomic>

namespace fusedrnn {
namespace cpu {

namespace {
std::atomic<bool> g_poison{false};

// dst[b, t, :] = src[b, t, :] * m[b, :] for the rows r of the (B*T, d) matrices.
template <typename T>
void masked_rows(Range r, const T* src, const T* m, int steps, int d, T* dst) {
  for (int row = r.begin; row < r.end; ++row) {
    const T* mb = m + static_cast<long>(row / steps) * d;
    const T* s = src + static_cast<long>(row) * d;
    T* o = dst + static_cast<long>(row) * d;
    for (int k = 0; k < d; ++k) o[k] = s[k] * mb[k];
  }
}

// dst[b, t, :] = src[b, t, :] * m[b, :] for this thread's share of the B*T rows.
template <typename T>
void masked_rows_share(int tid, int nt, const T* src, const T* m, int B, int steps, int d, T* dst) {
  masked_rows(split_range(B * steps, tid, nt, 1), src, m, steps, d, dst);
}

// One-hot input: dkernel[id, :] += dgx[row, :] * dropout_g[b, id] over all rows; each thread
// owns a range of columns, so the scatter needs no atomics.
template <typename T>
void scatter_kernel_grads_share(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dkernel) {
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
}  // namespace

bool poison_outputs() { return g_poison.load(); }
void set_poison_outputs(bool on) { g_poison.store(on); }

template <typename T>
void column_sums_share(int tid, int nt, const T* a, long rows, int cols, int lda, T* out) {
  const Range r = split_range(cols, tid, nt);
  for (int c = r.begin; c < r.end; ++c) out[c] = T(0);
  for (long row = 0; row < rows; ++row) {
    const T* ar = a + row * lda;
    for (int c = r.begin; c < r.end; ++c) out[c] += ar[c];
  }
}

template <typename T>
void input_gradients(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dx, T* dkernel,
                     T* dbias, T* scratch) {
  const int B = in.batch, BT = B * in.steps, I = in.input_size, H = in.units, GH = in.width();
  if (dbias != nullptr) column_sums_share(tid, nt, dgx, BT, GH, GH, dbias);
  if (in.ids != nullptr) {
    scatter_kernel_grads_share(tid, nt, in, dgx, dkernel);
#pragma omp barrier
    return;
  }
  // d_kernel: x^T dgx, with x dropped out by the mask of each gate.
  if (in.dropout == nullptr) {
    gemm_share(tid, nt, true, false, I, GH, BT, T(1), in.x, I, dgx, GH, T(0), dkernel, GH);
  } else {
    for (int m = 0; m < in.n_dropout; ++m) {
      masked_rows_share(tid, nt, in.x, in.dropout + static_cast<long>(m) * B * I, B, in.steps, I, scratch);
#pragma omp barrier
      const int g0 = in.n_dropout == 1 ? 0 : m, g1 = in.n_dropout == 1 ? in.gates : m + 1;
      gemm_share(tid, nt, true, false, I, (g1 - g0) * H, BT, T(1), scratch, I, dgx + g0 * H, GH, T(0),
                 dkernel + g0 * H, GH);
#pragma omp barrier
    }
  }
  // dx = sum_g (dgx_g kernel_g^T) * dropout_g, split by rows so each thread owns its rows.
  const Range r = split_range(BT, tid, nt, 1);
  if (r.size() > 0) {
    T* dxr = dx + static_cast<long>(r.begin) * I;
    const T* dgr = dgx + static_cast<long>(r.begin) * GH;
    if (in.dropout == nullptr || in.n_dropout == 1) {
      gemm(false, true, r.size(), I, GH, T(1), dgr, GH, in.kernel, GH, T(0), dxr, I);
      if (in.dropout != nullptr) {
        for (int row = r.begin; row < r.end; ++row) {
          const T* m = in.dropout + static_cast<long>(row / in.steps) * I;
          for (int k = 0; k < I; ++k) dx[static_cast<long>(row) * I + k] *= m[k];
        }
      }
    } else {
      std::vector<T> part(static_cast<size_t>(r.size()) * I);
      for (long k = 0; k < static_cast<long>(r.size()) * I; ++k) dxr[k] = T(0);
      for (int g = 0; g < in.gates; ++g) {
        gemm(false, true, r.size(), I, H, T(1), dgr + g * H, GH, in.kernel + g * H, GH, T(0), part.data(), I);
        const T* mg = in.dropout_of_gate(g);
        for (int row = r.begin; row < r.end; ++row) {
          const T* m = mg + static_cast<long>(row / in.steps) * I;
          const T* p = part.data() + static_cast<long>(row - r.begin) * I;
          T* o = dx + static_cast<long>(row) * I;
          for (int k = 0; k < I; ++k) o[k] += p[k] * m[k];
        }
      }
    }
  }
#pragma omp barrier
}

template <typename T>
void recurrent_gradients(int tid, int nt, const SequenceInputs<T>& in, const T* left, bool apply_dropout,
                         const T* dgrec, int g_begin, int g_end, T* drecurrent, T* drecurrent_bias,
                         T* scratch) {
  const int B = in.batch, BT = B * in.steps, H = in.units, GH = in.width();
  if (drecurrent_bias != nullptr) {
    column_sums_share(tid, nt, dgrec + g_begin * H, BT, (g_end - g_begin) * H, GH, drecurrent_bias + g_begin * H);
  }
  if (!apply_dropout || in.recurrent_dropout == nullptr) {
    gemm_share(tid, nt, true, false, H, (g_end - g_begin) * H, BT, T(1), left, H, dgrec + g_begin * H, GH,
               T(0), drecurrent + g_begin * H, GH);
  } else {
    for (int g = g_begin; g < g_end; ++g) {
      masked_rows_share(tid, nt, left, in.recurrent_dropout_of_gate(g), B, in.steps, H, scratch);
#pragma omp barrier
      gemm_share(tid, nt, true, false, H, H, BT, T(1), scratch, H, dgrec + g * H, GH, T(0),
                 drecurrent + g * H, GH);
#pragma omp barrier
    }
  }
#pragma omp barrier
}

#define FUSEDRNN_INSTANTIATE(T)                                                                        \
  template void column_sums_share<T>(int, int, const T*, long, int, int, T*);                         \
  template void input_gradients<T>(int, int, const SequenceInputs<T>&, const T*, T*, T*, T*, T*);     \
  template void recurrent_gradients<T>(int, int, const SequenceInputs<T>&, const T*, bool, const T*,  \
                                       int, int, T*, T*, T*);
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace fusedrnn
