// A small GEMM for the per-step recurrent products, C[M, N] (+)= A[M, K] * B[K, N], where B is a
// slice of the recurrent kernel that stays the same for every step of a sequence.
//
// B is packed once per call into panels of 16 columns (K x 16 values each, zero-padded), so the
// per-step products stream it without the repacking a general BLAS call does every time; with
// M = batch (often 1-64) and one thread's share of the units as N, that repacking and the call
// overhead dominate otherwise. The float kernel uses AVX-512 when the build targets it; other
// builds and float64 go through BLAS on the unpacked matrix, so the interface is the same.
#pragma once

#include <vector>

#include "cpu/blas.h"

namespace fusedrnn {
namespace cpu {

constexpr int kPanelWidth = 16;

// A K x N matrix B (element (k, n) at src[k * k_stride + n * n_stride]) ready for packed_gemm.
template <typename T>
class PackedMatrix {
 public:
  PackedMatrix() = default;
  // Packs (or, without a packed kernel, just records) B. `src` must outlive the object.
  void pack(int k, int n, const T* src, long k_stride, long n_stride);

  int rows() const { return k_; }
  int cols() const { return n_; }
  // C[M, N] = beta * C + A[M, k_begin:k_end] * B[k_begin:k_end, :], beta in {0, 1}.
  void multiply(int m, const T* a, int lda, int k_begin, int k_end, T beta, T* c, int ldc) const;

 private:
  int k_ = 0, n_ = 0;
  const T* src_ = nullptr;
  long k_stride_ = 0, n_stride_ = 0;
  std::vector<T> panels_;  // ceil(N / 16) panels of K x 16
};

}  // namespace cpu
}  // namespace fusedrnn
