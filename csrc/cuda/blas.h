// cuBLAS for the row-major buffers of the recurrent kernels: one handle per (host thread,
// device), bound to the caller's stream for each op; GEMMs in row-major terms (the usual
// transpose trick: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the
// operands swap and the op flags carry over), column sums as a GEMV against a vector of ones.
// Every cuBLAS call is checked and a failure becomes a C++ exception naming the status.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace fusedrnn {
namespace cuda {

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
                             cublasGetStatusString(status) + ") in `" + call + "` at " + file + ":" +
                             std::to_string(line));
}

}  // namespace cuda
}  // namespace fusedrnn

#define FUSEDRNN_CUBLAS_CHECK(call) ::fusedrnn::cuda::check_cublas((call), #call, __FILE__, __LINE__)

namespace fusedrnn {
namespace cuda {

class Blas {
 public:
  // The calling thread's handle for the current device, bound to `stream`; TF32 tensor-core
  // math for float GEMMs when allow_tf32 (never for double).
  Blas(cudaStream_t stream, bool allow_tf32);

  cudaStream_t stream() const { return stream_; }

  // Row-major C (M, N) = alpha op(A) op(B) + beta C, op(X) = X^T when the flag is set; lda, ldb
  // and ldc are the row strides of A, B and C as stored.
  template <typename T>
  void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, long lda, const T* B, long ldb,
            T beta, T* C, long ldc) const;

  // `count` independent GEMMs of the same shape, operand k at A + k*stride_a etc.
  template <typename T>
  void gemm_batched(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, long lda, long stride_a,
                    const T* B, long ldb, long stride_b, T beta, T* C, long ldc, long stride_c, int count) const;

  // out[c] = sum_{r < rows} A[r * lda + c] for c < cols; `ones` holds at least `rows` ones.
  template <typename T>
  void column_sums(int rows, int cols, const T* A, long lda, const T* ones, T* out) const;

 private:
  cublasHandle_t handle_;
  cudaStream_t stream_;
};

}  // namespace cuda
}  // namespace fusedrnn
