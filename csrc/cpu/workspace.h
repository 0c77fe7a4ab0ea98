// Scratch memory for one kernel call, recycled across calls made from the same thread.
//
// The backward pass needs several buffers the size of the whole sequence (gate gradients:
// B*T*G*H values). Allocating them fresh every call costs a page fault and a zero-fill per
// page; keeping them between calls makes that a one-time cost. Buffers are uninitialised.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace fusedrnn {
namespace cpu {

class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // An uninitialised array of n values, valid until this Workspace is destroyed. Each call
  // takes the next block of the calling thread's pool, growing it when it is too small.
  template <typename T>
  T* take(size_t n) {
    return static_cast<T*>(take_bytes(n * sizeof(T)));
  }

 private:
  void* take_bytes(size_t bytes);
  size_t first_block_;
  size_t next_block_;
};

}  // namespace cpu
}  // namespace fusedrnn
