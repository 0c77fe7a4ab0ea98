// Error checking for the CUDA runtime: every call goes through FUSEDRNN_CUDA_CHECK, which turns
// a failure into a C++ exception carrying the CUDA error's name and description (pybind11 hands
// it to Python as RuntimeError). Kernel launches are checked with FUSEDRNN_CUDA_CHECK_LAUNCH.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace fusedrnn {
namespace cuda {

// The message of a failed CUDA call: "CUDA error cudaErrorX (description) in `call` at file:line".
inline std::string cuda_error_message(cudaError_t err, const char* call, const char* file, int line) {
  return std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in `" + call +
         "` at " + file + ":" + std::to_string(line);
}

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) throw std::runtime_error(cuda_error_message(err, call, file, line));
}

}  // namespace cuda
}  // namespace fusedrnn

#define FUSEDRNN_CUDA_CHECK(call) ::fusedrnn::cuda::check_cuda((call), #call, __FILE__, __LINE__)

// After a <<<...>>> launch: reports a bad launch configuration at once (faults inside the
// kernel surface at the next synchronising call).
#define FUSEDRNN_CUDA_CHECK_LAUNCH(what) ::fusedrnn::cuda::check_cuda(cudaGetLastError(), what, __FILE__, __LINE__)
