// LSTM step kernels, Keras's gate order i, f, c (g here), o. Saved gates: their activations;
// aux: the cell state after each step.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "fusedrnn/cell_math.h"

namespace fusedrnn {
namespace cuda {
namespace {

// c_{s-1} of unit (b, j): c0 at the first step, else the cell state saved at step s-1.
template <typename Args>
__device__ __forceinline__ auto lstm_c_prev(const Args& a, int b, int j) {
  return a.t_prev < 0 ? a.c0[static_cast<long>(b) * a.units + j] : a.aux[row_of(b, a.steps, a.t_prev) * a.units + j];
}

template <typename T>
__global__ void lstm_forward_step(const ForwardStepArgs<T> a) {
  const int H = a.units;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    const long row = row_of(b, a.steps, a.t);
    T* g = a.gates + row * 4 * H;
    const T* r = a.rec + static_cast<long>(b) * 4 * H;
    const T cp = lstm_c_prev(a, b, j);
    T c, h;
    if (unit_active(a, b)) {
      const math::LstmGates<T> act =
          math::lstm_activate(g[j] + r[j], g[H + j] + r[H + j], g[2 * H + j] + r[2 * H + j], g[3 * H + j] + r[3 * H + j]);
      g[j] = act.i;
      g[H + j] = act.f;
      g[2 * H + j] = act.g;
      g[3 * H + j] = act.o;
      c = math::lstm_cell_state(act, cp);
      h = math::lstm_hidden(act, c);
    } else {
      for (int k = 0; k < 4; ++k) g[k * H + j] = T(0);
      c = cp;
      h = a.hprev[row * H + j];
    }
    a.aux[row * H + j] = c;
    if (a.c_last != nullptr) a.c_last[i] = c;
    store_state(a, b, j, i, h);
  }
}

template <typename T>
__global__ void lstm_backward_step(const BackwardStepArgs<T> a) {
  const int H = a.units;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    const long row = row_of(b, a.steps, a.t);
    T* dg = a.dgx + row * 4 * H;
    const T dh = a.dh[i] + recurrent_share(a, i) + output_grad(a, b, j);
    if (unit_active(a, b)) {
      const T* g = a.gates + row * 4 * H;
      const math::LstmGates<T> act{g[j], g[H + j], g[2 * H + j], g[3 * H + j]};
      const math::LstmGrads<T> d = math::lstm_backward(act, a.aux[row * H + j], lstm_c_prev(a, b, j), dh, a.dc[i]);
      dg[j] = d.dzi;
      dg[H + j] = d.dzf;
      dg[2 * H + j] = d.dzc;
      dg[3 * H + j] = d.dzo;
      a.dc[i] = d.dc_prev;
      a.dh[i] = T(0);
    } else {
      for (int k = 0; k < 4; ++k) dg[k * H + j] = T(0);
      a.dh[i] = dh;  // dc passes through unchanged
    }
  }
}

}  // namespace

template <typename T>
void launch_lstm_forward_step(const ForwardStepArgs<T>& a, cudaStream_t stream) {
  lstm_forward_step<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("lstm_forward_step<<<>>>");
}

template <typename T>
void launch_lstm_backward_step(const BackwardStepArgs<T>& a, cudaStream_t stream) {
  lstm_backward_step<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("lstm_backward_step<<<>>>");
}

template void launch_lstm_forward_step<float>(const ForwardStepArgs<float>&, cudaStream_t);
template void launch_lstm_forward_step<double>(const ForwardStepArgs<double>&, cudaStream_t);
template void launch_lstm_backward_step<float>(const BackwardStepArgs<float>&, cudaStream_t);
template void launch_lstm_backward_step<double>(const BackwardStepArgs<double>&, cudaStream_t);

}  // namespace cuda
}  // namespace fusedrnn
