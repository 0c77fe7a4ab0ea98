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
// owns a block of batch rows and a block of hidden units (StepShare) and computes all gates of
// those units for those rows, so the gate math needs no synchronisation. When the batch is
// large enough the threads split the rows and keep every unit: the rows' recurrences are
// independent, so the time loop runs without a single barrier. Otherwise they split the units
// of every row, and one barrier per step publishes the new state.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/panel_gemm.h"
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

// One thread's part of every time step: a block of batch rows and a block of hidden units.
struct StepShare {
  Range rows;
  Range units;
  bool by_batch;  // rows split between the threads, units whole: no barrier inside the time loop
};

// The threads split the batch when each gets at least kMinRowsPerThread rows and the packed
// weights a step multiplies fit in a core's L2 cache: every thread then reads all of them each
// step. Larger weights are split by units, so that each core streams only its own share.
constexpr int kMinRowsPerThread = 4;
constexpr long kBatchSplitWeightBytes = 1536 * 1024;
// Unit splits fall on multiples of this: whole groups of every packed layout (panel_gemm.h).
constexpr int kUnitAlign = 64;

inline StepShare step_share(int batch, int units, long weight_bytes, int tid, int nt) {
  const bool by_batch = nt == 1 || (batch >= kMinRowsPerThread * nt && weight_bytes <= kBatchSplitWeightBytes);
  if (by_batch) return {split_range(batch, tid, nt, 1), {0, units}, true};
  return {{0, batch}, split_range(units, tid, nt, kUnitAlign), false};
}

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

// Packs this thread's part of w (see PanelMatrix::fill): with a split of the units, the groups
// of its own units, the only ones it multiplies; with a split of the batch, an even share of
// all groups, which every thread reads after a barrier.
template <typename T, typename Column>
void pack_share(int tid, int nt, const StepShare& share, const PanelMatrix<T>& w, Column&& column,
                long unit_stride) {
  const int width = w.group_units();
  const Range groups = share.by_batch ? split_range(w.groups(), tid, nt, 1)
                                      : Range{share.units.begin / width, (share.units.end + width - 1) / width};
  w.fill(groups.begin, groups.end, column, unit_stride);
}

// Forward weights: [kernel; recurrent kernel] (rows [0, kx) from the kernel, the rest from the
// recurrent kernel), columns as w's layout maps them to gates and units.
template <typename T>
void pack_forward_share(int tid, int nt, const StepShare& share, const SequenceInputs<T>& in,
                        const PanelMatrix<T>& w) {
  const int kx = w.kx(), H = in.units, GH = in.width();
  pack_share(tid, nt, share, w, [&](int k, int gate) {
    const T* row = k < kx ? in.kernel + static_cast<long>(k) * GH : in.recurrent + static_cast<long>(k - kx) * GH;
    return row + static_cast<long>(gate) * H;
  }, 1);
}

// Backward weights: the recurrent kernel transposed, (G*H, H): a step's gate gradients times it
// give the gradient of the state entering the step.
template <typename T>
PanelPlan backward_plan() {
  return units_plan(-1, 0);
}

template <typename T>
void pack_backward_share(int tid, int nt, const StepShare& share, const SequenceInputs<T>& in,
                         const PanelMatrix<T>& w) {
  pack_share(tid, nt, share, w, [&](int k, int) { return in.recurrent + k; }, in.width());
}

// The weight gradients are sums over the B*T rows: each thread computes its rows' share (its
// own sequences under a batch split, with their gradients still in its cache) into its own
// buffers, and sum_partials_share adds the shares up. The per-row gradient dx is written
// directly.
template <typename T>
struct WeightGrads {
  T* dkernel;          // (I, G*H); unused with one-hot input
  T* drecurrent;       // (H, G*H)
  T* dbias;            // (G*H,)
  T* drecurrent_bias;  // (G*H,), GRU reset_after only
};

// The block of the B*T rows whose gradients thread tid computes.
inline Range gradient_rows(const StepShare& share, int batch, int steps, int tid, int nt) {
  if (share.by_batch) return {share.rows.begin * steps, share.rows.end * steps};
  return split_range(batch * steps, tid, nt, 1);
}

// Input-side gradients of the rows r from their gx-gradients dgx (B*T, G*H): dx[r], and the
// rows' share of d_kernel and d_bias (d_bias may be null). `scratch` holds r.size() * I values. With one-hot input (`ids`) only d_bias: the kernel's gradient is
// one_hot_kernel_grads_share's, and there is no dx.
template <typename T>
void input_gradients(Range r, const SequenceInputs<T>& in, const T* dgx, T* dx, T* dkernel, T* dbias, T* scratch);

// One-hot input: d_kernel[id, :] = sum of the dgx rows with that id (times dropout), over all
// rows; each thread computes a block of columns.
template <typename T>
void one_hot_kernel_grads_share(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dkernel);

// The rows' share of d_recurrent[:, gates g_begin..g_end) = (left * recurrent_dropout_g)^T dgrec
// where left is (B, T, H); with apply_dropout false the dropout masks are not applied (the left
// operand already holds them). d_recurrent_bias (may be null) gets the rows' column sums of
// dgrec. `scratch` holds r.size() * H values.
template <typename T>
void recurrent_gradients(Range r, const SequenceInputs<T>& in, const T* left, bool apply_dropout, const T* dgrec,
                         int g_begin, int g_end, T* drecurrent, T* drecurrent_bias, T* scratch);

// out[k] += sum over p < n_parts of parts[p * part_stride + k], for this thread's block of k < n.
template <typename T>
void sum_partials_share(int tid, int nt, T* out, const T* parts, int n_parts, long part_stride, long n);

// Fills a buffer with NaN when output poisoning is on (a test hook, see bindings).
bool poison_outputs();
void set_poison_outputs(bool on);

}  // namespace cpu
}  // namespace fusedrnn
