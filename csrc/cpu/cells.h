// The three recurrent cells as policies of the shared time loop (recurrent_driver.h).
//
// Each step handles the thread's own hidden units [j0, j1) of every batch row. The per-row
// loops are small functions over __restrict pointers so that the compiler vectorises them
// (note: `#pragma omp simd` is avoided on purpose: with the gate structs of cell_math.h as
// locals it makes GCC keep them in memory and give up vectorising). The gate math itself is
// the shared host/device header fusedrnn/cell_math.h.
#pragma once

#include "cpu/recurrent_driver.h"

namespace fusedrnn {
namespace cpu {

namespace rows {

template <typename T>
void zero_gates(int j0, int j1, int H, int gates, T* __restrict g) {
  for (int k = 0; k < gates; ++k)
    for (int j = j0; j < j1; ++j) g[k * H + j] = T(0);
}

// A masked step forward: the state is carried over, the saved gates are zero.
template <typename T>
void carry(int j0, int j1, int H, int gates, const T* __restrict hp, T* __restrict g, T* __restrict hn) {
  zero_gates(j0, j1, H, gates, g);
  for (int j = j0; j < j1; ++j) hn[j] = hp[j];
}

// A masked step backward: the state gradient passes through, the gate gradients are zero.
template <typename T>
void pass_through(int j0, int j1, int H, int gates, const T* __restrict dout, T* __restrict dg, T* __restrict dh) {
  zero_gates(j0, j1, H, gates, dg);
  for (int j = j0; j < j1; ++j) dh[j] += dout[j];
}

}  // namespace rows

// Back-propagates the recurrent gradients of the step at time t_next, gates [g0, g1), into
// dh[:, own] (the state entering that step).
template <typename T>
void backprop_gates(BackwardStep<T>& st, const T* dg, int t_next, int g0, int g1) {
  recurrent_backprop_share(st.in, *st.packed_t, dg + static_cast<long>(t_next) * st.in.width(),
                           st.in.steps * st.in.width(), st.own, g0, g1, st.dh, st.scratch);
}

// ---------------------------------------------------------------------------------------------
// SimpleRNN. Saved gates: h itself (the activation's output).
struct RnnCell {
  math::Activation activation;

  bool separate_recurrent_grads() const { return false; }

  template <typename T>
  static void forward_row(math::Activation act, int j0, int j1, const T* __restrict bias, T* __restrict g,
                          T* __restrict hn) {
    for (int j = j0; j < j1; ++j) {
      const T h = math::activate(act, g[j] + bias[j]);
      g[j] = h;
      hn[j] = h;
    }
  }

  template <typename T>
  static void backward_row(math::Activation act, int j0, int j1, const T* __restrict g, const T* __restrict dout,
                           T* __restrict dh, T* __restrict dg) {
    for (int j = j0; j < j1; ++j) {
      dg[j] = math::rnn_backward(act, g[j], dh[j] + dout[j]);
      dh[j] = T(0);
    }
  }

  template <typename T>
  void forward_step(ForwardStep<T>& st) const {
    const int H = st.in.units, j0 = st.own.begin, j1 = st.own.end;
    recurrent_matmul_share(st.in, st.h, st.packed, st.own, 0, 1, st.saved.gates + static_cast<long>(st.t) * H,
                           st.in.steps * H);
    for (int b = 0; b < st.in.batch; ++b) {
      if (st.in.active(b, st.t)) forward_row(activation, j0, j1, st.in.bias, st.gates(b), st.h_new(b));
      else rows::carry(j0, j1, H, 1, st.h_prev(b), st.gates(b), st.h_new(b));
    }
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const { backprop_gates(st, st.dgx, t_next, 0, 1); }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units, j0 = st.own.begin, j1 = st.own.end;
    for (int b = 0; b < st.in.batch; ++b) {
      T* dh = st.dh + b * H;
      if (st.in.active(b, st.t)) backward_row(activation, j0, j1, st.gates(b), st.d_output(b), dh, st.dgx_row(b));
      else rows::pass_through(j0, j1, H, 1, st.d_output(b), st.dgx_row(b), dh);
    }
  }

  template <typename T>
  void parameter_grads(BackwardStep<T>& st) const {
    input_gradients(st.tid, st.nt, st.in, st.dgx, st.grads.dx, st.grads.dkernel, st.grads.dbias,
                    st.shared_scratch);
    recurrent_gradients(st.tid, st.nt, st.in, st.saved.hprev, true, st.dgx, 0, 1, st.grads.drecurrent,
                        static_cast<T*>(nullptr), st.shared_scratch);
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM. Saved gates: i, f, c~ (g), o after their activations; aux: the cell state.
struct LstmCell {
  bool separate_recurrent_grads() const { return false; }

  // Cell state after the previous step (c0 at the first step) for row b.
  template <typename Step>
  static auto c_prev(const Step& st, int b) {
    const int H = st.in.units;
    return st.s == 0 ? st.in.c0 + b * H
                     : st.saved.aux + (static_cast<long>(b) * st.in.steps + st.in.time_of_step(st.s - 1)) * H;
  }

  template <typename T>
  static void forward_row(int j0, int j1, int H, const T* __restrict bias, const T* __restrict cp, T* __restrict g,
                          T* __restrict c, T* __restrict hn) {
    for (int j = j0; j < j1; ++j) {
      const math::LstmGates<T> a = math::lstm_activate(g[j] + bias[j], g[H + j] + bias[H + j],
                                                       g[2 * H + j] + bias[2 * H + j], g[3 * H + j] + bias[3 * H + j]);
      g[j] = a.i;
      g[H + j] = a.f;
      g[2 * H + j] = a.g;
      g[3 * H + j] = a.o;
      const T cn = math::lstm_cell_state(a, cp[j]);
      c[j] = cn;
      hn[j] = math::lstm_hidden(a, cn);
    }
  }

  template <typename T>
  static void backward_row(int j0, int j1, int H, const T* __restrict g, const T* __restrict c,
                           const T* __restrict cp, const T* __restrict dout, T* __restrict dh, T* __restrict dc,
                           T* __restrict dg) {
    for (int j = j0; j < j1; ++j) {
      const math::LstmGates<T> a{g[j], g[H + j], g[2 * H + j], g[3 * H + j]};
      const math::LstmGrads<T> d = math::lstm_backward(a, c[j], cp[j], dh[j] + dout[j], dc[j]);
      dg[j] = d.dzi;
      dg[H + j] = d.dzf;
      dg[2 * H + j] = d.dzc;
      dg[3 * H + j] = d.dzo;
      dc[j] = d.dc_prev;
      dh[j] = T(0);
    }
  }

  template <typename T>
  void forward_step(ForwardStep<T>& st) const {
    const int H = st.in.units, GH = st.in.width(), j0 = st.own.begin, j1 = st.own.end;
    recurrent_matmul_share(st.in, st.h, st.packed, st.own, 0, 4, st.saved.gates + static_cast<long>(st.t) * GH,
                           st.in.steps * GH);
    const bool last = st.s + 1 == st.in.steps;
    for (int b = 0; b < st.in.batch; ++b) {
      const T* cp = c_prev(st, b);
      T* c = st.saved.aux + st.row(b) * H;
      if (st.in.active(b, st.t)) {
        forward_row(j0, j1, H, st.in.bias, cp, st.gates(b), c, st.h_new(b));
      } else {
        rows::carry(j0, j1, H, 4, st.h_prev(b), st.gates(b), st.h_new(b));
        for (int j = j0; j < j1; ++j) c[j] = cp[j];
      }
      if (last)
        for (int j = j0; j < j1; ++j) st.out.c_last[b * H + j] = c[j];
    }
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const { backprop_gates(st, st.dgx, t_next, 0, 4); }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units, j0 = st.own.begin, j1 = st.own.end;
    for (int b = 0; b < st.in.batch; ++b) {
      T* dh = st.dh + b * H;
      if (st.in.active(b, st.t))
        backward_row(j0, j1, H, st.gates(b), st.saved.aux + st.row(b) * H, c_prev(st, b), st.d_output(b), dh,
                     st.dc + b * H, st.dgx_row(b));
      else
        rows::pass_through(j0, j1, H, 4, st.d_output(b), st.dgx_row(b), dh);  // dc passes unchanged
    }
  }

  template <typename T>
  void parameter_grads(BackwardStep<T>& st) const {
    input_gradients(st.tid, st.nt, st.in, st.dgx, st.grads.dx, st.grads.dkernel, st.grads.dbias,
                    st.shared_scratch);
    recurrent_gradients(st.tid, st.nt, st.in, st.saved.hprev, true, st.dgx, 0, 4, st.grads.drecurrent,
                        static_cast<T*>(nullptr), st.shared_scratch);
  }
};

// ---------------------------------------------------------------------------------------------
// GRU. Saved gates: z, r, hh after their activations; aux: the candidate's recurrent term
// h_prev U_h + b_h (reset_after) or r * h_prev (reset before, with recurrent dropout applied).
struct GruCell {
  bool reset_after;

  bool separate_recurrent_grads() const { return reset_after; }

  // reset_after=True: z, r, hh and h of one row, given x-projections in g (without the input
  // bias bi) and h U_h in rh (without the recurrent bias br).
  template <typename T>
  static void forward_row_after(int j0, int j1, int H, const T* __restrict bi, const T* __restrict br,
                                const T* __restrict hp, T* __restrict g, T* __restrict rh, T* __restrict hn) {
    for (int j = j0; j < j1; ++j) {
      const T z = math::sigmoid((g[j] + bi[j]) + br[j]);
      const T r = math::sigmoid((g[H + j] + bi[H + j]) + br[H + j]);
      const T rec = rh[j] + br[2 * H + j];
      const T hh = math::tanh_((g[2 * H + j] + bi[2 * H + j]) + r * rec);
      rh[j] = rec;
      g[j] = z;
      g[H + j] = r;
      g[2 * H + j] = hh;
      hn[j] = math::gru_hidden(z, hh, hp[j]);
    }
  }

  // reset_after=False, first half: z and r, and r * h_prev for the candidate's matmul.
  template <typename T>
  static void gates_row_before(int j0, int j1, int H, const T* __restrict bias, const T* __restrict hd,
                               T* __restrict g, T* __restrict rh) {
    for (int j = j0; j < j1; ++j) {
      const T z = math::sigmoid(g[j] + bias[j]);
      const T r = math::sigmoid(g[H + j] + bias[H + j]);
      g[j] = z;
      g[H + j] = r;
      rh[j] = r * hd[j];
    }
  }

  // reset_after=False, second half: hh and h once (r * h_prev) U_h has been added to g's h-part.
  template <typename T>
  static void candidate_row_before(int j0, int j1, int H, const T* __restrict bias, const T* __restrict hp,
                                   T* __restrict g, T* __restrict hn) {
    for (int j = j0; j < j1; ++j) {
      const T hh = math::tanh_(g[2 * H + j] + bias[2 * H + j]);
      g[2 * H + j] = hh;
      hn[j] = math::gru_hidden(g[j], hh, hp[j]);
    }
  }

  // Backward through h = z h_prev + (1 - z) hh and the z and hh non-linearities (both modes).
  template <typename T>
  static void backward_row_before(int j0, int j1, int H, const T* __restrict g, const T* __restrict hp,
                                  const T* __restrict dout, T* __restrict dh, T* __restrict dgx) {
    for (int j = j0; j < j1; ++j) {
      const math::GruGrads<T> d = math::gru_backward(g[j], g[2 * H + j], hp[j], dh[j] + dout[j]);
      dgx[j] = d.dzz;
      dgx[2 * H + j] = d.dzh;
      dh[j] = d.dh_prev;
    }
  }

  // reset_after=True: the same plus r and the recurrent candidate term (dgrec's three parts).
  template <typename T>
  static void backward_row_after(int j0, int j1, int H, const T* __restrict g, const T* __restrict hp,
                                 const T* __restrict rh, const T* __restrict dout, T* __restrict dh,
                                 T* __restrict dgx, T* __restrict dgrec) {
    for (int j = j0; j < j1; ++j) {
      const math::GruGrads<T> d = math::gru_backward(g[j], g[2 * H + j], hp[j], dh[j] + dout[j]);
      const T r = g[H + j];
      const T dr = math::sigmoid_backward(r, d.dzh * rh[j]);
      dgx[j] = d.dzz;
      dgx[H + j] = dr;
      dgx[2 * H + j] = d.dzh;
      dgrec[j] = d.dzz;
      dgrec[H + j] = dr;
      dgrec[2 * H + j] = d.dzh * r;
      dh[j] = d.dh_prev;
    }
  }

  // reset_after=False: from d(r * h_prev) (in d_rh) to r's pre-activation and h_prev.
  template <typename T>
  static void reset_row_before(int j0, int j1, int H, const T* __restrict g, const T* __restrict hp,
                               const T* __restrict m, const T* __restrict d_rh, T* __restrict dgx, T* __restrict dh) {
    for (int j = j0; j < j1; ++j) {
      const T mj = m ? m[j] : T(1);
      const T r = g[H + j];
      const T d = d_rh[j - j0];
      dgx[H + j] = math::sigmoid_backward(r, d * hp[j] * mj);
      dh[j] += d * r * mj;
    }
  }

  template <typename T>
  void forward_step(ForwardStep<T>& st) const {
    const int H = st.in.units, GH = st.in.width(), S = st.in.steps, B = st.in.batch;
    const int j0 = st.own.begin, j1 = st.own.end;
    T* gates_t = st.saved.gates + static_cast<long>(st.t) * GH;
    T* aux_t = st.saved.aux + static_cast<long>(st.t) * H;
    // z and r: recurrent projections accumulate onto the input projections.
    recurrent_matmul_share(st.in, st.h, st.packed, st.own, 0, 2, gates_t, S * GH);
    if (reset_after) {
      // The candidate's recurrent term is kept apart: hh = tanh(xh + r * (h U_h + b_h)).
      if (st.own.size() > 0) st.packed[2].multiply(B, st.h.gate(2), st.h.ld(), 0, H, T(0), aux_t + j0, S * H);
      for (int b = 0; b < B; ++b) {
        T* rh = st.saved.aux + st.row(b) * H;
        if (st.in.active(b, st.t)) {
          forward_row_after(j0, j1, H, st.in.bias, st.in.recurrent_bias, st.h_prev(b), st.gates(b), rh, st.h_new(b));
        } else {
          rows::carry(j0, j1, H, 3, st.h_prev(b), st.gates(b), st.h_new(b));
          for (int j = j0; j < j1; ++j) rh[j] = T(0);
        }
      }
      return;
    }
    // reset_after=False: hh = tanh(xh + (r * h_prev) U_h) needs r of every unit first.
    const T* hin_h = st.h.gate(2);
    for (int b = 0; b < B; ++b) {
      T* rh = st.saved.aux + st.row(b) * H;
      if (st.in.active(b, st.t)) {
        gates_row_before(j0, j1, H, st.in.bias, hin_h + static_cast<long>(b) * st.h.ld(), st.gates(b), rh);
      } else {
        rows::carry(j0, j1, H, 3, st.h_prev(b), st.gates(b), st.h_new(b));
        for (int j = j0; j < j1; ++j) rh[j] = T(0);
      }
    }
#pragma omp barrier
    if (st.own.size() > 0) st.packed[2].multiply(B, aux_t, S * H, 0, H, T(1), gates_t + 2 * H + j0, S * GH);
    for (int b = 0; b < B; ++b) {
      if (st.in.active(b, st.t)) candidate_row_before(j0, j1, H, st.in.bias, st.h_prev(b), st.gates(b), st.h_new(b));
      else
        for (int j = j0; j < j1; ++j) st.gates(b)[2 * H + j] = T(0);
    }
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const {
    if (reset_after) backprop_gates(st, st.dgrec, t_next, 0, 3);
    else backprop_gates(st, st.dgx, t_next, 0, 2);  // the candidate's part goes in mid-step
  }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units, GH = st.in.width(), S = st.in.steps, B = st.in.batch;
    const int j0 = st.own.begin, j1 = st.own.end;
    for (int b = 0; b < B; ++b) {
      T* dh = st.dh + b * H;
      if (st.in.active(b, st.t)) {
        if (reset_after)
          backward_row_after(j0, j1, H, st.gates(b), st.h_prev(b), st.saved.aux + st.row(b) * H, st.d_output(b), dh,
                             st.dgx_row(b), st.dgrec_row(b));
        else
          backward_row_before(j0, j1, H, st.gates(b), st.h_prev(b), st.d_output(b), dh, st.dgx_row(b));
      } else {
        rows::pass_through(j0, j1, H, 3, st.d_output(b), st.dgx_row(b), dh);
        if (reset_after) rows::zero_gates(j0, j1, H, 3, st.dgrec_row(b));
      }
    }
    if (reset_after) return;
    // d(r * h_prev) = dhh_pre U_h^T needs every unit's dhh_pre.
#pragma omp barrier
    const int n = st.own.size();
    if (n > 0) st.packed_t->multiply(B, st.dgx + static_cast<long>(st.t) * GH, S * GH, 2 * H, 3 * H, T(0), st.scratch, n);
    const T* rm = st.in.recurrent_dropout_of_gate(2);
    for (int b = 0; b < B; ++b) {
      if (!st.in.active(b, st.t)) continue;
      reset_row_before(j0, j1, H, st.gates(b), st.h_prev(b), rm ? rm + b * H : nullptr, st.scratch + b * n,
                       st.dgx_row(b), st.dh + b * H);
    }
  }

  template <typename T>
  void parameter_grads(BackwardStep<T>& st) const {
    input_gradients(st.tid, st.nt, st.in, st.dgx, st.grads.dx, st.grads.dkernel, st.grads.dbias,
                    st.shared_scratch);
    if (reset_after) {
      recurrent_gradients(st.tid, st.nt, st.in, st.saved.hprev, true, st.dgrec, 0, 3, st.grads.drecurrent,
                          st.grads.drecurrent_bias, st.shared_scratch);
    } else {
      recurrent_gradients(st.tid, st.nt, st.in, st.saved.hprev, true, st.dgx, 0, 2, st.grads.drecurrent,
                          static_cast<T*>(nullptr), st.shared_scratch);
      recurrent_gradients(st.tid, st.nt, st.in, st.saved.aux, false, st.dgx, 2, 3, st.grads.drecurrent,
                          static_cast<T*>(nullptr), st.shared_scratch);
    }
  }
};

}  // namespace cpu
}  // namespace fusedrnn
