// HOST EMULATION of the cuBLAS subset that csrc/cuda uses: column-major reference loops (see ../build.py).
#pragma once
#include "cuda_runtime_api.h"
#define CUBLAS_VERSION 130002
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
enum cublasPointerMode_t { CUBLAS_POINTER_MODE_HOST = 0 };
struct cublasContext; typedef cublasContext* cublasHandle_t;
namespace emu { inline long gemms = 0; }
inline cublasStatus_t cublasCreate(cublasHandle_t* h) { *h = reinterpret_cast<cublasHandle_t>(0x1); return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t) { return CUBLAS_STATUS_SUCCESS; }
inline const char* cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_EMULATED"; }
inline const char* cublasGetStatusString(cublasStatus_t) { return "emulated cuBLAS error"; }
template <typename T>
cublasStatus_t emu_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const T* alpha, const T* A, int lda,
                        const T* B, int ldb, const T* beta, T* C, int ldc) {
  // Column-major; leading-dimension rules as cuBLAS checks them.
  if (lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m || m < 0 || n < 0 || k < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  ++emu::gemms;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double s = 0;
      for (int p = 0; p < k; ++p) {
        const T a = ta == CUBLAS_OP_N ? A[i + static_cast<long>(p) * lda] : A[p + static_cast<long>(i) * lda];
        const T b = tb == CUBLAS_OP_N ? B[p + static_cast<long>(j) * ldb] : B[j + static_cast<long>(p) * ldb];
        s += static_cast<double>(a) * b;
      }
      T& c = C[i + static_cast<long>(j) * ldc];
      c = static_cast<T>(*alpha * s + (*beta == T(0) ? 0.0 : static_cast<double>(*beta) * c));
    }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* al,
                                  const float* A, int lda, const float* B, int ldb, const float* be, float* C, int ldc) {
  return emu_gemm(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc); }
inline cublasStatus_t cublasDgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double* al,
                                  const double* A, int lda, const double* B, int ldb, const double* be, double* C, int ldc) {
  return emu_gemm(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc); }
template <typename T>
cublasStatus_t emu_gemm_strided(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const T* al, const T* A, int lda,
                                long long sa, const T* B, int ldb, long long sb, const T* be, T* C, int ldc, long long sc, int count) {
  for (int q = 0; q < count; ++q) {
    const cublasStatus_t s = emu_gemm(ta, tb, m, n, k, al, A + q * sa, lda, B + q * sb, ldb, be, C + q * sc, ldc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const float* al, const float* A, int lda, long long sa, const float* B, int ldb, long long sb, const float* be, float* C, int ldc,
    long long sc, int count) { return emu_gemm_strided(ta, tb, m, n, k, al, A, lda, sa, B, ldb, sb, be, C, ldc, sc, count); }
inline cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const double* al, const double* A, int lda, long long sa, const double* B, int ldb, long long sb, const double* be, double* C,
    int ldc, long long sc, int count) { return emu_gemm_strided(ta, tb, m, n, k, al, A, lda, sa, B, ldb, sb, be, C, ldc, sc, count); }
template <typename T>
cublasStatus_t emu_gemv(cublasOperation_t t, int m, int n, const T* al, const T* A, int lda, const T* x, int incx, const T* be, T* y, int incy) {
  if (t != CUBLAS_OP_N || lda < m || incx != 1 || incy != 1) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < m; ++i) {
    double s = 0;
    for (int j = 0; j < n; ++j) s += static_cast<double>(A[i + static_cast<long>(j) * lda]) * x[j];
    y[i] = static_cast<T>(*al * s + (*be == T(0) ? 0.0 : static_cast<double>(*be) * y[i]));
  }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSgemv(cublasHandle_t, cublasOperation_t t, int m, int n, const float* al, const float* A, int lda,
                                  const float* x, int incx, const float* be, float* y, int incy) { return emu_gemv(t, m, n, al, A, lda, x, incx, be, y, incy); }
inline cublasStatus_t cublasDgemv(cublasHandle_t, cublasOperation_t t, int m, int n, const double* al, const double* A, int lda,
                                  const double* x, int incx, const double* be, double* y, int incy) { return emu_gemv(t, m, n, al, A, lda, x, incx, be, y, incy); }
