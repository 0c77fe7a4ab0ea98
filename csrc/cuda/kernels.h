// Host-side launchers of the CUDA kernels (defined in the .cu files of this folder, instantiated
// for float and double). Every launcher enqueues on `stream`, checks the launch and returns at
// once. The orchestration (recurrent.cpp) calls these and cuBLAS; the .cu files themselves need
// only the CUDA runtime, so they compile without cuBLAS headers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/step_args.h"

namespace fusedrnn {
namespace cuda {

// ---- elementwise helpers (elementwise.cu) -----------------------------------------------------

// p[k] = value for k < n.
template <typename T>
void launch_fill(T* p, long n, T value, cudaStream_t stream);

// dst[r, c] = row[c] for r < rows, c < cols (dst has leading dimension ld).
template <typename T>
void launch_broadcast_row(T* dst, long rows, int cols, long ld, const T* row, cudaStream_t stream);

// dst[b, t, k] = src[b, t, k] * m[b, k] for (B, T, D) arrays and m (B, D); dst may equal src.
template <typename T>
void launch_scale_by_batch(T* dst, const T* src, const T* m, int batch, int steps, int width,
                           cudaStream_t stream);

// dst[b, t, k] = sum_{g < n} parts[g, b, t, k] * masks[g, b, k]: the input gradient with one
// dropout mask per gate.
template <typename T>
void launch_masked_sum(T* dst, const T* parts, const T* masks, int n, int batch, int steps, int width,
                       cudaStream_t stream);

// dst[m, b, j] = h[b * h_ld + j] * rdrop[m, b, j] for m < n: dropped-out copies of a state.
template <typename T>
void launch_dropped_state(T* dst, const T* h, long h_ld, const T* rdrop, int n, int batch, int units,
                          cudaStream_t stream);

// first[b] = the first processing step whose input time is unmasked (steps when none).
void launch_first_active(int* first, const uint8_t* mask, int batch, int steps, bool go_backwards,
                         cudaStream_t stream);

// flag[0] = 1 if any of p[0..n) is NaN or inf (flag is left alone otherwise).
template <typename T>
void launch_nonfinite_flag(const T* p, long n, int* flag, cudaStream_t stream);

// After the last backward step: dh0 = dh + sum_m R[m] * rdrop[m] (see BackwardStepArgs),
// dc0 = dc when both are given.
template <typename T>
void launch_finish_state_grads(const BackwardStepArgs<T>& a, T* dh0, T* dc0, cudaStream_t stream);

// ---- cells (rnn_cell.cu, lstm_cell.cu, gru_cell.cu) -------------------------------------------
// Forward: rec holds h_{s-1} U for every gate; the kernel adds it to the saved input projection,
// applies the gate math, writes the activated gates, aux, h_s (to h_next, outputs and the
// dropped-out copies) and, at the last step, c_last.
template <typename T>
void launch_rnn_forward_step(const ForwardStepArgs<T>& a, cudaStream_t stream);
template <typename T>
void launch_lstm_forward_step(const ForwardStepArgs<T>& a, cudaStream_t stream);
template <typename T>
void launch_gru_forward_step_after(const ForwardStepArgs<T>& a, cudaStream_t stream);
// GRU reset_after=False: first z, r and aux = r * h_{s-1} (rec holds the z and r columns), then,
// once rec's h columns hold aux U_h, the candidate and h_s.
template <typename T>
void launch_gru_forward_gates_before(const ForwardStepArgs<T>& a, cudaStream_t stream);
template <typename T>
void launch_gru_forward_candidate_before(const ForwardStepArgs<T>& a, cudaStream_t stream);

// Backward: dh (plus R, the next step's recurrent gradient, and this step's output gradient)
// through the gate math into dgx (and dgrec), leaving in dh (and dc) what reaches h_{s-1}
// (c_{s-1}) directly; the recurrent matmul's share is added by the next call's R.
template <typename T>
void launch_rnn_backward_step(const BackwardStepArgs<T>& a, cudaStream_t stream);
template <typename T>
void launch_lstm_backward_step(const BackwardStepArgs<T>& a, cudaStream_t stream);
template <typename T>
void launch_gru_backward_step(const BackwardStepArgs<T>& a, bool reset_after, cudaStream_t stream);
// GRU reset_after=False, second half: with D = dgx_h(t) U_h^T, the reset gate's gradient and
// the share of h_{s-1} through r * h_{s-1}.
template <typename T>
void launch_gru_backward_reset_before(const BackwardStepArgs<T>& a, cudaStream_t stream);

}  // namespace cuda
}  // namespace fusedrnn
