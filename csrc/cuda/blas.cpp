#include "cuda/blas.h"

#include <climits>
#include <map>

#include "cuda/cuda_check.h"

namespace fusedrnn {
namespace cuda {
namespace {

// One handle per device for the calling thread (cuBLAS handles must not be shared between
// threads that change their stream concurrently). The handles are never destroyed: at process
// exit the CUDA runtime may already be gone, and a handle per thread and device is small.
class HandleCache {
 public:
  cublasHandle_t get(int device) {
    auto it = handles_.find(device);
    if (it != handles_.end()) return it->second;
    cublasHandle_t h = nullptr;
    FUSEDRNN_CUBLAS_CHECK(cublasCreate(&h));
    handles_[device] = h;
    return h;
  }

 private:
  std::map<int, cublasHandle_t> handles_;
};

cublasHandle_t thread_handle() {
  thread_local HandleCache cache;
  int device = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&device));
  return cache.get(device);
}

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

int as_int(long v, const char* what) {
  if (v < 0 || v > INT_MAX) throw std::runtime_error(std::string("fusedrnn CUDA: ") + what + " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}

// Typed entry points.
cublasStatus_t xgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                     const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                     float* C, int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t xgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                     const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                     double* C, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t xgemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const float* alpha, const float* A, int lda, long long sa, const float* B, int ldb,
                             long long sb, const float* beta, float* C, int ldc, long long sc, int count) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}
cublasStatus_t xgemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const double* alpha, const double* A, int lda, long long sa, const double* B, int ldb,
                             long long sb, const double* beta, double* C, int ldc, long long sc, int count) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}
cublasStatus_t xgemv(cublasHandle_t h, cublasOperation_t t, int m, int n, const float* alpha, const float* A,
                     int lda, const float* x, const float* beta, float* y) {
  return cublasSgemv(h, t, m, n, alpha, A, lda, x, 1, beta, y, 1);
}
cublasStatus_t xgemv(cublasHandle_t h, cublasOperation_t t, int m, int n, const double* alpha, const double* A,
                     int lda, const double* x, const double* beta, double* y) {
  return cublasDgemv(h, t, m, n, alpha, A, lda, x, 1, beta, y, 1);
}

}  // namespace

Blas::Blas(cudaStream_t stream, bool allow_tf32) : handle_(thread_handle()), stream_(stream) {
  FUSEDRNN_CUBLAS_CHECK(cublasSetStream(handle_, stream));
  FUSEDRNN_CUBLAS_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
  FUSEDRNN_CUBLAS_CHECK(cublasSetMathMode(handle_, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

template <typename T>
void Blas::gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, long lda, const T* B,
                long ldb, T beta, T* C, long ldc) const {
  if (M <= 0 || N <= 0) return;
  // Column-major C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M).
  FUSEDRNN_CUBLAS_CHECK(xgemm(handle_, op(trans_b), op(trans_a), N, M, K, &alpha, B, as_int(ldb, "ldb"), A,
                              as_int(lda, "lda"), &beta, C, as_int(ldc, "ldc")));
}

template <typename T>
void Blas::gemm_batched(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, long lda,
                        long stride_a, const T* B, long ldb, long stride_b, T beta, T* C, long ldc, long stride_c,
                        int count) const {
  if (M <= 0 || N <= 0 || count <= 0) return;
  FUSEDRNN_CUBLAS_CHECK(xgemm_strided(handle_, op(trans_b), op(trans_a), N, M, K, &alpha, B, as_int(ldb, "ldb"),
                                      stride_b, A, as_int(lda, "lda"), stride_a, &beta, C, as_int(ldc, "ldc"),
                                      stride_c, count));
}

template <typename T>
void Blas::column_sums(int rows, int cols, const T* A, long lda, const T* ones, T* out) const {
  if (cols <= 0) return;
  const T one = T(1), zero = T(0);
  // Row-major A (rows, cols) is column-major A^T (cols, rows): out = A^T ones.
  FUSEDRNN_CUBLAS_CHECK(xgemv(handle_, CUBLAS_OP_N, cols, rows, &one, A, as_int(lda, "lda"), ones, &zero, out));
}

#define FUSEDRNN_INSTANTIATE(T)                                                                             \
  template void Blas::gemm<T>(bool, bool, int, int, int, T, const T*, long, const T*, long, T, T*, long) const; \
  template void Blas::gemm_batched<T>(bool, bool, int, int, int, T, const T*, long, long, const T*, long, long, \
                                      T, T*, long, long, int) const;                                       \
  template void Blas::column_sums<T>(int, int, const T*, long, const T*, T*) const;
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cuda
}  // namespace fusedrnn
