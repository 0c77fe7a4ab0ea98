// What the CPU recurrent kernels share: the description of a sequence problem, how threads
// share a step, the packed weights' sources, and the GEMM-shaped pieces common to every cell
// after the time loop (dx and the weight gradients over all steps).
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

#include <algorithm>
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
  // The forward weights packed before the call and kept between calls (recurrent.h:
  // pack_forward_weights), one array per forward plan of the cell, for the input segment this
  // call has (I rows, or none with one-hot ids); null: packed during the call, or not at all.
  const T* packed[2] = {nullptr, nullptr};
  // The same in bfloat16 (float inference only; cpu/bfloat16.h), instead of `packed`.
  const Bf16* packed_bf16[2] = {nullptr, nullptr};

  bool prepacked() const { return packed[0] != nullptr || packed_bf16[0] != nullptr; }

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
// Sequences per block that the threads of a batch split claim (BlockClaims) when there are more
// blocks than threads: three row tiles of the panel kernel (6 + 5 + 5).
constexpr int kBlockRows = 16;
constexpr long kBatchSplitWeightBytes = 1536 * 1024;
// A split of the units stays fixed from step to step (no claims) when each thread's share of the
// weights a step reads is at most this: the share then stays in the thread's own L2 cache.
constexpr long kFixedSplitWeightBytes = 768 * 1024;
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

// Packs this thread's part of w (nothing when w is used unpacked): with a fixed split of the
// units, the groups of its own units, the only ones it multiplies; otherwise (a split of the
// batch, or units claimed step by step: `shared`) an even share of all groups, which every
// thread reads after a barrier.
template <typename T>
void pack_share(int tid, int nt, const StepShare& share, const PanelMatrix<T>& w, bool shared = false) {
  if (!w.packed()) return;
  const int width = w.group_units();
  const Range groups = share.by_batch || shared
                           ? split_range(w.groups(), tid, nt, 1)
                           : Range{share.units.begin / width, (share.units.end + width - 1) / width};
  w.fill(groups.begin, groups.end);
}

// Forward weights: [kernel; recurrent kernel] (rows [0, kx) from the kernel, the rest from the
// recurrent kernel), columns as a layout maps them to gates and units.
template <typename T>
PanelSource<T> forward_source(const SequenceInputs<T>& in) {
  return {in.kernel, in.recurrent, in.width(), in.units, 1};
}

// Backward weights: a weight matrix (n, G*H) transposed, (G*H, n), with backward_plan(): gate
// gradients times the recurrent kernel's give the gradient of the state entering a step, times
// the kernel's the gradient of the input.
template <typename T>
PanelSource<T> transposed_source(const T* weights, int gate_width) {
  return {weights, weights, 1, 0, gate_width};
}

inline PanelPlan backward_plan() { return units_plan(-1, 0); }

// Whether a product is packed: packing costs about as much as one pass of the product, so it
// pays off only over several steps, or when the weights come packed already.
template <typename T>
bool pack_weights(const SequenceInputs<T>& in) {
  return in.steps > 1 || in.prepacked();
}

// At most this many sequences, the forward pass projects the inputs of all steps with one
// product before the time loop (project_inputs): each step then streams only the recurrent
// kernel, which a split of the units across the cores may keep in their L2 caches, instead of
// the whole [kernel; recurrent kernel] for a row or two.
constexpr int kProjectInputsBatch = 8;

// A single step on weights packed before the call runs on the panel kernel up to this batch;
// larger batches multiply the unpacked weights with BLAS, whose GEMM is the faster one there
// (measured for the LSTM at I=256, H=1024 on one AVX2 core: packed 4.4 ms against BLAS 10.1 ms
// at B=8, 8.2 against 6.8 ms at B=16).
constexpr int kPackedStepBatch = 8;

template <typename T>
bool project_inputs(const SequenceInputs<T>& in) {
  return in.steps > 1 && in.batch <= kProjectInputsBatch && in.ids == nullptr && in.dropout == nullptr &&
         pack_weights(in);
}

// The weight gradients are sums over the B*T rows. Under a batch split each thread computes its
// rows' share (its own sequences, with their gradients still in its cache) of every column,
// into its own buffers, and sum_partials_share adds the shares up. Under a unit split (few rows,
// large weights) each thread computes a block of columns over all rows instead.
template <typename T>
struct WeightGrads {
  T* dkernel;          // (I, G*H), or (G*H, I) when gate_major
  T* drecurrent;       // (H, G*H), or (G*H, H) when gate_major
  T* dbias;            // (G*H,)
  T* drecurrent_bias;  // (G*H,), GRU reset_after only
  bool gate_major;     // SequenceGrads::gate_major
};

// One thread's work memory for the weight gradients of its K rows of the B*T: the
// dropout-masked left operands (K * operand_row_values; null without dropout), their packed
// copy (K * packed_row_values), a block of columns of the gate gradients (columns_values(K)
// values at least), and that block's product (result_values).
template <typename T>
struct GradientScratch {
  // A block of columns takes about 512 KiB, and 48 to 240 columns.
  static constexpr long kBlockValues = 512L * 1024 / static_cast<long>(sizeof(T));
  static constexpr int kFewestBlockColumns = 48, kMostBlockColumns = 240;

  T* masked;
  T* packed;
  T* columns;
  long columns_capacity;  // values in `columns`
  T* result;

  // Columns per block of the gate gradients over K rows (K up to `rows`): the multiples of 16
  // that fit in `columns`, which holds at least kFewestBlockColumns of them.
  int block_columns(long K) const {
    const long fit = columns_capacity / std::max(1L, K) / 16 * 16;
    return static_cast<int>(std::min<long>(fit, kMostBlockColumns));
  }

  // Per row: the left operand is x (I values) or h (H values), packed in whole groups of columns.
  static long operand_row_values(int input_size, int units) { return std::max(input_size, units); }
  static long packed_row_values(int input_size, int units) {
    return PanelMatrix<T>::values(units_plan(0, 0), 1, std::max(input_size, units));
  }
  static long columns_values(long rows) { return std::max(kBlockValues, rows * kFewestBlockColumns); }
  // Row stride of a block's product: n values and a cache line, so that its rows do not all map
  // to the same cache sets when n is a power of two.
  static int result_stride(int n) { return (n + 15) / 16 * 16 + 64 / static_cast<int>(sizeof(T)); }
  static long result_values(int input_size, int units) {
    return static_cast<long>(kMostBlockColumns) * result_stride(std::max(input_size, units));
  }
};

// dx of the rows r (of the B*T rows) from their gx-gradients dgx (B*T, G*H) and the kernel
// transposed (transposed_source(in.kernel), backward_plan(), K = G*H, I units); nothing with
// one-hot input.
template <typename T>
void input_gradient_rows(Range r, const SequenceInputs<T>& in, const PanelMatrix<T>& kernel_t, const T* dgx, T* dx);

// The rows r's share of d_kernel[:, c] and d_bias[c] (d_bias may be null), c a block of the G*H
// columns; d_kernel transposed, (G*H, I), when gate_major. With one-hot input only d_bias: the
// kernel's gradient is one_hot_kernel_grads_share's. `scratch` holds r.size() rows.
template <typename T>
void kernel_gradients(Range r, Range c, const SequenceInputs<T>& in, const T* dgx, T* dkernel, T* dbias,
                      bool gate_major, const GradientScratch<T>& scratch);

// One-hot input: d_kernel[id, :] (d_kernel[:, id] when gate_major) = sum of the dgx rows with
// that id (times dropout), over all rows; each thread computes a block of columns.
template <typename T>
void one_hot_kernel_grads_share(int tid, int nt, const SequenceInputs<T>& in, const T* dgx, T* dkernel,
                                bool gate_major);

// The rows r's share of the columns c of d_recurrent[:, gates g_begin..g_end) =
// (left * recurrent_dropout_g)^T dgrec, left (B, T, H); with apply_dropout false the masks are
// not applied (left already holds them). d_recurrent_bias (may be null) gets the column sums of
// dgrec. d_recurrent is (G*H, H) when gate_major. `scratch` holds r.size() rows.
template <typename T>
void recurrent_gradients(Range r, Range c, const SequenceInputs<T>& in, const T* left, bool apply_dropout,
                         const T* dgrec, int g_begin, int g_end, T* drecurrent, T* drecurrent_bias,
                         bool gate_major, const GradientScratch<T>& scratch);

// out[k] += sum over p < n_parts of parts[p * part_stride + k], for this thread's block of k < n.
template <typename T>
void sum_partials_share(int tid, int nt, T* out, const T* parts, int n_parts, long part_stride, long n);

// Fills a buffer with NaN when output poisoning is on (a test hook, see bindings).
bool poison_outputs();
void set_poison_outputs(bool on);

// The weight gradients' products over at least this many rows (B*T, or a thread's share of them)
// run on BLAS's GEMM where its kernels are as wide as the panel kernel's: measured on an AVX2
// VM (Zen 3, OpenBLAS Haswell kernels), 5-12 % off the backward pass at the reference shapes and
// 25 % off the products themselves at 640 rows; below about 256 rows the panel kernel was as fast
// or faster.
constexpr long kBlasWeightGradRows = 256;
// Whether a weight-gradient product over `rows` rows runs on BLAS (see kBlasWeightGradRows).
bool weight_grads_on_blas(long rows);
// Test hook: -1 (default) decides by rows and kernels as above, 0 never uses BLAS, 1 always.
void set_weight_grads_blas(int mode);

}  // namespace cpu
}  // namespace fusedrnn
