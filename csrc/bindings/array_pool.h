// Memory for the arrays the kernels return, recycled between calls.
//
// A training loop calls the same ops with the same shapes over and over; the arrays they
// return (outputs, saved gates, gradients: megabytes each) would otherwise be fresh memory
// every time, and the page faults and zero-filling of fresh memory cost a sizeable share of a
// fused step. Blocks released by NumPy (when the array is garbage-collected) go back to a pool
// keyed by size and are handed out again; the pool keeps at most kMaxCachedBytes.
#pragma once

#include <cstddef>

namespace fusedrnn {
namespace bindings {

constexpr size_t kMaxCachedBytes = size_t(1) << 30;

// A 64-byte aligned block of at least `bytes` bytes (reused when one of that size is free).
void* pool_allocate(size_t bytes);
// Returns a block from pool_allocate; frees it when the pool is full.
void pool_release(void* block) noexcept;
// Bytes currently cached (free, waiting for reuse).
size_t pool_cached_bytes();

}  // namespace bindings
}  // namespace fusedrnn
