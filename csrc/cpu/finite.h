// Whether an array holds only finite values (no NaN, no inf): the input check of every op.
#pragma once

namespace fusedrnn {
namespace cpu {

// True when none of the n values at p is NaN or ±inf. One pass over the memory, on the
// kernels' threads when the array is large enough to pay for waking them.
bool all_finite(const float* p, long n);
bool all_finite(const double* p, long n);

}  // namespace cpu
}  // namespace fusedrnn
