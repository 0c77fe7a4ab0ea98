// SimpleRNN step kernels: h_s = act(x_t W + b + h_{s-1} U). Saved gates: h_s itself.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "fusedrnn/cell_math.h"

namespace fusedrnn {
namespace cuda {
namespace {

template <typename T>
__global__ void rnn_forward_step(const ForwardStepArgs<T> a) {
  const auto act = static_cast<math::Activation>(a.activation);
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / a.units), j = static_cast<int>(i % a.units);
    const long row = row_of(b, a.steps, a.t);
    T* g = a.gates + row * a.units;
    T h;
    if (unit_active(a, b)) {
      h = math::activate(act, g[j] + a.rec[i]);
      g[j] = h;
    } else {
      g[j] = T(0);
      h = a.hprev[row * a.units + j];
    }
    store_state(a, b, j, i, h);
  }
}

template <typename T>
__global__ void rnn_backward_step(const BackwardStepArgs<T> a) {
  const auto act = static_cast<math::Activation>(a.activation);
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / a.units), j = static_cast<int>(i % a.units);
    const long row = row_of(b, a.steps, a.t);
    const T dh = a.dh[i] + recurrent_share(a, i) + output_grad(a, b, j);
    if (unit_active(a, b)) {
      a.dgx[row * a.units + j] = math::rnn_backward(act, a.gates[row * a.units + j], dh);
      a.dh[i] = T(0);
    } else {
      a.dgx[row * a.units + j] = T(0);
      a.dh[i] = dh;
    }
  }
}

}  // namespace

template <typename T>
void launch_rnn_forward_step(const ForwardStepArgs<T>& a, cudaStream_t stream) {
  rnn_forward_step<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("rnn_forward_step<<<>>>");
}

template <typename T>
void launch_rnn_backward_step(const BackwardStepArgs<T>& a, cudaStream_t stream) {
  rnn_backward_step<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("rnn_backward_step<<<>>>");
}

template void launch_rnn_forward_step<float>(const ForwardStepArgs<float>&, cudaStream_t);
template void launch_rnn_forward_step<double>(const ForwardStepArgs<double>&, cudaStream_t);
template void launch_rnn_backward_step<float>(const BackwardStepArgs<float>&, cudaStream_t);
template void launch_rnn_backward_step<double>(const BackwardStepArgs<double>&, cudaStream_t);

}  // namespace cuda
}  // namespace fusedrnn
