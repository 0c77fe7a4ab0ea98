// Thin typed wrappers over the CBLAS GEMM of the scipy-openblas32 library.
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
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
}

inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
                 int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  scipy_cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
}

// Keeps OpenBLAS on one thread; called once when the module loads.
inline void blas_use_single_thread() { scipy_openblas_set_num_threads(1); }

}  // namespace cpu
}  // namespace fusedrnn
