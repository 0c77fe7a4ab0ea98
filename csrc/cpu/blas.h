// Thin typed wrappers over the CBLAS GEMM of the scipy-openblas32 library. A product of one row
// (M = 1, K > 0) goes to GEMV: OpenBLAS's GEMM copies all of op(B) into its packed layout even
// for one row (for a decoder's 20 MB output projection, 2.8 ms per word against 0.6-1.1 ms).
//
// OpenBLAS runs single-threaded inside fusedrnn: the kernels split every GEMM between their own
// OpenMP threads (see parallel.h), so that one thread pool does all the work and no two pools
// fight over the cores.
#pragma once

#include <cblas.h>

namespace fusedrnn {
namespace cpu {

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (m == 1 && k > 0) {  // c = op(B)^T a, a's K values lda apart when transposed
    if (trans_b) scipy_cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb, a, trans_a ? lda : 1, beta, c, 1);
    else scipy_cblas_sgemv(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb, a, trans_a ? lda : 1, beta, c, 1);
    return;
  }
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
}

inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
                 int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (m == 1 && k > 0) {
    if (trans_b) scipy_cblas_dgemv(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb, a, trans_a ? lda : 1, beta, c, 1);
    else scipy_cblas_dgemv(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb, a, trans_a ? lda : 1, beta, c, 1);
    return;
  }
  scipy_cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
}

// Keeps OpenBLAS on one thread; called once when the module loads.
inline void blas_use_single_thread() { scipy_openblas_set_num_threads(1); }

}  // namespace cpu
}  // namespace fusedrnn
