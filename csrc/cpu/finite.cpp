#include "cpu/finite.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "cpu/parallel.h"

namespace fusedrnn {
namespace cpu {

namespace {

// IEEE-754 layout: a value is NaN or inf exactly when all its exponent bits are set, i.e. when
// its bits without the sign reach those of +inf. The largest such magnitude over a block is a
// max-reduction over unsigned integers, which the compiler vectorises.
template <typename T, typename Bits>
Bits largest_magnitude_bits(const T* p, long n) {
  static_assert(sizeof(T) == sizeof(Bits), "bit pattern of T");
  constexpr Bits kMagnitude = ~Bits(0) >> 1;
  Bits largest = 0;
  for (long i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, p + i, sizeof(T));
    largest = std::max<Bits>(largest, bits & kMagnitude);
  }
  return largest;
}

template <typename T, typename Bits, Bits kInfinity>
bool all_finite_impl(const T* p, long n) {
  constexpr long kBlock = 1 << 14;           // values per block: a check of every ~64 KB
  constexpr long kParallelFrom = 1L << 18;   // values from which the threads share the pass
  const int threads = n >= kParallelFrom ? region_threads() : 1;
  const long blocks = (n + kBlock - 1) / kBlock;
  std::atomic<bool> finite{true};
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (long k = 0; k < blocks; ++k) {
    if (!finite.load(std::memory_order_relaxed)) continue;  // found already: skip the rest
    const long begin = k * kBlock, count = std::min(kBlock, n - begin);
    if (largest_magnitude_bits<T, Bits>(p + begin, count) >= kInfinity)
      finite.store(false, std::memory_order_relaxed);
  }
  return finite.load();
}

}  // namespace

bool all_finite(const float* p, long n) { return all_finite_impl<float, uint32_t, 0x7f800000u>(p, n); }

bool all_finite(const double* p, long n) {
  return all_finite_impl<double, uint64_t, 0x7ff0000000000000ull>(p, n);
}

}  // namespace cpu
}  // namespace fusedrnn
