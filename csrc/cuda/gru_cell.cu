// GRU step kernels, Keras's gate order z, r, h. Saved gates: z, r, hh after their activations;
// aux: h_{s-1} U_h + b_rec_h (reset_after=True) or r * h_{s-1}, dropped out (reset_after=False).
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "fusedrnn/cell_math.h"

namespace fusedrnn {
namespace cuda {
namespace {

// reset_after=True: rec holds h_{s-1} U for z, r and h; the recurrent bias is added here.
template <typename T>
__global__ void gru_forward_step_after(const ForwardStepArgs<T> a) {
  const int H = a.units;
  const T* br = a.recurrent_bias;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    const long row = row_of(b, a.steps, a.t);
    T* g = a.gates + row * 3 * H;
    const T* r = a.rec + static_cast<long>(b) * 3 * H;
    const T hp = a.hprev[row * H + j];
    T h;
    if (unit_active(a, b)) {
      const T z = math::sigmoid((g[j] + r[j]) + br[j]);
      const T rs = math::sigmoid((g[H + j] + r[H + j]) + br[H + j]);
      const T rec = r[2 * H + j] + br[2 * H + j];
      const T hh = math::tanh_(g[2 * H + j] + rs * rec);
      a.aux[row * H + j] = rec;
      g[j] = z;
      g[H + j] = rs;
      g[2 * H + j] = hh;
      h = math::gru_hidden(z, hh, hp);
    } else {
      for (int k = 0; k < 3; ++k) g[k * H + j] = T(0);
      a.aux[row * H + j] = T(0);
      h = hp;
    }
    store_state(a, b, j, i, h);
  }
}

// reset_after=False, first half: z, r and aux = r * h_{s-1} (h_{s-1} as it enters gate h).
template <typename T>
__global__ void gru_forward_gates_before(const ForwardStepArgs<T> a) {
  const int H = a.units;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    const long row = row_of(b, a.steps, a.t);
    T* g = a.gates + row * 3 * H;
    const T* r = a.rec + static_cast<long>(b) * 3 * H;
    if (unit_active(a, b)) {
      const T z = math::sigmoid(g[j] + r[j]);
      const T rs = math::sigmoid(g[H + j] + r[H + j]);
      g[j] = z;
      g[H + j] = rs;
      a.aux[row * H + j] = rs * a.hin_h[b * a.hin_ld + j];
    } else {
      for (int k = 0; k < 3; ++k) g[k * H + j] = T(0);
      a.aux[row * H + j] = T(0);
    }
  }
}

// reset_after=False, second half: rec's h columns hold aux U_h.
template <typename T>
__global__ void gru_forward_candidate_before(const ForwardStepArgs<T> a) {
  const int H = a.units;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    const long row = row_of(b, a.steps, a.t);
    T* g = a.gates + row * 3 * H;
    const T hp = a.hprev[row * H + j];
    T h = hp;
    if (unit_active(a, b)) {
      const T hh = math::tanh_(g[2 * H + j] + a.rec[static_cast<long>(b) * 3 * H + 2 * H + j]);
      g[2 * H + j] = hh;
      h = math::gru_hidden(g[j], hh, hp);
    }
    store_state(a, b, j, i, h);
  }
}

template <typename T>
__global__ void gru_backward_step(const BackwardStepArgs<T> a, bool reset_after) {
  const int H = a.units;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    const long row = row_of(b, a.steps, a.t);
    T* dgx = a.dgx + row * 3 * H;
    T* dgrec = reset_after ? a.dgrec + row * 3 * H : nullptr;
    const T dh = a.dh[i] + recurrent_share(a, i) + output_grad(a, b, j);
    if (unit_active(a, b)) {
      const T* g = a.gates + row * 3 * H;
      const math::GruGrads<T> d = math::gru_backward(g[j], g[2 * H + j], a.hprev[row * H + j], dh);
      dgx[j] = d.dzz;
      dgx[2 * H + j] = d.dzh;
      if (reset_after) {
        const T r = g[H + j];
        const T dr = math::sigmoid_backward(r, d.dzh * a.aux[row * H + j]);
        dgx[H + j] = dr;
        dgrec[j] = d.dzz;
        dgrec[H + j] = dr;
        dgrec[2 * H + j] = d.dzh * r;
      }
      // reset_after=False: dgx's r part comes in gru_backward_reset_before.
      a.dh[i] = d.dh_prev;
    } else {
      for (int k = 0; k < 3; ++k) dgx[k * H + j] = T(0);
      if (reset_after)
        for (int k = 0; k < 3; ++k) dgrec[k * H + j] = T(0);
      a.dh[i] = dh;
    }
  }
}

template <typename T>
__global__ void gru_backward_reset_before(const BackwardStepArgs<T> a) {
  const int H = a.units;
  const long slab = static_cast<long>(a.batch) * H;
  const T* rm = a.rdrop == nullptr ? nullptr : a.rdrop + (a.n_rdrop == 1 ? 0 : 2) * slab;
  FUSEDRNN_FOR_EACH_UNIT(a, i) {
    const int b = static_cast<int>(i / H), j = static_cast<int>(i % H);
    if (!unit_active(a, b)) continue;
    const long row = row_of(b, a.steps, a.t);
    const T m = rm == nullptr ? T(1) : rm[i];
    const T r = a.gates[row * 3 * H + H + j];
    const T d = a.D[i];
    a.dgx[row * 3 * H + H + j] = math::sigmoid_backward(r, d * a.hprev[row * H + j] * m);
    a.dh[i] += d * r * m;
  }
}

}  // namespace

template <typename T>
void launch_gru_forward_step_after(const ForwardStepArgs<T>& a, cudaStream_t stream) {
  gru_forward_step_after<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("gru_forward_step_after<<<>>>");
}

template <typename T>
void launch_gru_forward_gates_before(const ForwardStepArgs<T>& a, cudaStream_t stream) {
  gru_forward_gates_before<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("gru_forward_gates_before<<<>>>");
}

template <typename T>
void launch_gru_forward_candidate_before(const ForwardStepArgs<T>& a, cudaStream_t stream) {
  gru_forward_candidate_before<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("gru_forward_candidate_before<<<>>>");
}

template <typename T>
void launch_gru_backward_step(const BackwardStepArgs<T>& a, bool reset_after, cudaStream_t stream) {
  gru_backward_step<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a, reset_after);
  FUSEDRNN_CUDA_CHECK_LAUNCH("gru_backward_step<<<>>>");
}

template <typename T>
void launch_gru_backward_reset_before(const BackwardStepArgs<T>& a, cudaStream_t stream) {
  gru_backward_reset_before<T><<<blocks_for(static_cast<long>(a.batch) * a.units), kThreads, 0, stream>>>(a);
  FUSEDRNN_CUDA_CHECK_LAUNCH("gru_backward_reset_before<<<>>>");
}

#define FUSEDRNN_INSTANTIATE(T)                                                                      \
  template void launch_gru_forward_step_after<T>(const ForwardStepArgs<T>&, cudaStream_t);           \
  template void launch_gru_forward_gates_before<T>(const ForwardStepArgs<T>&, cudaStream_t);         \
  template void launch_gru_forward_candidate_before<T>(const ForwardStepArgs<T>&, cudaStream_t);     \
  template void launch_gru_backward_step<T>(const BackwardStepArgs<T>&, bool, cudaStream_t);         \
  template void launch_gru_backward_reset_before<T>(const BackwardStepArgs<T>&, cudaStream_t);
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cuda
}  // namespace fusedrnn
