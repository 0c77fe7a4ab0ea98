#include "cpu/workspace.h"

#include <cstdlib>
#include <new>

namespace fusedrnn {
namespace cpu {

namespace {

struct Block {
  void* data = nullptr;
  size_t bytes = 0;
  ~Block() { std::free(data); }
};

// Blocks of the calling thread. Nested Workspaces (none today) would take later blocks.
std::vector<std::unique_ptr<Block>>& thread_pool() {
  thread_local std::vector<std::unique_ptr<Block>> pool;
  return pool;
}

thread_local size_t blocks_in_use = 0;

}  // namespace

Workspace::Workspace() : first_block_(blocks_in_use), next_block_(blocks_in_use) {}

Workspace::~Workspace() { blocks_in_use = first_block_; }

void* Workspace::take_bytes(size_t bytes) {
  auto& pool = thread_pool();
  if (next_block_ == pool.size()) pool.push_back(std::make_unique<Block>());
  Block& block = *pool[next_block_];
  ++next_block_;
  blocks_in_use = next_block_;
  const size_t want = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  if (block.bytes < want) {
    std::free(block.data);
    block.data = std::aligned_alloc(64, want);
    if (block.data == nullptr) {
      block.bytes = 0;
      throw std::bad_alloc();
    }
    block.bytes = want;
  }
  return block.data;
}

}  // namespace cpu
}  // namespace fusedrnn
