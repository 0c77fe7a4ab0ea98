#include "bindings/array_pool.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

namespace fusedrnn {
namespace bindings {

namespace {

struct Pool {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;       // size -> block
  std::unordered_map<void*, size_t> block_sizes;  // every live or free block
  size_t cached = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: arrays may outlive module teardown
  return *p;
}

size_t rounded(size_t bytes) { return bytes == 0 ? 64 : (bytes + 63) / 64 * 64; }

}  // namespace

void* pool_allocate(size_t bytes) {
  const size_t size = rounded(bytes);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    auto it = p.free_blocks.find(size);
    if (it != p.free_blocks.end()) {
      void* block = it->second;
      p.free_blocks.erase(it);
      p.cached -= size;
      return block;
    }
  }
  void* block = std::aligned_alloc(64, size);
  if (block == nullptr) throw std::bad_alloc();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.block_sizes[block] = size;
  return block;
}

void pool_release(void* block) noexcept {
  if (block == nullptr) return;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.block_sizes.find(block);
  if (it == p.block_sizes.end()) return;  // not ours: cannot happen
  const size_t size = it->second;
  if (p.cached + size <= kMaxCachedBytes) {
    p.free_blocks.emplace(size, block);
    p.cached += size;
    return;
  }
  p.block_sizes.erase(it);
  std::free(block);
}

size_t pool_cached_bytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return p.cached;
}

}  // namespace bindings
}  // namespace fusedrnn
