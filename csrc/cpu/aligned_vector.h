// std::vector whose storage starts on a cache line (64 bytes), for packed weights kept between
// calls: the kernels load them one vector (32 or 64 bytes) at a time, and a vector that straddles
// two cache lines costs two loads. (operator new aligns only to 16 bytes.)
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace fusedrnn {
namespace cpu {

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};

  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}  // NOLINT: rebinding, as allocators do

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlignment); }

  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace cpu
}  // namespace fusedrnn
