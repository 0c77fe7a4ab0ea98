// Stores that bypass the caches, for data written once and read back much later: the gates a
// training forward pass saves for its backward pass (megabytes, one row per batch row and step).
// A normal store first fetches its line (read-for-ownership) and then pushes out data the step
// still needs; a streaming store does neither.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#include "cpu/panel_gemm.h"

namespace fusedrnn {
namespace cpu {

// Saved gates and layer outputs at least this large are streamed (about a core's L2 cache:
// smaller ones are still in cache when the backward pass or the next layer reads them).
constexpr long kStreamBytes = 2L * 1024 * 1024;

// dst[0, kLanes<T>) = src[0, kLanes<T>), bypassing the caches where dst is aligned to a vector
// (a plain copy otherwise, and in builds without AVX).
template <typename T>
inline void stream_vector(T* dst, const T* src) {
#if defined(__AVX512F__) || defined(__AVX__)
  if ((reinterpret_cast<std::uintptr_t>(dst) % kVectorBytes) == 0) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) _mm512_stream_ps(reinterpret_cast<float*>(dst), _mm512_loadu_ps(src));
    else _mm512_stream_pd(reinterpret_cast<double*>(dst), _mm512_loadu_pd(src));
#else
    if constexpr (sizeof(T) == 4) _mm256_stream_ps(reinterpret_cast<float*>(dst), _mm256_loadu_ps(src));
    else _mm256_stream_pd(reinterpret_cast<double*>(dst), _mm256_loadu_pd(src));
#endif
    return;
  }
#endif
  std::copy(src, src + kLanes<T>, dst);
}

// dst[0, n) = src[0, n): streamed by whole vectors when `stream` (a plain copy for the rest).
template <typename T>
inline void copy_maybe_streamed(T* dst, const T* src, int n, bool stream) {
  int j = 0;
  if (stream)
    for (; j + kLanes<T> <= n; j += kLanes<T>) stream_vector(dst + j, src + j);
  std::copy(src + j, src + n, dst + j);
}

// Streaming stores are weakly ordered: a thread fences them before other threads read its data.
inline void stream_fence() {
#if defined(__AVX512F__) || defined(__AVX__)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace fusedrnn
