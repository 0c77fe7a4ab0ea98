// A dense layer's kernel (in, units) packed once into the panel layout (panel_gemm.h), for
// products of few rows, such as a decoder's output projection at every word: one pass over the
// packed kernel serves all the rows, where BLAS's GEMM first copies the whole kernel into its
// own layout on every call and GEMV reads it once per row.
#pragma once

#include <vector>

#include "cpu/aligned_vector.h"
#include "cpu/bfloat16.h"

namespace fusedrnn {
namespace cpu {

// Up to this many rows a product on the packed kernel beats BLAS's GEMM (which packs per call).
constexpr int kPackedDenseRows = 16;

// kernel (in, units), row-major, packed (PanelMatrix values of units_plan).
template <typename T>
AlignedVector<T> pack_dense(int in, int units, const T* kernel);
// The same rounded to bfloat16 (paired panels, bf16_panels); std::domain_error when a weight is
// beyond bfloat16's range.
AlignedVector<Bf16> pack_dense_bf16(int in, int units, const float* kernel);

// y (n, units) = x (n, in) kernel + bias (null: none), the kernel given packed, in T (`packed`)
// or bfloat16 (`packed_bf16`, float only; the other pointer null).
template <typename T>
void packed_dense_forward(int n, int in, int units, const T* x, const T* packed, const Bf16* packed_bf16,
                          const T* bias, T* y);

}  // namespace cpu
}  // namespace fusedrnn
