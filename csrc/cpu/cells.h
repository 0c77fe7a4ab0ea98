// The three recurrent cells as policies of the shared time loop (recurrent_driver.h). Each
// step function handles the thread's own hidden units `own` of every batch row; the gate math
// itself comes from the shared host/device header fusedrnn/cell_math.h.
#pragma once

#include "cpu/recurrent_driver.h"

namespace fusedrnn {
namespace cpu {

// Back-propagates the recurrent gradients of the step at time t_next, gates [g0, g1), into
// dh[:, own] (the state entering that step).
template <typename T>
void backprop_gates(BackwardStep<T>& st, const T* dg, int t_next, int g0, int g1) {
  recurrent_backprop_share(st.in, dg + static_cast<long>(t_next) * st.in.width(),
                           st.in.steps * st.in.width(), st.own, g0, g1, st.dh, st.scratch);
}

// ---------------------------------------------------------------------------------------------
struct RnnCell {
  math::Activation activation;

  bool separate_recurrent_grads() const { return false; }

  template <typename T>
  void forward_step(ForwardStep<T>& st) const {
    const int H = st.in.units;
    recurrent_matmul_share(st.in, st.h, st.own, 0, 1, st.saved.gates + static_cast<long>(st.t) * H,
                           st.in.steps * H);
    for (int b = 0; b < st.in.batch; ++b) {
      T* g = st.gates(b);
      const T* hp = st.h_prev(b);
      T* hn = st.h_new(b);
      if (st.in.active(b, st.t)) {
        for (int j = st.own.begin; j < st.own.end; ++j) hn[j] = g[j] = math::activate(activation, g[j]);
      } else {
        for (int j = st.own.begin; j < st.own.end; ++j) { g[j] = T(0); hn[j] = hp[j]; }
      }
    }
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const { backprop_gates(st, st.dgx, t_next, 0, 1); }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units;
    for (int b = 0; b < st.in.batch; ++b) {
      const T* g = st.gates(b);
      const T* dout = st.d_output(b);
      T* dg = st.dgx_row(b);
      T* dh = st.dh + b * H;
      const bool active = st.in.active(b, st.t);
      for (int j = st.own.begin; j < st.own.end; ++j) {
        const T d = dh[j] + (dout ? dout[j] : T(0));
        dg[j] = active ? math::rnn_backward(activation, g[j], d) : T(0);
        dh[j] = active ? T(0) : d;
      }
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
  void forward_step(ForwardStep<T>& st) const {
    const int H = st.in.units, GH = st.in.width();
    recurrent_matmul_share(st.in, st.h, st.own, 0, 4, st.saved.gates + static_cast<long>(st.t) * GH,
                           st.in.steps * GH);
    const bool last = st.s + 1 == st.in.steps;
    for (int b = 0; b < st.in.batch; ++b) {
      T* g = st.gates(b);
      const T* hp = st.h_prev(b);
      const T* cp = c_prev(st, b);
      T* c = st.saved.aux + st.row(b) * H;
      T* hn = st.h_new(b);
      if (st.in.active(b, st.t)) {
        for (int j = st.own.begin; j < st.own.end; ++j) {
          const math::LstmGates<T> a = math::lstm_activate(g[j], g[H + j], g[2 * H + j], g[3 * H + j]);
          g[j] = a.i; g[H + j] = a.f; g[2 * H + j] = a.g; g[3 * H + j] = a.o;
          c[j] = math::lstm_cell_state(a, cp[j]);
          hn[j] = math::lstm_hidden(a, c[j]);
        }
      } else {
        for (int j = st.own.begin; j < st.own.end; ++j) {
          g[j] = g[H + j] = g[2 * H + j] = g[3 * H + j] = T(0);
          c[j] = cp[j];
          hn[j] = hp[j];
        }
      }
      if (last)
        for (int j = st.own.begin; j < st.own.end; ++j) st.out.c_last[b * H + j] = c[j];
    }
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const { backprop_gates(st, st.dgx, t_next, 0, 4); }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units;
    for (int b = 0; b < st.in.batch; ++b) {
      const T* g = st.gates(b);
      const T* dout = st.d_output(b);
      T* dg = st.dgx_row(b);
      T* dh = st.dh + b * H;
      T* dc = st.dc + b * H;
      if (st.in.active(b, st.t)) {
        const T* c = st.saved.aux + st.row(b) * H;
        const T* cp = c_prev(st, b);
        for (int j = st.own.begin; j < st.own.end; ++j) {
          const math::LstmGates<T> a{g[j], g[H + j], g[2 * H + j], g[3 * H + j]};
          const math::LstmGrads<T> d = math::lstm_backward(a, c[j], cp[j], dh[j] + (dout ? dout[j] : T(0)), dc[j]);
          dg[j] = d.dzi; dg[H + j] = d.dzf; dg[2 * H + j] = d.dzc; dg[3 * H + j] = d.dzo;
          dc[j] = d.dc_prev;
          dh[j] = T(0);
        }
      } else {
        for (int j = st.own.begin; j < st.own.end; ++j) {
          dg[j] = dg[H + j] = dg[2 * H + j] = dg[3 * H + j] = T(0);
          dh[j] += dout ? dout[j] : T(0);
        }
      }
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
struct GruCell {
  bool reset_after;

  bool separate_recurrent_grads() const { return reset_after; }

  template <typename T>
  void forward_step(ForwardStep<T>& st) const {
    const int H = st.in.units, GH = st.in.width(), S = st.in.steps, B = st.in.batch;
    const Range own = st.own;
    T* gates_t = st.saved.gates + static_cast<long>(st.t) * GH;
    T* aux_t = st.saved.aux + static_cast<long>(st.t) * H;
    // z and r: recurrent projections accumulate onto the input projections.
    recurrent_matmul_share(st.in, st.h, own, 0, 2, gates_t, S * GH);
    if (reset_after) {
      // Candidate's recurrent term kept apart: hh = tanh(xh + r * (h U_h + b_h)).
      if (own.size() > 0)
        gemm(false, false, B, own.size(), H, T(1), st.h.gate(2), st.h.ld(), st.in.recurrent + 2 * H + own.begin,
             GH, T(0), aux_t + own.begin, S * H);
      const T* br = st.in.recurrent_bias;
      for (int b = 0; b < B; ++b) {
        T* g = st.gates(b);
        T* rh = st.saved.aux + st.row(b) * H;
        const T* hp = st.h_prev(b);
        T* hn = st.h_new(b);
        if (st.in.active(b, st.t)) {
          for (int j = own.begin; j < own.end; ++j) {
            const T z = math::sigmoid(g[j] + br[j]);
            const T r = math::sigmoid(g[H + j] + br[H + j]);
            rh[j] += br[2 * H + j];
            const T hh = math::tanh_(g[2 * H + j] + r * rh[j]);
            g[j] = z; g[H + j] = r; g[2 * H + j] = hh;
            hn[j] = math::gru_hidden(z, hh, hp[j]);
          }
        } else {
          for (int j = own.begin; j < own.end; ++j) {
            g[j] = g[H + j] = g[2 * H + j] = rh[j] = T(0);
            hn[j] = hp[j];
          }
        }
      }
      return;
    }
    // reset_after=False: hh = tanh(xh + (r * h_prev) U_h) needs r of every unit first.
    const T* hin_h = st.h.gate(2);
    const int ld_h = st.h.ld();
    for (int b = 0; b < B; ++b) {
      T* g = st.gates(b);
      T* rh = st.saved.aux + st.row(b) * H;
      const T* hd = hin_h + static_cast<long>(b) * ld_h;
      const bool active = st.in.active(b, st.t);
      for (int j = own.begin; j < own.end; ++j) {
        const T z = math::sigmoid(g[j]);
        const T r = math::sigmoid(g[H + j]);
        g[j] = active ? z : T(0);
        g[H + j] = active ? r : T(0);
        rh[j] = active ? r * hd[j] : T(0);
      }
    }
#pragma omp barrier
    if (own.size() > 0)
      gemm(false, false, B, own.size(), H, T(1), aux_t, S * H, st.in.recurrent + 2 * H + own.begin, GH, T(1),
           gates_t + 2 * H + own.begin, S * GH);
    for (int b = 0; b < B; ++b) {
      T* g = st.gates(b);
      const T* hp = st.h_prev(b);
      T* hn = st.h_new(b);
      if (st.in.active(b, st.t)) {
        for (int j = own.begin; j < own.end; ++j) {
          const T hh = math::tanh_(g[2 * H + j]);
          g[2 * H + j] = hh;
          hn[j] = math::gru_hidden(g[j], hh, hp[j]);
        }
      } else {
        for (int j = own.begin; j < own.end; ++j) { g[2 * H + j] = T(0); hn[j] = hp[j]; }
      }
    }
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const {
    if (reset_after) backprop_gates(st, st.dgrec, t_next, 0, 3);
    else backprop_gates(st, st.dgx, t_next, 0, 2);  // the candidate's part went in mid-step
  }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units, GH = st.in.width(), S = st.in.steps, B = st.in.batch;
    const Range own = st.own;
    for (int b = 0; b < B; ++b) {
      const T* g = st.gates(b);
      const T* hp = st.h_prev(b);
      const T* dout = st.d_output(b);
      const T* rh = st.saved.aux + st.row(b) * H;
      T* dgx = st.dgx_row(b);
      T* dgrec = st.dgrec_row(b);
      T* dh = st.dh + b * H;
      if (st.in.active(b, st.t)) {
        for (int j = own.begin; j < own.end; ++j) {
          const math::GruGrads<T> d = math::gru_backward(g[j], g[2 * H + j], hp[j], dh[j] + (dout ? dout[j] : T(0)));
          dgx[j] = d.dzz;
          dgx[2 * H + j] = d.dzh;
          dh[j] = d.dh_prev;
          if (reset_after) {
            const T r = g[H + j];
            dgx[H + j] = math::sigmoid_backward(r, d.dzh * rh[j]);
            dgrec[j] = d.dzz;
            dgrec[H + j] = dgx[H + j];
            dgrec[2 * H + j] = d.dzh * r;
          }
        }
      } else {
        for (int j = own.begin; j < own.end; ++j) {
          dgx[j] = dgx[H + j] = dgx[2 * H + j] = T(0);
          if (reset_after) dgrec[j] = dgrec[H + j] = dgrec[2 * H + j] = T(0);
          dh[j] += dout ? dout[j] : T(0);
        }
      }
    }
    if (reset_after) return;
    // d(r * h_prev) = dhh_pre U_h^T needs every unit's dhh_pre.
#pragma omp barrier
    const int n = own.size();
    if (n > 0)
      gemm(false, true, B, n, H, T(1), st.dgx + static_cast<long>(st.t) * GH + 2 * H, S * GH,
           st.in.recurrent + static_cast<long>(own.begin) * GH + 2 * H, GH, T(0), st.scratch, n);
    const T* rm = st.in.recurrent_dropout_of_gate(2);
    for (int b = 0; b < B; ++b) {
      if (!st.in.active(b, st.t)) continue;
      const T* g = st.gates(b);
      const T* hp = st.h_prev(b);
      T* dgx = st.dgx_row(b);
      T* dh = st.dh + b * H;
      for (int j = own.begin; j < own.end; ++j) {
        const T m = rm ? rm[b * H + j] : T(1);
        const T d_rh = st.scratch[b * n + (j - own.begin)];
        const T r = g[H + j];
        dgx[H + j] = math::sigmoid_backward(r, d_rh * hp[j] * m);
        dh[j] += d_rh * r * m;
      }
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
