// What the CPU recurrent kernels share: the description of a sequence problem, the work
// buffers, and the GEMM-shaped pieces common to every cell (input projection, the recurrent
// matmul of one thread's units, back-propagation through the recurrent kernel and the weight
// gradients over all steps).
//
// Layout conventions (all row-major, batch-major like Keras):
//   x (B, T, I); states (B, H); kernel (I, G*H); recurrent kernel (H, G*H); G gates of H units,
//   in Keras's gate order. Work buffers indexed by time are (B, T, ...) in input-time order t;
//   the outputs are in processing order s (t = T-1-s when go_backwards), as Keras returns them.
//
// Threading: each kernel runs one OpenMP parallel region. During the time loop every thread
// owns a contiguous slice of hidden units (split_range) and computes all gates of those units,
// so the gate math needs no synchronisation; one barrier per step publishes the new state.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/packed_gemm.h"
#include "cpu/parallel.h"

namespace fusedrnn {
namespace cpu {

// Inputs of one recurrent op. Pointers are to contiguous arrays; optional ones may be null.
template <typename T>
struct SequenceInputs {
  int batch = 0, steps = 0, input_size = 0, units = 0, gates = 1;
  const T* x = nullptr;               // (B, T, I); null when `ids` is set
  const int32_t* ids = nullptr;       // (B, T): one-hot input, x[b, t, :] = e_{ids[b, t]} of width I
  const T* h0 = nullptr;              // (B, H)
  const T* c0 = nullptr;              // (B, H), LSTM only
  const T* kernel = nullptr;          // (I, G*H)
  const T* recurrent = nullptr;       // (H, G*H)
  const T* bias = nullptr;            // (G*H,): added to the input projection
  const T* recurrent_bias = nullptr;  // (G*H,): GRU reset_after only
  const uint8_t* mask = nullptr;      // (B, T): 1 = step is processed
  const T* dropout = nullptr;         // (n_dropout, B, I), n_dropout in {1, G}
  int n_dropout = 0;
  const T* recurrent_dropout = nullptr;  // (n_recurrent_dropout, B, H)
  int n_recurrent_dropout = 0;
  bool go_backwards = false;

  int width() const { return gates * units; }
  int time_of_step(int s) const { return go_backwards ? steps - 1 - s : s; }
  bool active(int b, int t) const { return mask == nullptr || mask[b * steps + t] != 0; }
  const T* dropout_of_gate(int g) const {
    return dropout == nullptr ? nullptr
                              : dropout + static_cast<long>(n_dropout == 1 ? 0 : g) * batch * input_size;
  }
  const T* recurrent_dropout_of_gate(int g) const {
    return recurrent_dropout == nullptr
               ? nullptr
               : recurrent_dropout + static_cast<long>(n_recurrent_dropout == 1 ? 0 : g) * batch * units;
  }
};

// First processing step s at which row b is unmasked (steps when never): Keras emits zeros as
// the output of the masked steps before it and repeats the last output after it.
template <typename T>
std::vector<int> first_active_steps(const SequenceInputs<T>& in) {
  std::vector<int> first(in.batch, 0);
  if (in.mask == nullptr) return first;
  for (int b = 0; b < in.batch; ++b) {
    int s = 0;
    while (s < in.steps && !in.active(b, in.time_of_step(s))) ++s;
    first[b] = s;
  }
  return first;
}

// The left operand of the per-step recurrent matmul for gate g: h_{s-1} as it enters that
// gate, either the state itself (row t of the (B, T, H) buffer `hprev`) or its dropped-out
// copy in `dropped` (one (B, H) slab per distinct recurrent dropout mask).
template <typename T>
struct RecurrentOperand {
  const T* state;   // h_{s-1}, leading dimension state_ld
  int state_ld;
  const T* dropped; // null without recurrent dropout
  int n_dropped;
  int batch, units;
  const T* gate(int g) const {
    if (dropped == nullptr) return state;
    return dropped + static_cast<long>(n_dropped == 1 ? 0 : g) * batch * units;
  }
  int ld() const { return dropped == nullptr ? state_ld : units; }
};

// C[:, g*H + own] += op(gate g) * U[:, g*H + own] for g in [g_begin, g_end), own = the
// thread's units; `packed[g]` holds U[:, g*H + own] (see pack_forward_weights). C is the
// (B, G*H) slab of one step with leading dimension ldc.
template <typename T>
void recurrent_matmul_share(const SequenceInputs<T>& in, const RecurrentOperand<T>& h,
                            const PackedMatrix<T>* packed, Range cols, int g_begin, int g_end, T* c, int ldc) {
  if (cols.size() <= 0) return;
  for (int g = g_begin; g < g_end; ++g)
    packed[g].multiply(in.batch, h.gate(g), h.ld(), 0, in.units, T(1), c + g * in.units + cols.begin, ldc);
}

// Packs the thread's columns of every gate of the recurrent kernel for the forward steps.
template <typename T>
std::vector<PackedMatrix<T>> pack_forward_weights(const SequenceInputs<T>& in, Range cols) {
  std::vector<PackedMatrix<T>> packed(in.gates);
  for (int g = 0; g < in.gates; ++g)
    packed[g].pack(in.units, cols.size(), in.recurrent + g * in.units + cols.begin, in.width(), 1);
  return packed;
}

// Packs U[own, :]^T, (G*H, own): the thread's rows of the recurrent kernel, transposed, which
// back-propagate every gate's gradient into the thread's units of dh.
template <typename T>
PackedMatrix<T> pack_backward_weights(const SequenceInputs<T>& in, Range cols) {
  PackedMatrix<T> packed;
  packed.pack(in.width(), cols.size(), in.recurrent + static_cast<long>(cols.begin) * in.width(), 1, in.width());
  return packed;
}

// Writes the dropped-out copies of the new state for this thread's units:
// dropped[m][b, own] = h[b, own] * recurrent_dropout[m][b, own].
template <typename T>
void write_dropped_state(const SequenceInputs<T>& in, const T* h, int h_ld, Range cols, T* dropped) {
  if (in.recurrent_dropout == nullptr) return;
  const int H = in.units;
  for (int m = 0; m < in.n_recurrent_dropout; ++m) {
    const T* rm = in.recurrent_dropout + static_cast<long>(m) * in.batch * H;
    T* out = dropped + static_cast<long>(m) * in.batch * H;
    for (int b = 0; b < in.batch; ++b) {
      for (int j = cols.begin; j < cols.end; ++j) out[b * H + j] = h[static_cast<long>(b) * h_ld + j] * rm[b * H + j];
    }
  }
}

// dh[:, own] += sum_g (dG_g U_g[own, :]^T) * recurrent_dropout_g[:, own] for g in [g_begin,
// g_end): back-propagation of one step's recurrent pre-activation gradients (dg, (B, G*H) with
// leading dimension ldg) into the previous state, with `packed_t` from pack_backward_weights.
// `scratch` holds B * cols.size() values.
template <typename T>
void recurrent_backprop_share(const SequenceInputs<T>& in, const PackedMatrix<T>& packed_t, const T* dg, int ldg,
                              Range cols, int g_begin, int g_end, T* dh, T* scratch) {
  const int H = in.units, B = in.batch, n = cols.size();
  if (n <= 0) return;
  if (in.recurrent_dropout == nullptr) {
    packed_t.multiply(B, dg, ldg, g_begin * H, g_end * H, T(1), dh + cols.begin, H);
    return;
  }
  for (int g = g_begin; g < g_end; ++g) {
    packed_t.multiply(B, dg, ldg, g * H, (g + 1) * H, T(0), scratch, n);
    const T* rm = in.recurrent_dropout_of_gate(g);
    for (int b = 0; b < B; ++b) {
#pragma omp simd
      for (int j = 0; j < n; ++j) dh[b * H + cols.begin + j] += scratch[b * n + j] * rm[b * H + cols.begin + j];
    }
  }
}

// gx[(b,t), :] = (x[b,t,:] * dropout_g[b,:]) kernel[:, gate g] for every gate: the input
// projection of all steps at once, without the bias (the cells add it in their gate math, which
// saves a pass over this B*T*G*H buffer). `scratch` holds B*T*I values when dropout is on.
// With one-hot input (`ids`) the projection is a row gather of the kernel.
template <typename T>
void input_projection(int tid, int nt, const SequenceInputs<T>& in, T* gx, T* scratch);

// Input-side gradients from gx-gradients dgx (B*T, G*H): dx, d_kernel and d_bias (summed over
// rows; d_bias may be null). `scratch` holds B*T*I values. Ends with a barrier. With one-hot
// input (`ids`) d_kernel is a scatter-add of dgx rows and dx is not computed (it may be null).
template <typename T>
void input_gradients(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dx, T* dkernel,
                     T* dbias, T* scratch);

// d_recurrent[:, gates g_begin..g_end) = sum over (b,t) of (left * recurrent_dropout_g)^T dgrec
// where left is (B, T, H); with apply_dropout false the dropout masks are not applied (the left
// operand already holds them). d_recurrent_bias (may be null) gets the column sums of dgrec.
template <typename T>
void recurrent_gradients(int tid, int nt, const SequenceInputs<T>& in, const T* left, bool apply_dropout,
                         const T* dgrec, int g_begin, int g_end, T* drecurrent, T* drecurrent_bias,
                         T* scratch);

// Column sums of a (rows, cols) matrix split between threads: out[c] = sum_r a[r, c].
template <typename T>
void column_sums_share(int tid, int nt, const T* a, long rows, int cols, int lda, T* out);

// Fills a buffer with NaN when output poisoning is on (a test hook, see bindings).
bool poison_outputs();
void set_poison_outputs(bool on);

}  // namespace cpu
}  // namespace fusedrnn
