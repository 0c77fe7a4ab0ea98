// Threading for the CPU backend: how many threads run, how work is split between them, and a
// GEMM that each thread of a parallel region computes a slice of.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "cpu/blas.h"

namespace fusedrnn {
namespace cpu {

// Number of OpenMP threads the kernels use (set_num_threads / OMP_NUM_THREADS).
int num_threads();
void set_num_threads(int n);

// The thread count for a kernel's parallel region. Called right before each region, it also
// puts OpenBLAS back on one thread if something raised it (threadpoolctl does, for every BLAS
// it finds): the kernels call BLAS from each of their own threads.
int region_threads();

// Runs body() on `threads` OpenMP threads (each reads its number with omp_get_thread_num()). On
// one thread it runs in the calling thread, outside any parallel region, where the body's
// `#pragma omp barrier`s do nothing: libgomp's one-thread region still wakes its barrier with a
// futex system call, twice per region or more, about a microsecond each, which a single step of
// a small cell (about 10 us) notices.
template <typename Body>
void parallel_region(int threads, Body&& body) {
  if (threads <= 1) {
    body();
    return;
  }
#pragma omp parallel num_threads(threads)
  body();
}

// A forward pass that would split the units of its steps between threads (with a barrier per
// step) runs on one thread instead when a step multiplies fewer than this many values
// (batch x K x gates*units): the barrier and the waking of the other threads would cost more
// than they save (a text-generation step, B=1, I=57, H=128, is about 100 k). The setting is
// a test hook: the tests set it to 0 so that small problems still take the parallel paths.
constexpr long kMinParallelStepMacs = 128 * 1024;
long min_parallel_step_macs();
void set_min_parallel_step_macs(long n);

// Tells the core that the thread is spinning on a flag (frees resources for a sibling thread).
inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Half-open range [begin, end) of a split of `n` items between `parts` workers, with every
// boundary but the last on a multiple of `align` (keeps vector loops and GEMM panels whole).
struct Range {
  int begin;
  int end;
  int size() const { return end - begin; }
};

inline Range split_range(int n, int part, int parts, int align = 16) {
  const int chunks = (n + align - 1) / align;
  const int per = chunks / parts;
  const int extra = chunks % parts;
  const int first = part * per + std::min(part, extra);
  const int count = per + (part < extra ? 1 : 0);
  return {std::min(n, first * align), std::min(n, (first + count) * align)};
}

// Blocks of `block` items (batch rows) that the threads of a region claim one at a time: each
// first the blocks of its own share (split_range of the blocks over `threads` shares), in order,
// then, once they are done, whatever is left of the other shares. Threads the machine holds up thus do
// fewer blocks, while a balanced run keeps each thread on its own share. Every thread keeps a
// Cursor of its own.
class BlockClaims {
 public:
  struct Cursor {
    int tid;
    int visited = 0;  // shares already emptied
  };

  BlockClaims(int items, int block, int threads)
      : items_(items), block_(block), blocks_((items + block - 1) / block), threads_(threads),
        next_(new std::atomic<int>[threads]) {
    for (int i = 0; i < threads; ++i) next_[i].store(split_range(blocks_, i, threads, 1).begin, std::memory_order_relaxed);
  }

  int blocks() const { return blocks_; }

  // The next block for the cursor's thread (false when none is left).
  bool next(Cursor& c, Range& items) {
    // Every share is visited, also where the region has fewer threads than were asked for.
    const int first_share = claim_others_first() ? 1 : 0;
    for (; c.visited < threads_; ++c.visited) {
      const int owner = (c.tid + first_share + c.visited) % threads_;
      const int k = next_[owner].fetch_add(1, std::memory_order_relaxed);
      if (k < split_range(blocks_, owner, threads_, 1).end) {
        items = Range{k * block_, std::min(items_, (k + 1) * block_)};
        return true;
      }
    }
    return false;
  }

  // Test hook: every thread starts with the next thread's share, so that every block goes down
  // the path of a block taken from another thread.
  static bool claim_others_first();
  static void set_claim_others_first(bool on);

 private:
  int items_, block_, blocks_, threads_;
  std::unique_ptr<std::atomic<int>[]> next_;
};

// Inside a parallel region: thread `tid` of `nt` computes its share of
// C[M,N] = alpha * op(A) op(B) + beta * C, split along the longer of M and N.
template <typename T>
void gemm_share(int tid, int nt, bool trans_a, bool trans_b, int m, int n, int k, T alpha,
                const T* a, int lda, const T* b, int ldb, T beta, T* c, int ldc) {
  if (m >= n) {
    const Range r = split_range(m, tid, nt);
    if (r.size() <= 0) return;
    const T* a_part = trans_a ? a + r.begin : a + static_cast<long>(r.begin) * lda;
    gemm(trans_a, trans_b, r.size(), n, k, alpha, a_part, lda, b, ldb, beta,
         c + static_cast<long>(r.begin) * ldc, ldc);
  } else {
    const Range r = split_range(n, tid, nt);
    if (r.size() <= 0) return;
    const T* b_part = trans_b ? b + static_cast<long>(r.begin) * ldb : b + r.begin;
    gemm(trans_a, trans_b, m, r.size(), k, alpha, a, lda, b_part, ldb, beta, c + r.begin, ldc);
  }
}

}  // namespace cpu
}  // namespace fusedrnn
