// The time loop shared by every recurrent cell on the CPU.
//
// Forward: one parallel region; the weights [kernel; recurrent kernel] are packed once
// (panel_gemm.h); then per step each thread runs the cell's step for its share (StepShare: its
// batch rows and hidden units: one product [x_t | h_{t-1}] x weights for those gate columns,
// fused with the gate math) and writes the new state and its outputs. When the threads split
// the batch, nothing is shared inside the time loop (and with more blocks of 16 sequences than
// threads, each thread runs the time loop on one claimed block at a time, so that a thread the
// machine holds up does fewer; a thread with no rows left takes the second half of the rows of
// one still in its loop, row_handover.h); when they split the units, they meet at one barrier per step,
// and (cells without a barrier inside their step) claim the step's groups of units one at a
// time rather than each taking a fixed half.
//
// Backward: per step (last to first) each thread back-propagates the next step's recurrent
// gradients into its share of dh (a GEMM against its rows of the recurrent kernel) and runs the
// cell's fused gate backward (plus a barrier per step when the units are split); afterwards the
// weight and input gradients of all steps are a few large products on the panel kernel (the
// weight gradients of many rows on BLAS in AVX2 builds, sequence.h): each thread computes its share of the weight gradients, then the threads claim
// blocks of rows of dx (against the packed transposed kernel) one at a time, so that a thread
// the machine holds up (a busy virtual CPU) takes fewer of them. A deferred backward pass
// (SequenceGrads::dgates) writes the gate gradients out instead of its weight gradients, which
// run_weight_grads computes later for the stacked rows of many calls.
//
// A Cell policy provides:
//   forward_step(ForwardStep&)            GEMMs + gate math of one step for the thread's share
//   backprop_state(BackwardStep&, t_next) dh[share] += recurrent gradient of step at t_next
//   backward_step(BackwardStep&)          gate backward of one step for the thread's share
//   parameter_grads(BackwardStep&, rows, cols, out)  the rows' share of columns cols of the weight gradients
//   separate_recurrent_grads()            whether dG of the recurrent side differs from dgx
//   claims_units()                        whether forward_step may run on any group of units
//                                         (no barrier inside it), so threads can claim them
// and calls step_barrier(st) where a step needs every unit of a row before it goes on.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu/panel_gemm.h"
#include "cpu/recurrent.h"
#include "cpu/row_handover.h"
#include "cpu/stream_store.h"
#include "cpu/workspace.h"

namespace fusedrnn {
namespace cpu {

// Where the gate math puts the activated gates of a step.
enum class GateSink {
  kCache,    // the saved gates, through the caches
  kStream,   // the saved gates, past the caches (saved gates too large for the CPU caches)
  kDiscard,  // nowhere: no backward pass will read them
};

template <typename T>
struct ForwardStep {
  const SequenceInputs<T>& in;
  const SavedSequence<T>& saved;
  const ForwardOutputs<T>& out;
  const PanelMatrix<T>* weights;  // the cell's packed weights (Cell::forward_plans)
  int s = 0, t = 0;               // processing step and its input time
  StepShare share{};              // this thread's batch rows and hidden units
  // The step's left operands, one row per row of the share: [x_t * dropout_g | h_{s-1} *
  // recurrent_dropout_g], one buffer per gate g when a dropout mask differs per gate (`per_gate`),
  // else one. Without dropout (`in_place`) nothing is built: the products read the rows of x_t
  // and of the saved h_{s-1} where they are.
  const T* operand = nullptr;
  int lda = 0;
  bool per_gate = false;
  bool in_place = false;
  T* h_next = nullptr;            // where the new state goes: hprev row of the next step or h_last
  int h_next_ld = 0;
  T* scratch = nullptr;           // share.rows.size() * H values, private to the thread
  GateSink gate_sink = GateSink::kCache;  // where the activated gates go (cells.h: GateStore)
  // The inputs projected before the time loop (project_inputs), else null: per (b, t) row, per
  // group of units of weights[0], a tile row (slots * L values) of x_t times the kernel. The
  // step's product then runs over the state's K rows only, from k_first = kx.
  const T* gx = nullptr;
  int k_first = 0;

  long row(int b) const { return static_cast<long>(b) * in.steps + t; }          // (b, t) input row
  long saved_row(int b) const { return saved.row(b, t); }                        // (b, t) saved row
  const T* h_prev(int b) const { return saved.hprev + saved_row(b) * in.units; }  // (H,)
  T* gates(int b) const { return saved.gates + saved_row(b) * in.width(); }     // (G*H,)
  T* aux(int b) const { return saved.aux + saved_row(b) * in.units; }            // (H,)
  T* h_new(int b) const { return h_next + static_cast<long>(b) * h_next_ld; }    // (H,)
  // h_{s-1} of row b as it enters gate g's matmul (after recurrent dropout).
  const T* h_in(int gate, int b) const {
    if (in_place) return h_prev(b);
    const int rows = share.rows.size();
    return operand + (static_cast<long>(per_gate ? gate : 0) * rows + (b - share.rows.begin)) * lda + (lda - in.units);
  }

  // Adds row b's projected inputs (gx) to the pre-activations of the group of units from u0.
  void add_projected_inputs(int b, int u0, T* pre) const {
    const PanelMatrix<T>& w = weights[0];
    const int values = w.plan().slots() * kLanes<T>;
    const T* g = gx + (row(b) * w.groups() + u0 / w.group_units()) * values;
    for (int i = 0; i < values; ++i) pre[i] += g[i];
  }

  // C = A * w for the share's rows and units, A the step's operands (or `a` with leading
  // dimension `a_ld`, shared by every panel); finish(b, u_begin, u_end, tile_row) takes each
  // row's pre-activations for a group of units (see PanelMatrix::multiply).
  template <typename Finish>
  void product(const PanelMatrix<T>& w, Finish&& finish, const T* a = nullptr, int a_ld = 0) const {
    const int rows = share.rows.size(), b0 = share.rows.begin, kx = w.kx();
    auto to_finish = [&](int r, int u0, int u1, T* pre) { finish(b0 + r, u0, u1, pre); };
    if (a != nullptr || !in_place) {
      const T* left[kPanels] = {};
      const PanelPlan plan = w.plan().slot_plan();  // a left operand per slot of the tile
      for (int p = 0; p < plan.panels; ++p) {
        const int gate = plan.x_gate[p] >= 0 ? plan.x_gate[p] : plan.h_gate[p];
        left[p] = a != nullptr ? a : operand + static_cast<long>(per_gate ? gate : 0) * rows * lda;
      }
      const int k = a != nullptr ? a_ld : lda;  // the operand rows are exactly K long
      w.multiply(rows, left, k, per_gate && a == nullptr, a != nullptr ? 0 : k_first, k, share.units.begin,
                 share.units.end, to_finish);
      return;
    }
    // In place (packed weights, no dropout): x_t rows S * I apart, h_{s-1} rows slots * H apart.
    Operands<T> rows_of{{}, {}, in.steps * in.input_size, saved.slots * in.units, false};
    rows_of.h[0] = h_prev(b0);
    rows_of.x[0] = kx > 0 ? in.x + row(b0) * in.input_size : rows_of.h[0];
    w.multiply(rows, rows_of, k_first, kx + in.units, share.units.begin, share.units.end, to_finish);
  }
};

template <typename T>
struct BackwardStep {
  const SequenceInputs<T>& in;
  const SavedSequence<T>& saved;
  const IncomingGrads<T>& incoming;
  const SequenceGrads<T>& grads;
  T* dgx;                     // (B, T, G*H): gradients of the input-side pre-activations
  T* dgrec;                   // (B, T, G*H): same for the recurrent side (may alias dgx)
  T* dh;                      // (B, H): gradient flowing into the state h_s
  T* dc;                      // (B, H): LSTM cell-state gradient
  const PanelMatrix<T>* weights_t;  // the recurrent kernel transposed (transposed_source)
  GradientScratch<T> grad_scratch;  // for the thread's rows, private: the weight gradients' operands
  const std::vector<int>& first_active;
  const T* zeros;             // (H,) zeros
  int s = 0, t = 0;
  StepShare share{};

  long row(int b) const { return static_cast<long>(b) * in.steps + t; }
  const T* h_prev(int b) const { return saved.hprev + row(b) * in.units; }
  const T* gates(int b) const { return saved.gates + row(b) * in.width(); }
  T* dgx_row(int b) const { return dgx + row(b) * in.width(); }
  T* dgrec_row(int b) const { return dgrec + row(b) * in.width(); }
  // Gradient arriving at h_s from the outputs (zeros when none reaches row b at this step).
  const T* d_output(int b) const {
    if (incoming.d_outputs == nullptr || s < first_active[b]) return zeros;
    return incoming.d_outputs + (static_cast<long>(b) * in.steps + s) * in.units;
  }
};

// Inside a step: waits until every thread has finished the first part of the step. Only a
// split of the units needs it (with a batch split each thread owns whole rows).
template <typename Step>
inline void step_barrier(const Step& st) {
  if (!st.share.by_batch) {
#pragma omp barrier
  }
}

template <typename T>
inline void fill_poison(T* p, long n) {
  if (p == nullptr || !poison_outputs()) return;
  std::fill(p, p + n, std::numeric_limits<T>::quiet_NaN());
}

// The left operands of one step for the share's rows: per buffer g (one per gate when
// `per_gate`), row b: [x[b, t, :] * dropout_g[b, :] | h[b, :] * recurrent_dropout_g[b, :]],
// where h = the saved hprev at t; without dense input (one-hot ids) only the h part.
template <typename T>
void build_operands(const SequenceInputs<T>& in, const StepShare& share, int t, const SavedSequence<T>& saved,
                    bool per_gate, int lda, T* operand) {
  const int S = in.steps, I = in.input_size, H = in.units, kx = lda - H, rows = share.rows.size();
  for (int g = 0; g < (per_gate ? in.gates : 1); ++g) {
    const T* xm = in.dropout_of_gate(g);
    const T* hm = in.recurrent_dropout_of_gate(g);
    for (int b = share.rows.begin; b < share.rows.end; ++b) {
      T* a = operand + (static_cast<long>(g) * rows + (b - share.rows.begin)) * lda;
      if (kx > 0) {
        const T* x = in.x + (static_cast<long>(b) * S + t) * I;
        if (xm == nullptr) std::copy(x, x + I, a);
        else
          for (int k = 0; k < I; ++k) a[k] = x[k] * xm[static_cast<long>(b) * I + k];
      }
      const T* h = saved.hprev + saved.row(b, t) * H;
      if (hm == nullptr) std::copy(h, h + H, a + kx);
      else
        for (int j = 0; j < H; ++j) a[kx + j] = h[j] * hm[static_cast<long>(b) * H + j];
    }
  }
}

// Rows of x per block of the input projection (project_inputs): 128 rows of up to a few hundred
// features stay in L2 while every group of the kernel's panels multiplies them.
constexpr int kProjectRows = 128;

template <typename Cell, typename T>
void run_forward(const Cell& cell, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                 const ForwardOutputs<T>& out) {
  const int B = in.batch, S = in.steps, H = in.units;
  const int kx = in.ids != nullptr ? 0 : in.input_size;  // one-hot input is added in the gate math
  const std::vector<int> first = first_active_steps(in);
  const bool per_gate = in.n_dropout > 1 || in.n_recurrent_dropout > 1;
  // Without dropout the products read x_t and h_{s-1} where they are (ForwardStep::in_place).
  const bool in_place = in.dropout == nullptr && in.recurrent_dropout == nullptr && pack_weights(in);
  Workspace ws;
  const std::vector<PanelPlan> plans = cell.forward_plans();
  std::vector<PanelMatrix<T>> weights;
  long weight_bytes = 0;
  // Weights packed before the call (SequenceInputs::packed) are used as they are.
  const bool prepacked = in.prepacked();
  for (size_t i = 0; i < plans.size(); ++i) {
    const int k = i == 0 ? kx + H : H;  // further products (GRU reset_before) take only a state
    bool bf16 = false;
    if constexpr (std::is_same<T, float>::value) {
      bf16 = in.packed_bf16[0] != nullptr;
      if (bf16) weights.push_back(PanelMatrix<T>::packed_bf16(plans[i], k, i == 0 ? kx : 0, H, in.packed_bf16[i]));
    }
    if (!bf16) {
      const long values = PanelMatrix<T>::values(plans[i], k, H);
      T* storage = prepacked ? const_cast<T*>(in.packed[i]) : (pack_weights(in) ? ws.take<T>(values) : nullptr);
      weights.emplace_back(plans[i], k, i == 0 ? kx : 0, H, forward_source(in), storage);
    }
    weight_bytes += weights.back().bytes();
  }
  // Few sequences: the inputs of all steps are projected first (one product over the B*S rows
  // of x against the kernel's part of the packed weights), in the layout of a tile row per
  // group; the steps then multiply only their state by the recurrent kernel.
  const bool project = project_inputs(in) && B <= project_inputs_batch();
  // Under a split of the units, the threads claim the groups of units of each step one at a time
  // (counter `claimed[s]`) where the cell allows it (one product per step) and the weights are
  // packed: a thread that the machine holds up then takes fewer groups, instead of making every
  // other thread wait at the step's barrier. Every thread packs an even share of all groups.
  // But a thread that keeps the same units at every step keeps their weights in its own L2
  // cache, where claimed units move between the cores and stream from L3: where each thread's
  // share of the weights a step reads fits its L2, the split of the units stays fixed.
  const long step_bytes = project ? weight_bytes * H / (kx + H) : weight_bytes;
  const bool fits_own_l2 = step_bytes / std::max(1, num_threads()) <= kFixedSplitWeightBytes;
  const bool claims = cell.claims_units() && pack_weights(in) && plans.size() == 1 && !fits_own_l2;
  const long gx_values = project ? static_cast<long>(weights[0].groups()) * plans[0].slots() * kLanes<T> : 0;
  T* gx = project ? ws.take<T>(static_cast<size_t>(B) * S * gx_values) : nullptr;
  const std::unique_ptr<std::atomic<int>[]> claimed(claims ? new std::atomic<int>[S] : nullptr);
  for (int s = 0; claims && s < S; ++s) claimed[s].store(0, std::memory_order_relaxed);
  // Without a cache for the backward pass (inference) the activated gates are not kept; a cache
  // larger than the CPU caches gets its gates streamed to memory.
  const bool streamed_size = static_cast<long>(B) * S * in.width() * static_cast<long>(sizeof(T)) >= kStreamBytes;
  const GateSink gate_sink =
      saved.slots < S ? GateSink::kDiscard : (streamed_size ? GateSink::kStream : GateSink::kCache);
  // The outputs are written once and not read again here: as large, they are streamed too.
  const bool stream_outputs = static_cast<long>(B) * S * H * static_cast<long>(sizeof(T)) >= kStreamBytes;

  // Under a batch split with more blocks of kBlockRows sequences than threads, each thread runs
  // the whole time loop on one claimed block at a time (BlockClaims). The outputs do not depend
  // on which thread computes a row.
  int threads = region_threads();
  // Small steps under a split of the units run on one thread (kMinParallelStepMacs).
  const long step_macs = static_cast<long>(B) * ((project ? 0 : kx) + H) * in.width();
  if (threads > 1 && !step_share(B, H, weight_bytes, 0, threads).by_batch && step_macs < min_parallel_step_macs())
    threads = 1;
  BlockClaims row_blocks(B, kBlockRows, threads);
  const bool claims_rows =
      threads > 1 && step_share(B, H, weight_bytes, 0, threads).by_batch && row_blocks.blocks() > threads;
  // Then a thread with no rows of its own left takes half of the rows of one still in its loop.
  RowHandover handover(threads);

  parallel_region(threads, [&] {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const StepShare share = step_share(B, H, weight_bytes, tid, nt);
    const Range own = share.units;
    const bool claim = claims && !share.by_batch;
    if (!prepacked)
      for (const PanelMatrix<T>& w : weights) pack_share(tid, nt, share, w, claim);
    const int lda = weights[0].kx() + H;
    const int most_rows = claims_rows ? kBlockRows : share.rows.size();
    std::vector<T> operand(in_place ? 0 : static_cast<size_t>(per_gate ? in.gates : 1) * most_rows * lda);
    std::vector<T> scratch(static_cast<size_t>(most_rows) * H);
    const int t0 = in.time_of_step(0);
    auto start_rows = [&](Range rows) {  // h_0 into the saved state of the first step
      for (int b = rows.begin; b < rows.end; ++b)
        for (int j = own.begin; j < own.end; ++j) saved.hprev[saved.row(b, t0) * H + j] = in.h0[b * H + j];
    };
    if (!claims_rows) start_rows(share.rows);
#pragma omp barrier  // the packed weights (and, under a unit split, every unit of h_0) are ready
    if (project) {
      // The thread's rows in blocks of kProjectRows, each multiplied by every group of units
      // while it stays in cache (one product over all rows would read them again per group).
      const Range r = split_range(B * S, tid, nt, 1);
      const int width = weights[0].group_units(), filled = plans[0].panels * kLanes<T>;
      const long group_values = gx_values / weights[0].groups();
      for (int r0 = r.begin; r0 < r.end; r0 += kProjectRows) {
        const T* a = in.x + static_cast<long>(r0) * in.input_size;
        weights[0].multiply(std::min(kProjectRows, r.end - r0), &a, in.input_size, false, 0, kx, 0, H,
                            [&](int i, int u0, int, const T* tile) {
                              T* dst = gx + (static_cast<long>(r0 + i) * weights[0].groups() + u0 / width) * group_values;
                              std::copy(tile, tile + filled, dst);
                              // A split panel's second slot (the state's sum) gets nothing from the input.
                              std::fill(dst + filled, dst + group_values, T(0));
                            });
      }
#pragma omp barrier  // every row's projection is ready
    }

    // The batch rows the time loop runs on next, from step `from_step`: the thread's share once,
    // or claimed blocks; then rows handed over by another thread.
    const bool hand_over = share.by_batch && nt > 1;
    BlockClaims::Cursor cursor{tid};
    bool share_done = false;
    int from_step = 0;
    auto next_rows = [&](Range& rows) {
      if (!claims_rows && !share_done) {
        share_done = true;
        rows = share.rows;
        return true;
      }
      if (claims_rows && row_blocks.next(cursor, rows)) {
        start_rows(rows);
        return true;
      }
      if (!hand_over) return false;
      handover.leave(tid);  // nothing left to give away
      return handover.take(tid, nt, rows, from_step);
    };
    if (hand_over && tid != 0) handover.wait_for_first_thread();  // test hook: off unless set
    for (Range rows; next_rows(rows);) {
      if (hand_over) handover.enter(tid);
      if (hand_over && tid == 0) handover.hold_first_thread(tid);  // test hook: off unless set
      StepShare mine = share;
      for (int s = from_step; s < S; ++s) {
        mine.rows = rows;  // the second half may have been handed over at the last step boundary
        ForwardStep<T> st{in, saved, out, weights.data()};
        st.s = s;
        st.t = in.time_of_step(s);
        st.share = mine;
        if (!in_place) build_operands(in, mine, st.t, saved, per_gate, lda, operand.data());
        st.operand = operand.data();
        st.lda = lda;
        st.per_gate = per_gate;
        st.in_place = in_place;
        st.scratch = scratch.data();
        st.gate_sink = gate_sink;
        st.gx = gx;
        st.k_first = project ? kx : 0;
        if (s + 1 < S) {
          st.h_next = saved.hprev + saved.row(0, in.time_of_step(s + 1)) * H;
          st.h_next_ld = saved.slots * H;
        } else {
          st.h_next = out.h_last;
          st.h_next_ld = H;
        }
        // The step for units `u`: the cell's product and gate math, then the outputs.
        auto step_units = [&](Range u) {
          st.share.units = u;
          cell.forward_step(st);
          for (int b = rows.begin; b < rows.end; ++b) {
            if (out.outputs == nullptr) break;  // a single step whose output is h_last
            T* o = out.outputs + (static_cast<long>(b) * S + s) * H;
            if (s >= first[b]) copy_maybe_streamed(o + u.begin, st.h_new(b) + u.begin, u.size(), stream_outputs);
            else std::fill(o + u.begin, o + u.end, T(0));  // before the row's first unmasked step
          }
        };
        if (claim) {
          const int width = weights[0].group_units(), groups = weights[0].groups();
          for (int g; (g = claimed[s].fetch_add(1, std::memory_order_relaxed)) < groups;)
            step_units(Range{g * width, std::min(H, (g + 1) * width)});
        } else {
          step_units(own);
        }
        step_barrier(st);
        if (hand_over) handover.offer(tid, rows, s + 1, S - (s + 1));
      }
    }
    // The saved gates and outputs are read by other threads later.
    if (gate_sink == GateSink::kStream || stream_outputs) stream_fence();
  });
}

// The weight gradients' work memory (GradientScratch) for one parallel region of `threads`
// threads: operands for `operand_rows` rows in all (the threads of a batch split share one set
// of B*T rows, each thread's starting at its first row; threads that each take every row have
// a set each), and per thread a block of columns of the gate gradients and its product.
template <typename T>
class GradientScratchPool {
 public:
  GradientScratchPool(Workspace& ws, const SequenceInputs<T>& in, long rows_bt, long operand_rows, int threads)
      : masked_row_(GradientScratch<T>::operand_row_values(in.input_size, in.units)),
        packed_row_(GradientScratch<T>::packed_row_values(in.input_size, in.units)),
        columns_values_(GradientScratch<T>::columns_values(rows_bt)),
        result_values_(GradientScratch<T>::result_values(in.input_size, in.units)) {
    const bool masks = in.dropout != nullptr || in.recurrent_dropout != nullptr;
    masked_ = masks ? ws.take<T>(static_cast<size_t>(operand_rows * masked_row_)) : nullptr;
    packed_ = ws.take<T>(static_cast<size_t>(operand_rows * packed_row_));
    columns_ = ws.take<T>(static_cast<size_t>(threads) * columns_values_);
    result_ = ws.take<T>(static_cast<size_t>(threads) * result_values_);
  }

  // Thread tid's scratch, its operands from row `first_row` of the set.
  GradientScratch<T> of_thread(int tid, long first_row) const {
    return {masked_ ? masked_ + first_row * masked_row_ : nullptr, packed_ + first_row * packed_row_,
            columns_ + tid * columns_values_, columns_values_, result_ + tid * result_values_};
  }

 private:
  long masked_row_, packed_row_, columns_values_, result_values_;
  T* masked_;
  T* packed_;
  T* columns_;
  T* result_;
};

template <typename T>
WeightGrads<T> weight_grads_of(const SequenceGrads<T>& grads) {
  return {grads.dkernel, grads.drecurrent, grads.dbias, grads.drecurrent_bias, grads.gate_major};
}

template <typename Cell, typename T>
void run_backward(const Cell& cell, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                  const IncomingGrads<T>& incoming, const SequenceGrads<T>& grads) {
  const int B = in.batch, S = in.steps, H = in.units, GH = in.width();
  const long rows_bt = static_cast<long>(B) * S;
  const std::vector<int> first = first_active_steps(in);
  // Deferred weight gradients (SequenceGrads::dgates): the gate gradients go to the caller.
  const bool deferred = grads.dgates != nullptr;
  Workspace ws;
  T* dgx = deferred ? grads.dgates : ws.take<T>(static_cast<size_t>(rows_bt) * GH);
  T* dgrec = !cell.separate_recurrent_grads() ? dgx
             : deferred                       ? grads.drecurrent_gates
                                              : ws.take<T>(static_cast<size_t>(rows_bt) * GH);
  T* dh = ws.take<T>(static_cast<size_t>(B) * H);
  T* dc = ws.take<T>(static_cast<size_t>(B) * H);
  T* zeros = ws.take<T>(static_cast<size_t>(H));
  std::fill(zeros, zeros + H, T(0));
  const PanelPlan plan_t = backward_plan();
  const long weight_values = PanelMatrix<T>::values(plan_t, GH, H);
  const long weight_bytes = weight_values * static_cast<long>(sizeof(T));
  const PanelMatrix<T> weights_t(plan_t, GH, 0, H, transposed_source(in.recurrent, GH),
                                 pack_weights(in) ? ws.take<T>(weight_values) : nullptr);
  // The kernel transposed, for dx (dense input only); every thread packs a share of it.
  const int dense_inputs = in.ids != nullptr ? 0 : in.input_size;
  const PanelMatrix<T> kernel_t(
      plan_t, GH, 0, dense_inputs, transposed_source(in.kernel, GH),
      pack_weights(in) && dense_inputs > 0 ? ws.take<T>(PanelMatrix<T>::values(plan_t, GH, dense_inputs)) : nullptr);
  const int threads = region_threads();
  // Weight gradients (see WeightGrads): under a batch split every thread but the first sums its
  // rows' share into its own buffers. Their work memory: the rows of the threads of a batch
  // split are disjoint, so their operands share one set of B*T rows; under a split of the units
  // each thread takes all rows. (A region given fewer threads than asked for splits the batch
  // only where the full count would have: fewer threads, same or larger disjoint shares.)
  const bool by_batch = step_share(B, H, weight_bytes, 0, threads).by_batch;
  const long dense_kernel = in.ids != nullptr ? 0 : static_cast<long>(in.input_size) * GH;
  const long partial_stride = dense_kernel + static_cast<long>(H) * GH + 2L * GH;
  T* partials = !deferred && by_batch && threads > 1 ? ws.take<T>(static_cast<size_t>(threads - 1) * partial_stride)
                                                     : nullptr;
  // (None for a deferred pass: its threads compute no weight gradient.)
  const GradientScratchPool<T> pool(ws, in, rows_bt, deferred ? 0 : (by_batch ? 1 : threads) * rows_bt,
                                    deferred ? 0 : threads);
  // dx in blocks of about 256 rows (a few per thread), claimed in order; a block may hold rows
  // of another thread's sequences, so claims start once every thread has left the time loop.
  const int dx_blocks = threads == 1 ? 1 : static_cast<int>(std::clamp<long>(rows_bt / 256, threads, 8L * threads));
  std::atomic<int> dx_claimed{0}, loops_left{threads};

  parallel_region(threads, [&] {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    if (tid == 0 && nt < threads) loops_left.fetch_sub(threads - nt);  // a region given fewer threads
    const StepShare share = step_share(B, H, weight_bytes, tid, nt);
    const Range own = share.units, rows = share.rows;
    pack_share(tid, nt, share, weights_t);
    pack_share(tid, nt, share, kernel_t, true);
    const long first_row = deferred ? 0 : share.by_batch ? static_cast<long>(rows.begin) * S : tid * rows_bt;
    BackwardStep<T> st{in, saved, incoming, grads, dgx, dgrec, dh, dc, &weights_t, pool.of_thread(tid, first_row),
                       first, zeros};
    st.share = share;
    for (int b = rows.begin; b < rows.end; ++b) {
      for (int j = own.begin; j < own.end; ++j) {
        dh[b * H + j] = incoming.d_h_last ? incoming.d_h_last[b * H + j] : T(0);
        dc[b * H + j] = incoming.d_c_last ? incoming.d_c_last[b * H + j] : T(0);
      }
    }
#pragma omp barrier
    for (int s = S - 1; s >= 0; --s) {
      st.s = s;
      st.t = in.time_of_step(s);
      if (s + 1 < S) cell.backprop_state(st, in.time_of_step(s + 1));
      cell.backward_step(st);
      step_barrier(st);
    }
    cell.backprop_state(st, in.time_of_step(0));
    for (int b = rows.begin; b < rows.end; ++b) {
      for (int j = own.begin; j < own.end; ++j) {
        grads.dh0[b * H + j] = dh[b * H + j];
        if (grads.dc0) grads.dc0[b * H + j] = dc[b * H + j];
      }
    }
    loops_left.fetch_sub(1, std::memory_order_release);
    // The thread's share of the weight gradients (the gate gradients it needs are complete: the
    // last step ended at its barrier, or it computed its own rows), then the claimed dx blocks.
    auto input_gradient_blocks = [&] {
      while (loops_left.load(std::memory_order_acquire) > 0) spin_pause();
      for (int k; (k = dx_claimed.fetch_add(1, std::memory_order_relaxed)) < dx_blocks;)
        input_gradient_rows(split_range(static_cast<int>(rows_bt), k, dx_blocks, 1), in, kernel_t, dgx, grads.dx);
    };
    const WeightGrads<T> outputs = weight_grads_of(grads);
    if (deferred) {
      input_gradient_blocks();
    } else if (share.by_batch) {
      const Range r{rows.begin * S, rows.end * S};
      T* part = tid == 0 ? nullptr : partials + (tid - 1) * partial_stride;
      const long recurrent_at = dense_kernel, bias_at = recurrent_at + static_cast<long>(H) * GH;
      const WeightGrads<T> mine =
          tid == 0 ? outputs
                   : WeightGrads<T>{in.ids ? nullptr : part, part + recurrent_at, part + bias_at,
                                    grads.drecurrent_bias ? part + bias_at + GH : nullptr, grads.gate_major};
      cell.parameter_grads(st, r, Range{0, GH}, mine);
      input_gradient_blocks();
#pragma omp barrier
      if (nt > 1) {
        sum_partials_share(tid, nt, grads.dkernel, partials, nt - 1, partial_stride, dense_kernel);
        sum_partials_share(tid, nt, grads.drecurrent, partials + recurrent_at, nt - 1, partial_stride,
                           static_cast<long>(H) * GH);
        sum_partials_share(tid, nt, grads.dbias, partials + bias_at, nt - 1, partial_stride, GH);
        if (grads.drecurrent_bias)
          sum_partials_share(tid, nt, grads.drecurrent_bias, partials + bias_at + GH, nt - 1, partial_stride, GH);
      }
    } else {
      cell.parameter_grads(st, Range{0, static_cast<int>(rows_bt)}, split_range(GH, tid, nt), outputs);
      input_gradient_blocks();
    }
    if (!deferred && in.ids != nullptr) one_hot_kernel_grads_share(tid, nt, in, dgx, grads.dkernel, grads.gate_major);
  });
}

// recurrent_weight_grads (recurrent.h): every thread takes all rows and a share of the columns.
template <typename Cell, typename T>
void run_weight_grads(const Cell& cell, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                      const T* dgates, const T* drecurrent_gates, const SequenceGrads<T>& grads) {
  const long rows = static_cast<long>(in.batch) * in.steps;
  const int threads = region_threads();
  Workspace ws;
  const GradientScratchPool<T> pool(ws, in, rows, threads * rows, threads);
  const IncomingGrads<T> no_incoming{nullptr, nullptr, nullptr};
  const std::vector<int> no_steps;
  T* dgx = const_cast<T*>(dgates);  // only read: BackwardStep's pointers serve the backward pass too
  T* dgrec = cell.separate_recurrent_grads() ? const_cast<T*>(drecurrent_gates) : dgx;
  const WeightGrads<T> outputs = weight_grads_of(grads);
  parallel_region(threads, [&] {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const BackwardStep<T> st{in, saved, no_incoming, grads, dgx, dgrec, nullptr, nullptr, nullptr,
                             pool.of_thread(tid, tid * rows), no_steps, nullptr};
    cell.parameter_grads(st, Range{0, static_cast<int>(rows)}, split_range(in.width(), tid, nt), outputs);
    if (in.ids != nullptr) one_hot_kernel_grads_share(tid, nt, in, dgx, grads.dkernel, grads.gate_major);
  });
}

}  // namespace cpu
}  // namespace fusedrnn
