// What the kernel files share: launch geometry and the small device helpers of the step kernels.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/step_args.h"

namespace fusedrnn {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for n elements, one thread each (grid-stride loops cover whatever this caps).
inline unsigned blocks_for(long n) {
  const long b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max(1L, std::min(b, 65535L * 16)));
}

// The step kernels: one thread per (b, j) of the B*H units.
#define FUSEDRNN_FOR_EACH_UNIT(a, i)                                                              \
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;                         \
       i < static_cast<long>((a).batch) * (a).units; i += static_cast<long>(gridDim.x) * blockDim.x)

template <typename Args>
__device__ __forceinline__ bool unit_active(const Args& a, int b) {
  return a.mask == nullptr || a.mask[static_cast<long>(b) * a.steps + a.t] != 0;
}

// Whether row b has had an unmasked step at or before step s (its outputs are zero before).
template <typename Args>
__device__ __forceinline__ bool unit_seen(const Args& a, int b) {
  return a.first == nullptr || a.s >= a.first[b];
}

// Row (b, t) of a (B, T, width) buffer.
__device__ __forceinline__ long row_of(int b, int steps, int t) { return static_cast<long>(b) * steps + t; }

// Forward: writes h_s of unit i = (b, j) to h_next, the outputs and the dropped-out copies.
template <typename T>
__device__ __forceinline__ void store_state(const ForwardStepArgs<T>& a, int b, int j, long i, T h) {
  a.h_next[b * a.h_next_ld + j] = h;
  a.outputs[row_of(b, a.steps, a.s) * a.units + j] = unit_seen(a, b) ? h : T(0);
  if (a.dropped_next != nullptr) {
    const long slab = static_cast<long>(a.batch) * a.units;
    for (int m = 0; m < a.n_rdrop; ++m) a.dropped_next[m * slab + i] = h * a.rdrop[m * slab + i];
  }
}

// Backward: the gradient reaching h_s from step s+1's recurrent matmul (R, see step_args.h).
template <typename T>
__device__ __forceinline__ T recurrent_share(const BackwardStepArgs<T>& a, long i) {
  if (a.R == nullptr) return T(0);
  const long slab = static_cast<long>(a.batch) * a.units;
  T sum = T(0);
  for (int m = 0; m < a.n_R; ++m) {
    const T r = a.R[m * slab + i];
    sum += a.rdrop == nullptr ? r : r * a.rdrop[(a.n_rdrop == 1 ? 0 : m) * slab + i];
  }
  return sum;
}

// Backward: the output gradient of unit (b, j) at step s (zero before the first unmasked step).
template <typename T>
__device__ __forceinline__ T output_grad(const BackwardStepArgs<T>& a, int b, int j) {
  if (a.d_outputs == nullptr || !unit_seen(a, b)) return T(0);
  return a.d_outputs[row_of(b, a.steps, a.s) * a.units + j];
}

}  // namespace cuda
}  // namespace fusedrnn
