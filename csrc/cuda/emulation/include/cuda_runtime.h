// HOST EMULATION of the CUDA device-side names that the kernels use (see ../build.py; testing only).
#pragma once
#include "cuda_runtime_api.h"
#include <cmath>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
namespace emu {
inline dim3 blockIdx, threadIdx, blockDim, gridDim;
// Every emulated thread is a block of one thread: grid-stride loops and block reductions keep
// their meaning (threadIdx.x == 0 always).
template <class F> void launch(unsigned grid, unsigned block, F f) {
  const unsigned long total = static_cast<unsigned long>(grid) * block;
  gridDim.x = static_cast<unsigned>(total); blockDim.x = 1; threadIdx.x = 0;
  for (unsigned long k = 0; k < total; ++k) { blockIdx.x = static_cast<unsigned>(k); f(); }
  ++launches;
}
}
using emu::blockIdx; using emu::threadIdx; using emu::blockDim; using emu::gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
inline bool __syncthreads_or(bool v) { return v; }
inline int atomicExch(int* p, int v) { int o = *p; *p = v; return o; }
using std::isfinite;
