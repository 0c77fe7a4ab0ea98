// bfloat16 storage of float weights (opt-in, inference only): the upper 16 bits of a float32,
// rounded to nearest even. It keeps float32's exponent range and 8 bits of significand (a
// relative error of at most 2^-9 per weight); the kernels widen the values back to float32
// (a shift) as they load them and sum in float32.
#pragma once

#include <cstdint>
#include <cstring>

namespace fusedrnn {
namespace cpu {

using Bf16 = uint16_t;  // the bits of a bfloat16

// Nearest bfloat16 of a finite float (ties to even); the weights are checked finite before.
inline Bf16 to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<Bf16>((bits + rounding) >> 16);
}

inline float from_bf16(Bf16 b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

}  // namespace cpu
}  // namespace fusedrnn
