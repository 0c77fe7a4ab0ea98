#include "cpu/finite.h"

#include <atomic>

#include "cpu/parallel.h"

namespace fusedrnn {
namespace cpu {

namespace {

template <typename T>
bool all_finite_shared(const T* p, long n) {
  constexpr long kBlock = 1 << 14;          // values per block: a look at the flag every 64-128 KB
  constexpr long kParallelFrom = 1L << 18;  // values from which the threads share the pass
  const int threads = n >= kParallelFrom ? region_threads() : 1;
  if (threads == 1) return values_finite(p, n);
  const long blocks = (n + kBlock - 1) / kBlock;
  std::atomic<bool> finite{true};
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long k = 0; k < blocks; ++k) {
    if (!finite.load(std::memory_order_relaxed)) continue;  // found already: skip the rest
    const long begin = k * kBlock;
    if (!values_finite(p + begin, std::min(kBlock, n - begin))) finite.store(false, std::memory_order_relaxed);
  }
  return finite.load();
}

}  // namespace

bool all_finite(const float* p, long n) { return all_finite_shared(p, n); }
bool all_finite(const double* p, long n) { return all_finite_shared(p, n); }

}  // namespace cpu
}  // namespace fusedrnn
