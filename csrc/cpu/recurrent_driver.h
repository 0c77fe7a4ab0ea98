// The time loop shared by every recurrent cell on the CPU.
//
// Forward: one parallel region; the input projection of all steps as one split GEMM; then per
// step each thread runs the cell's step for its own hidden units (recurrent GEMMs of its gate
// columns + fused gate math), writes the new state, its outputs and dropped-out copies, and
// meets the others at one barrier.
//
// Backward: per step (last to first) each thread back-propagates the next step's recurrent
// gradients into its units of dh (a GEMM against its rows of the recurrent kernel), runs the
// cell's fused gate backward, barrier; afterwards the weight and input gradients of all steps
// are a few large split GEMMs.
//
// A Cell policy provides:
//   forward_step(ForwardStep&)            GEMMs + gate math of one step for the thread's units
//   backprop_state(BackwardStep&, t_next) dh[:, own] += recurrent gradient of step at t_next
//   backward_step(BackwardStep&)          gate backward of one step for the thread's units
//   parameter_grads(BackwardStep&)        dx, dkernel, drecurrent, dbias from all steps
//   separate_recurrent_grads()            whether dG of the recurrent side differs from dgx
#pragma once

#include <algorithm>
#include <vector>

#include "cpu/recurrent.h"
#include "cpu/workspace.h"

namespace fusedrnn {
namespace cpu {

template <typename T>
struct ForwardStep {
  const SequenceInputs<T>& in;
  const SavedSequence<T>& saved;
  const ForwardOutputs<T>& out;
  int s = 0, t = 0;           // processing step and its input time
  Range own{0, 0};            // this thread's hidden units
  RecurrentOperand<T> h{};    // h_{s-1} as it enters each gate's matmul
  T* h_next = nullptr;        // where the new state goes: hprev row of the next step or h_last
  int h_next_ld = 0;
  T* scratch = nullptr;       // B * own.size() values, private to the thread
  const PackedMatrix<T>* packed = nullptr;  // per gate: U[:, g*H + own], packed

  long row(int b) const { return static_cast<long>(b) * in.steps + t; }          // (b, t) row
  const T* h_prev(int b) const { return saved.hprev + row(b) * in.units; }        // (H,)
  T* gates(int b) const { return saved.gates + row(b) * in.width(); }           // (G*H,)
  T* h_new(int b) const { return h_next + static_cast<long>(b) * h_next_ld; }    // (H,)
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
  const PackedMatrix<T>* packed_t;  // U[own, :]^T, packed (pack_backward_weights)
  T* scratch;                 // B * own.size(), private to the thread
  T* shared_scratch;          // B*T*max(I, H), for the dropout-masked GEMM operands
  const std::vector<int>& first_active;
  const T* zeros;             // (H,) zeros
  int tid = 0, nt = 1;
  int s = 0, t = 0;
  Range own{0, 0};

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

template <typename T>
inline void fill_poison(T* p, long n) {
  if (p == nullptr || !poison_outputs()) return;
  std::fill(p, p + n, std::numeric_limits<T>::quiet_NaN());
}

template <typename Cell, typename T>
void run_forward(const Cell& cell, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                 const ForwardOutputs<T>& out) {
  const int B = in.batch, S = in.steps, H = in.units;
  const std::vector<int> first = first_active_steps(in);
  Workspace ws;
  T* masked_x = in.dropout && !in.ids ? ws.take<T>(static_cast<size_t>(B) * S * in.input_size) : nullptr;
  const long slab = static_cast<long>(in.n_recurrent_dropout) * B * H;
  T* dropped = in.recurrent_dropout ? ws.take<T>(static_cast<size_t>(2 * slab)) : nullptr;

#pragma omp parallel num_threads(region_threads())
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const Range own = split_range(H, tid, nt);
    std::vector<T> scratch(static_cast<size_t>(B) * std::max(own.size(), 1));
    const std::vector<PackedMatrix<T>> packed = pack_forward_weights(in, own);
    input_projection(tid, nt, in, saved.gates, masked_x);

    const int t0 = in.time_of_step(0);
    for (int b = 0; b < B; ++b)
      for (int j = own.begin; j < own.end; ++j)
        saved.hprev[(static_cast<long>(b) * S + t0) * H + j] = in.h0[b * H + j];
    write_dropped_state(in, saved.hprev + static_cast<long>(t0) * H, S * H, own, dropped);
#pragma omp barrier

    for (int s = 0; s < S; ++s) {
      ForwardStep<T> st{in, saved, out};
      st.s = s;
      st.t = in.time_of_step(s);
      st.own = own;
      st.scratch = scratch.data();
      st.packed = packed.data();
      st.h = RecurrentOperand<T>{saved.hprev + static_cast<long>(st.t) * H, S * H,
                                 in.recurrent_dropout ? dropped + (s % 2) * slab : nullptr,
                                 in.n_recurrent_dropout, B, H};
      if (s + 1 < S) {
        st.h_next = saved.hprev + static_cast<long>(in.time_of_step(s + 1)) * H;
        st.h_next_ld = S * H;
      } else {
        st.h_next = out.h_last;
        st.h_next_ld = H;
      }
      cell.forward_step(st);
      for (int b = 0; b < B; ++b) {
        const bool seen = s >= first[b];
        const T* hn = st.h_new(b);
        T* o = out.outputs + (static_cast<long>(b) * S + s) * H;
        for (int j = own.begin; j < own.end; ++j) o[j] = seen ? hn[j] : T(0);
      }
      if (in.recurrent_dropout)
        write_dropped_state(in, st.h_next, st.h_next_ld, own, dropped + ((s + 1) % 2) * slab);
#pragma omp barrier
    }
  }
}

template <typename Cell, typename T>
void run_backward(const Cell& cell, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                  const IncomingGrads<T>& incoming, const SequenceGrads<T>& grads) {
  const int B = in.batch, S = in.steps, H = in.units, GH = in.width();
  const long rows = static_cast<long>(B) * S;
  const std::vector<int> first = first_active_steps(in);
  Workspace ws;
  T* dgx = ws.take<T>(static_cast<size_t>(rows) * GH);
  T* dgrec = cell.separate_recurrent_grads() ? ws.take<T>(static_cast<size_t>(rows) * GH) : dgx;
  T* dh = ws.take<T>(static_cast<size_t>(B) * H);
  T* dc = ws.take<T>(static_cast<size_t>(B) * H);
  T* zeros = ws.take<T>(static_cast<size_t>(H));
  std::fill(zeros, zeros + H, T(0));
  const bool any_dropout = in.dropout != nullptr || in.recurrent_dropout != nullptr;
  T* shared_scratch = any_dropout ? ws.take<T>(static_cast<size_t>(rows) * std::max(in.input_size, H)) : nullptr;

#pragma omp parallel num_threads(region_threads())
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const Range own = split_range(H, tid, nt);
    std::vector<T> scratch(static_cast<size_t>(B) * std::max(own.size(), 1));
    const PackedMatrix<T> packed_t = pack_backward_weights(in, own);
    BackwardStep<T> st{in, saved, incoming, grads, dgx, dgrec, dh, dc, &packed_t, scratch.data(),
                       shared_scratch, first, zeros};
    st.tid = tid;
    st.nt = nt;
    st.own = own;
    for (int b = 0; b < B; ++b) {
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
#pragma omp barrier
    }
    cell.backprop_state(st, in.time_of_step(0));
    for (int b = 0; b < B; ++b) {
      for (int j = own.begin; j < own.end; ++j) {
        grads.dh0[b * H + j] = dh[b * H + j];
        if (grads.dc0) grads.dc0[b * H + j] = dc[b * H + j];
      }
    }
#pragma omp barrier
    cell.parameter_grads(st);
  }
}

}  // namespace cpu
}  // namespace fusedrnn
