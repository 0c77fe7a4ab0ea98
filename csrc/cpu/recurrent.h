// Public entry points of the CPU recurrent kernels (SimpleRNN, LSTM, GRU), used by the bindings.
#pragma once

#include <vector>

#include "cpu/aligned_vector.h"
#include "cpu/sequence.h"
#include "fusedrnn/cell_math.h"

namespace fusedrnn {
namespace cpu {

enum class CellKind { kRnn, kLstm, kGru };

struct CellConfig {
  CellKind kind = CellKind::kLstm;
  math::Activation activation = math::Activation::kTanh;  // SimpleRNN only
  bool reset_after = true;                                // GRU only
  int gates() const { return kind == CellKind::kLstm ? 4 : (kind == CellKind::kGru ? 3 : 1); }
};

// What the forward pass saves for the backward pass, all (B, T, .) in input-time order:
//   gates (B, T, G*H): the activated gate values (RNN: h; LSTM: i, f, c~, o; GRU: z, r, hh),
//                      zero on masked steps;
//   hprev (B, T, H):   the hidden state entering each step;
//   aux   (B, T, H):   LSTM: the cell state after each step; GRU reset_after: the recurrent
//                      candidate term h_prev U_h + b; GRU reset_before: r * h_prev (dropped
//                      out); unused (may be null) for SimpleRNN.
// The time axis of the three has `slots` entries: T for a cache that the backward pass reads,
// or 2 for a forward pass without one (inference), which keeps only the step before.
template <typename T>
struct SavedSequence {
  T* gates;
  T* hprev;
  T* aux;
  int slots;

  // Row of (batch row b, time t) in the three buffers.
  long row(int b, int t) const { return static_cast<long>(b) * slots + (t < slots ? t : t % slots); }
};

template <typename T>
struct ForwardOutputs {
  T* outputs;  // (B, T, H), in processing order
  T* h_last;   // (B, H)
  T* c_last;   // (B, H), LSTM only
};

template <typename T>
struct IncomingGrads {
  const T* d_outputs;  // (B, T, H) or null
  const T* d_h_last;   // (B, H) or null
  const T* d_c_last;   // (B, H) or null, LSTM only
};

template <typename T>
struct SequenceGrads {
  T* dx = nullptr;               // (B, T, I)
  T* dh0 = nullptr;              // (B, H)
  T* dc0 = nullptr;              // (B, H), LSTM only
  T* dkernel = nullptr;          // (I, G*H); (G*H, I) when gate_major
  T* drecurrent = nullptr;       // (H, G*H); (G*H, H) when gate_major
  T* dbias = nullptr;            // (G*H,)
  T* drecurrent_bias = nullptr;  // (G*H,), GRU reset_after only
  // The weight gradients transposed, a row per gate unit: the layout of torch.nn's weight_ih and
  // weight_hh. The products come out that way (sequence.cpp: transposed_product), so this layout
  // skips a transpose rather than adding one.
  bool gate_major = false;
  // Deferred weight gradients: when dgates is set, the backward pass writes the gate gradients
  // of every step there, (B, T, G*H) in time order (zero on masked steps): those of the
  // input-side pre-activations, and for the GRU with reset_after those of the recurrent side to
  // drecurrent_gates (they differ in the candidate's columns); it computes dx, dh0 and dc0 but
  // no weight gradients (dkernel, drecurrent, dbias and drecurrent_bias are not written), which
  // recurrent_weight_grads computes later, for the rows of many calls at once.
  T* dgates = nullptr;
  T* drecurrent_gates = nullptr;
};

// Runs the whole sequence. h0 and (LSTM) c0 must be set; `in.gates` must equal cfg.gates().
template <typename T>
void recurrent_forward(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                       const ForwardOutputs<T>& out);

// Benchmark and test hook: the largest batch whose forward pass projects its inputs before the
// time loop (default 2, at most kProjectInputsBatch; 0: never), so that the lever can be measured.
int project_inputs_batch();
void set_project_inputs_batch(int n);

// The forward weights of a cell packed once, for later calls to pass in SequenceInputs::packed
// (so that calls on unchanged weights, such as a decoder's single steps, do not pack them
// again): one array per forward plan of the cell, over [kernel; recurrent kernel] (kernel
// (I, G*H), recurrent (H, G*H)), or over the recurrent kernel alone for one-hot input.
template <typename T>
std::vector<AlignedVector<T>> pack_forward_weights(const CellConfig& cfg, const T* kernel, const T* recurrent,
                                                 int input_size, int units, bool one_hot);
// The same float weights rounded to bfloat16 (ties to even), for SequenceInputs::packed_bf16:
// inference only (a forward pass without a cache, or a step). std::domain_error when a weight
// is too large for bfloat16's range (it would round to infinity).
std::vector<AlignedVector<Bf16>> pack_forward_weights_bf16(const CellConfig& cfg, const float* kernel,
                                                         const float* recurrent, int input_size, int units,
                                                         bool one_hot);

template <typename T>
void recurrent_backward(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                        const IncomingGrads<T>& incoming, const SequenceGrads<T>& grads);

// The weight gradients (grads.dkernel, drecurrent, dbias, drecurrent_bias in the layout
// grads.gate_major says; nothing else of grads is used) of all B*T rows of `in` from their gate
// gradients, as deferred backward passes wrote them (SequenceGrads::dgates, drecurrent_gates,
// the latter only for the GRU with reset_after). `in` holds the rows' inputs (x or ids, the
// dropout masks, the weights for their shapes; h0, c0, the mask and go_backwards are not read)
// and `saved` their hprev (and for the GRU with reset_before aux); `saved.slots` equals in.steps.
// Rows of several calls stacked as one batch of single steps give the sums of their gradients.
template <typename T>
void recurrent_weight_grads(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                            const T* dgates, const T* drecurrent_gates, const SequenceGrads<T>& grads);

}  // namespace cpu
}  // namespace fusedrnn
