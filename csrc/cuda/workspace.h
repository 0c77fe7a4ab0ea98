// Carves typed, aligned pieces out of one workspace buffer (the caller allocates it with its
// own allocator: CuPy's or PyTorch's caching allocator). With a null base it only measures.
#pragma once

#include <cstddef>

namespace fusedrnn {
namespace cuda {

class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<char*>(base)) {}

  template <typename U>
  U* take(long count) {
    const size_t offset = (used_ + kAlign - 1) / kAlign * kAlign;
    used_ = offset + static_cast<size_t>(count > 0 ? count : 0) * sizeof(U);
    return base_ == nullptr ? nullptr : reinterpret_cast<U*>(base_ + offset);
  }

  size_t used() const { return used_; }

 private:
  static constexpr size_t kAlign = 256;  // what cudaMalloc guarantees, enough for any vector load
  char* base_;
  size_t used_ = 0;
};

}  // namespace cuda
}  // namespace fusedrnn
