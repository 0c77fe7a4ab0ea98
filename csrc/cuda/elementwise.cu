// Small elementwise kernels around the GEMMs: fills, bias broadcast, dropout masks, the first
// unmasked step of each row, the NaN/inf check of the inputs and the final state gradients.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fusedrnn {
namespace cuda {
namespace {

#define FUSEDRNN_GRID_LOOP(i, n) \
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<long>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void fill(T* p, long n, T value) {
  FUSEDRNN_GRID_LOOP(k, n) p[k] = value;
}

template <typename T>
__global__ void broadcast_row(T* dst, long rows, int cols, long ld, const T* row) {
  FUSEDRNN_GRID_LOOP(k, rows * cols) dst[(k / cols) * ld + k % cols] = row[k % cols];
}

template <typename T>
__global__ void scale_by_batch(T* dst, const T* src, const T* m, int steps, int width, long n) {
  FUSEDRNN_GRID_LOOP(k, n) {
    const long row = k / width;  // (b, t)
    dst[k] = src[k] * m[(row / steps) * width + k % width];
  }
}

template <typename T>
__global__ void masked_sum(T* dst, const T* parts, const T* masks, int n_parts, int batch, int steps, int width,
                           long n) {
  const long mask_slab = static_cast<long>(batch) * width;
  FUSEDRNN_GRID_LOOP(k, n) {
    const long mk = (k / width / steps) * width + k % width;
    T sum = T(0);
    for (int g = 0; g < n_parts; ++g) sum += parts[g * n + k] * masks[g * mask_slab + mk];
    dst[k] = sum;
  }
}

template <typename T>
__global__ void dropped_state(T* dst, const T* h, long h_ld, const T* rdrop, int n, int units, long slab) {
  FUSEDRNN_GRID_LOOP(k, slab) {
    const T v = h[(k / units) * h_ld + k % units];
    for (int m = 0; m < n; ++m) dst[m * slab + k] = v * rdrop[m * slab + k];
  }
}

__global__ void first_active(int* first, const uint8_t* mask, int batch, int steps, bool go_backwards) {
  FUSEDRNN_GRID_LOOP(b, static_cast<long>(batch)) {
    int s = 0;
    while (s < steps && mask[b * steps + (go_backwards ? steps - 1 - s : s)] == 0) ++s;
    first[b] = s;
  }
}

template <typename T>
__global__ void nonfinite_flag(const T* p, long n, int* flag) {
  bool bad = false;
  FUSEDRNN_GRID_LOOP(k, n) bad |= !isfinite(p[k]);
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(flag, 1);
}

template <typename T>
__global__ void finish_state_grads(const BackwardStepArgs<T> a, T* dh0, T* dc0) {
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    dh0[i] = a.dh[i] + recurrent_share(a, i);
    if (dc0 != nullptr) dc0[i] = a.dc[i];
  }
}

}  // namespace

template <typename T>
void launch_fill(T* p, long n, T value, cudaStream_t stream) {
  if (n <= 0) return;
  fill<T><<<blocks_for(n), kThreads, 0, stream>>>(p, n, value);
  FUSEDRNN_CUDA_CHECK_LAUNCH("fill<<<>>>");
}

template <typename T>
void launch_broadcast_row(T* dst, long rows, int cols, long ld, const T* row, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  broadcast_row<T><<<blocks_for(rows * cols), kThreads, 0, stream>>>(dst, rows, cols, ld, row);
  FUSEDRNN_CUDA_CHECK_LAUNCH("broadcast_row<<<>>>");
}

template <typename T>
void launch_scale_by_batch(T* dst, const T* src, const T* m, int batch, int steps, int width, cudaStream_t stream) {
  const long n = static_cast<long>(batch) * steps * width;
  if (n <= 0) return;
  scale_by_batch<T><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, m, steps, width, n);
  FUSEDRNN_CUDA_CHECK_LAUNCH("scale_by_batch<<<>>>");
}

template <typename T>
void launch_masked_sum(T* dst, const T* parts, const T* masks, int n, int batch, int steps, int width,
                       cudaStream_t stream) {
  const long total = static_cast<long>(batch) * steps * width;
  if (total <= 0) return;
  masked_sum<T><<<blocks_for(total), kThreads, 0, stream>>>(dst, parts, masks, n, batch, steps, width, total);
  FUSEDRNN_CUDA_CHECK_LAUNCH("masked_sum<<<>>>");
}

template <typename T>
void launch_dropped_state(T* dst, const T* h, long h_ld, const T* rdrop, int n, int batch, int units,
                          cudaStream_t stream) {
  const long slab = static_cast<long>(batch) * units;
  if (slab <= 0) return;
  dropped_state<T><<<blocks_for(slab), kThreads, 0, stream>>>(dst, h, h_ld, rdrop, n, units, slab);
  FUSEDRNN_CUDA_CHECK_LAUNCH("dropped_state<<<>>>");
}

void launch_first_active(int* first, const uint8_t* mask, int batch, int steps, bool go_backwards,
                         cudaStream_t stream) {
  if (batch <= 0) return;
  first_active<<<blocks_for(batch), kThreads, 0, stream>>>(first, mask, batch, steps, go_backwards);
  FUSEDRNN_CUDA_CHECK_LAUNCH("first_active<<<>>>");
}

template <typename T>
void launch_nonfinite_flag(const T* p, long n, int* flag, cudaStream_t stream) {
  if (n <= 0) return;
  nonfinite_flag<T><<<std::min(blocks_for(n), 1024u), kThreads, 0, stream>>>(p, n, flag);
  FUSEDRNN_CUDA_CHECK_LAUNCH("nonfinite_flag<<<>>>");
}

template <typename T>
void launch_finish_state_grads(const BackwardStepArgs<T>& a, T* dh0, T* dc0, cudaStream_t stream) {
  finish_state_grads<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a, dh0, dc0);
  FUSEDRNN_CUDA_CHECK_LAUNCH("finish_state_grads<<<>>>");
}

#define FUSEDRNN_INSTANTIATE(T)                                                                          \
  template void launch_fill<T>(T*, long, T, cudaStream_t);                                               \
  template void launch_broadcast_row<T>(T*, long, int, long, const T*, cudaStream_t);                    \
  template void launch_scale_by_batch<T>(T*, const T*, const T*, int, int, int, cudaStream_t);           \
  template void launch_masked_sum<T>(T*, const T*, const T*, int, int, int, int, cudaStream_t);          \
  template void launch_dropped_state<T>(T*, const T*, long, const T*, int, int, int, cudaStream_t);      \
  template void launch_nonfinite_flag<T>(const T*, long, int*, cudaStream_t);                            \
  template void launch_finish_state_grads<T>(const BackwardStepArgs<T>&, T*, T*, cudaStream_t);
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cuda
}  // namespace fusedrnn
