// Whether an array holds only finite values (no NaN, no inf): the input check of every op.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fusedrnn {
namespace cpu {

// True when none of the n values at p is NaN or ±inf, on the calling thread (for use inside a
// parallel region). IEEE-754: a value is NaN or inf exactly when all its exponent bits are set,
// i.e. when its bits without the sign reach those of +inf; the largest such magnitude is a
// max-reduction over unsigned integers, which the compiler vectorises.
template <typename T>
bool values_finite(const T* p, long n) {
  static_assert(std::is_floating_point<T>::value && (sizeof(T) == 4 || sizeof(T) == 8), "float or double");
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits kMagnitude = ~Bits(0) >> 1;
  constexpr Bits kInfinity = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits largest = 0;
  for (long i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, p + i, sizeof(T));
    largest = std::max<Bits>(largest, bits & kMagnitude);
  }
  return largest < kInfinity;
}

// The same check for a whole input array, on the kernels' threads when it is large enough to
// pay for waking them. Call it outside parallel regions.
bool all_finite(const float* p, long n);
bool all_finite(const double* p, long n);

}  // namespace cpu
}  // namespace fusedrnn
