// The three recurrent cells as policies of the shared time loop (recurrent_driver.h).
//
// Each step handles the thread's share: hidden units [j0, j1) of batch rows [b0, b1). The per-row
// loops are small functions over __restrict pointers so that the compiler vectorises them
// (note: `#pragma omp simd` is avoided on purpose: with the gate structs of cell_math.h as
// locals it makes GCC keep them in memory and give up vectorising). The gate math itself is
// the shared host/device header fusedrnn/cell_math.h.
#pragma once

#include <algorithm>
#include <vector>

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

// One-hot input (ids): adds kernel[id, gate, unit] * dropout_gate[b, id], the input projection
// of x = e_id, to the pre-activations of the panels fed by x, for units [u0, u1) of a group.
template <typename T>
void add_one_hot_projection(const ForwardStep<T>& st, const PanelPlan& plan, int b, int u0, int u1, T* pre) {
  const SequenceInputs<T>& in = st.in;
  constexpr int L = kLanes<T>;
  const long id = in.ids[st.row(b)];
  for (int p = 0; p < plan.panels; ++p) {
    const int g = plan.x_gate[p];
    if (g < 0) continue;
    const T* m = in.dropout_of_gate(g);
    const T scale = m == nullptr ? T(1) : m[static_cast<long>(b) * in.input_size + id];
    const int base = u0 + plan.unit_block[p] * L;
    const T* w = in.kernel + id * in.width() + static_cast<long>(g) * in.units + base;
    T* out = pre + p * L;
    for (int l = 0; l < std::min(L, u1 - base); ++l) out[l] += w[l] * scale;
  }
}

// The input's part of the pre-activations where the step's product leaves it out: one-hot
// input, or inputs projected before the time loop; nothing for a dense input in the product.
template <typename T>
inline void add_outside_inputs(const ForwardStep<T>& st, const PanelPlan& plan, int b, int u0, int u1, T* pre) {
  if (st.in.ids != nullptr) add_one_hot_projection(st, plan, b, u0, u1, pre);
  if (st.gx != nullptr) st.add_projected_inputs(b, u0, pre);
}

// Where the gate math of a group puts its gates: straight into the saved gates g (gate k at
// g[k * H]); or, to stream them past the caches (a whole group: L units), first into `local`
// (gate k at local[k * L]) and then with stream_vector(); or nowhere, when no backward pass
// will read them (inference: the stores into `local` are dead and the compiler drops them).
template <typename T, GateSink kSink>
struct GateStore {
  static constexpr int L = kLanes<T>;
  GateStore(T* saved, int units) : g(saved), H(units) {}

  T* g;
  int H;
  alignas(64) T local[kSink == GateSink::kCache ? 1 : kPanels * L];  // written by the gate math before it is read

  T* at(int gate) { return kSink == GateSink::kCache ? g + gate * H : local + gate * L; }
  void finish(int gates) {
    if constexpr (kSink == GateSink::kStream)
      for (int k = 0; k < gates; ++k) stream_vector(g + k * H, local + k * L);
  }
};

// Runs f(store) with a GateStore for the saved gates g of a group of n units: streamed only
// when the group is whole.
template <typename T, typename F>
inline void with_gate_store(GateSink sink, int n, int H, T* g, F&& f) {
  if (sink == GateSink::kDiscard) {
    GateStore<T, GateSink::kDiscard> s(g, H);
    f(s);
  } else if (sink == GateSink::kStream && n == kLanes<T>) {
    GateStore<T, GateSink::kStream> s(g, H);
    f(s);
  } else {
    GateStore<T, GateSink::kCache> s(g, H);
    f(s);
  }
}

// The share's first row of a step's gate gradients in the (B, T, G*H) buffer dg: the left
// operand of the products with U^T, read in place (its rows are T * G*H apart, gate_grad_ld).
template <typename T>
const T* gate_grad_rows(const BackwardStep<T>& st, const T* dg, int t) {
  return dg + (static_cast<long>(st.share.rows.begin) * st.in.steps + t) * st.in.width();
}
template <typename T>
int gate_grad_ld(const BackwardStep<T>& st) { return st.in.steps * st.in.width(); }

// Back-propagates the recurrent gradients of the step at time t_next, gates [g0, g1), into the
// thread's share of dh (the state entering that step): dh += sum_g (dG_g U_g^T) * mask_g, the
// mask being the recurrent dropout of gate g (if any).
template <typename T>
void backprop_gates(BackwardStep<T>& st, const T* dg, int t_next, int g0, int g1) {
  const int H = st.in.units, b0 = st.share.rows.begin;
  const T* a = gate_grad_rows(st, dg, t_next);
  const bool per_gate = st.in.recurrent_dropout != nullptr;
  for (int g = g0; g < (per_gate ? g1 : g0 + 1); ++g) {
    const T* m = st.in.recurrent_dropout_of_gate(g);
    const int k0 = per_gate ? g * H : g0 * H, k1 = per_gate ? k0 + H : g1 * H;
    st.weights_t->multiply(st.share.rows.size(), &a, gate_grad_ld(st), false, k0, k1, st.share.units.begin,
                           st.share.units.end,
                           [&](int r, int u0, int u1, const T* tile) {
                             const long b = b0 + r;
                             T* dh = st.dh + b * H;
                             if (m == nullptr)
                               for (int j = u0; j < u1; ++j) dh[j] += tile[j - u0];
                             else
                               for (int j = u0; j < u1; ++j) dh[j] += tile[j - u0] * m[b * H + j];
                           });
  }
}

// ---------------------------------------------------------------------------------------------
// SimpleRNN. Saved gates: h itself (the activation's output).
struct RnnCell {
  math::Activation activation;

  bool separate_recurrent_grads() const { return false; }
  bool claims_units() const { return true; }

  std::vector<PanelPlan> forward_plans() const { return {units_plan(0, 0)}; }

  // pre: pre-activations of n consecutive units; bias, g (saved) and hn at the first of them.
  // One loop per activation: GCC does not vectorise a loop that divides (tanh) under a condition.
  template <typename T>
  static void forward_units(math::Activation act, int n, const T* __restrict pre, const T* __restrict bias,
                            T* __restrict g, T* __restrict hn) {
    if (act == math::Activation::kTanh) forward_units_with<math::Activation::kTanh>(n, pre, bias, g, hn);
    else forward_units_with<math::Activation::kRelu>(n, pre, bias, g, hn);
  }

  template <math::Activation kAct, typename T>
  static void forward_units_with(int n, const T* __restrict pre, const T* __restrict bias, T* __restrict g,
                                 T* __restrict hn) {
    for (int l = 0; l < n; ++l) {
      const T h = math::activate(kAct, pre[l] + bias[l]);
      g[l] = h;
      hn[l] = h;
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
    const PanelMatrix<T>& w = st.weights[0];
    st.product(w, [&](int b, int u0, int u1, T* pre) {
      if (st.in.active(b, st.t)) {
        add_outside_inputs(st, w.plan(), b, u0, u1, pre);
        forward_units(activation, u1 - u0, pre, st.in.bias + u0, st.gates(b) + u0, st.h_new(b) + u0);
      } else {
        rows::carry(u0, u1, st.in.units, 1, st.h_prev(b), st.gates(b), st.h_new(b));
      }
    });
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const { backprop_gates(st, st.dgx, t_next, 0, 1); }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units, j0 = st.share.units.begin, j1 = st.share.units.end;
    for (int b = st.share.rows.begin; b < st.share.rows.end; ++b) {
      T* dh = st.dh + b * H;
      if (st.in.active(b, st.t)) backward_row(activation, j0, j1, st.gates(b), st.d_output(b), dh, st.dgx_row(b));
      else rows::pass_through(j0, j1, H, 1, st.d_output(b), st.dgx_row(b), dh);
    }
  }

  template <typename T>
  void parameter_grads(const BackwardStep<T>& st, Range r, Range c, const WeightGrads<T>& out) const {
    kernel_gradients(r, c, st.in, st.dgx, out.dkernel, out.dbias, out.gate_major, st.grad_scratch);
    recurrent_gradients(r, c, st.in, st.saved.hprev, true, st.dgx, 0, 1, out.drecurrent, static_cast<T*>(nullptr),
                        out.gate_major, st.grad_scratch);
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM. Saved gates: i, f, c~ (g), o after their activations; aux: the cell state.
struct LstmCell {
  bool separate_recurrent_grads() const { return false; }
  bool claims_units() const { return true; }

  // Cell state after the previous step (c0 at the first step) for row b.
  template <typename Step>
  static auto c_prev(const Step& st, int b) {
    const int H = st.in.units;
    return st.s == 0 ? st.in.c0 + b * H : st.saved.aux + st.saved.row(b, st.in.time_of_step(st.s - 1)) * H;
  }

  std::vector<PanelPlan> forward_plans() const {
    return {{PanelKind::kAll, 4, {0, 1, 2, 3}, {0, 1, 2, 3}, {0, 0, 0, 0}}};
  }

  // pre: the i, f, c, o pre-activations of n units, L apart; bias H apart per gate; `gates`
  // takes the activated gates (GateStore); every pointer at the first of the units.
  template <typename T, typename Store>
  static void forward_units(int n, int H, const T* __restrict pre, const T* __restrict bias, const T* __restrict cp,
                            Store& gates, T* __restrict c, T* __restrict hn) {
    constexpr int L = kLanes<T>;
    T* __restrict gi = gates.at(0);
    T* __restrict gf = gates.at(1);
    T* __restrict gc = gates.at(2);
    T* __restrict go = gates.at(3);
    for (int l = 0; l < n; ++l) {
      const math::LstmGates<T> a = math::lstm_activate(pre[l] + bias[l], pre[L + l] + bias[H + l],
                                                       pre[2 * L + l] + bias[2 * H + l], pre[3 * L + l] + bias[3 * H + l]);
      gi[l] = a.i;
      gf[l] = a.f;
      gc[l] = a.g;
      go[l] = a.o;
      const T cn = math::lstm_cell_state(a, cp[l]);
      c[l] = cn;
      hn[l] = math::lstm_hidden(a, cn);
    }
    gates.finish(4);
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
    const int H = st.in.units;
    const bool last = st.s + 1 == st.in.steps;
    const PanelMatrix<T>& w = st.weights[0];
    st.product(w, [&](int b, int u0, int u1, T* pre) {
      const T* cp = c_prev(st, b);
      T* c = st.aux(b);
      if (st.in.active(b, st.t)) {
        add_outside_inputs(st, w.plan(), b, u0, u1, pre);
        with_gate_store(st.gate_sink, u1 - u0, H, st.gates(b) + u0, [&](auto& gates) {
          forward_units(u1 - u0, H, pre, st.in.bias + u0, cp + u0, gates, c + u0, st.h_new(b) + u0);
        });
      } else {
        rows::carry(u0, u1, H, 4, st.h_prev(b), st.gates(b), st.h_new(b));
        for (int j = u0; j < u1; ++j) c[j] = cp[j];
      }
      if (last)
        for (int j = u0; j < u1; ++j) st.out.c_last[b * H + j] = c[j];
    });
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const { backprop_gates(st, st.dgx, t_next, 0, 4); }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units, j0 = st.share.units.begin, j1 = st.share.units.end;
    for (int b = st.share.rows.begin; b < st.share.rows.end; ++b) {
      T* dh = st.dh + b * H;
      if (st.in.active(b, st.t))
        backward_row(j0, j1, H, st.gates(b), st.saved.aux + st.row(b) * H, c_prev(st, b), st.d_output(b), dh,
                     st.dc + b * H, st.dgx_row(b));
      else
        rows::pass_through(j0, j1, H, 4, st.d_output(b), st.dgx_row(b), dh);  // dc passes unchanged
    }
  }

  template <typename T>
  void parameter_grads(const BackwardStep<T>& st, Range r, Range c, const WeightGrads<T>& out) const {
    kernel_gradients(r, c, st.in, st.dgx, out.dkernel, out.dbias, out.gate_major, st.grad_scratch);
    recurrent_gradients(r, c, st.in, st.saved.hprev, true, st.dgx, 0, 4, out.drecurrent, static_cast<T*>(nullptr),
                        out.gate_major, st.grad_scratch);
  }
};

// ---------------------------------------------------------------------------------------------
// GRU. Saved gates: z, r, hh after their activations; aux: the candidate's recurrent term
// h_prev U_h + b_h (reset_after) or r * h_prev (reset before, with recurrent dropout applied).
struct GruCell {
  bool reset_after;

  bool separate_recurrent_grads() const { return reset_after; }
  // reset_before has a barrier inside its step (the second product needs r of every unit).
  bool claims_units() const { return reset_after; }

  // Panel layouts: reset_after packs the candidate's input and recurrent weights in one panel
  // whose two sums arrive apart (tile slots 2 and 3); reset_before multiplies (r * h_prev) by U_h
  // in a second product, once r is known.
  std::vector<PanelPlan> forward_plans() const {
    if (reset_after) return {{PanelKind::kGruAfter, 3, {0, 1, 2, -1}, {0, 1, 2, -1}, {0, 0, 0, 0}, true}};
    return {{PanelKind::kGruBefore, 3, {0, 1, 2, -1}, {0, 1, -1, -1}, {0, 0, 0, 0}}, units_plan(-1, 2)};
  }

  // reset_after=True: z, r, hh and h of n units from pre (z, r, x_h, h_h pre-activations, L
  // apart, without biases); bi, br the input and recurrent biases; `gates` (GateStore) and rh
  // saved.
  template <typename T, typename Store>
  static void forward_units_after(int n, int H, const T* __restrict pre, const T* __restrict bi,
                                  const T* __restrict br, const T* __restrict hp, Store& gates, T* __restrict rh,
                                  T* __restrict hn) {
    constexpr int L = kLanes<T>;
    T* __restrict gz = gates.at(0);
    T* __restrict gr = gates.at(1);
    T* __restrict gh = gates.at(2);
    for (int l = 0; l < n; ++l) {
      const T z = math::sigmoid((pre[l] + bi[l]) + br[l]);
      const T r = math::sigmoid((pre[L + l] + bi[H + l]) + br[H + l]);
      const T rec = pre[3 * L + l] + br[2 * H + l];
      const T hh = math::tanh_((pre[2 * L + l] + bi[2 * H + l]) + r * rec);
      rh[l] = rec;
      gz[l] = z;
      gr[l] = r;
      gh[l] = hh;
      hn[l] = math::gru_hidden(z, hh, hp[l]);
    }
    gates.finish(3);
  }

  // reset_after=False, first product: z and r, the candidate's input term x_h + b_h (kept in
  // g's candidate slot until the second product), and r * h_prev (hd: after recurrent dropout).
  template <typename T>
  static void gates_units_before(int n, int H, const T* __restrict pre, const T* __restrict bias,
                                 const T* __restrict hd, T* __restrict g, T* __restrict rh) {
    constexpr int L = kLanes<T>;
    for (int l = 0; l < n; ++l) {
      const T z = math::sigmoid(pre[l] + bias[l]);
      const T r = math::sigmoid(pre[L + l] + bias[H + l]);
      g[l] = z;
      g[H + l] = r;
      g[2 * H + l] = pre[2 * L + l] + bias[2 * H + l];
      rh[l] = r * hd[l];
    }
  }

  // reset_after=False, second product: hh = tanh(x_h + b_h + (r * h_prev) U_h) and h, with pre
  // holding (r * h_prev) U_h of n consecutive units.
  template <typename T>
  static void candidate_units_before(int n, int H, const T* __restrict pre, const T* __restrict hp, T* __restrict g,
                                     T* __restrict hn) {
    for (int l = 0; l < n; ++l) {
      const T hh = math::tanh_(g[2 * H + l] + pre[l]);
      g[2 * H + l] = hh;
      hn[l] = math::gru_hidden(g[l], hh, hp[l]);
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
    const int H = st.in.units;
    const PanelMatrix<T>& w = st.weights[0];
    if (reset_after) {
      st.product(w, [&](int b, int u0, int u1, T* pre) {
        T* rh = st.aux(b);
        if (st.in.active(b, st.t)) {
          add_outside_inputs(st, w.plan(), b, u0, u1, pre);
          with_gate_store(st.gate_sink, u1 - u0, H, st.gates(b) + u0, [&](auto& gates) {
            forward_units_after(u1 - u0, H, pre, st.in.bias + u0, st.in.recurrent_bias + u0, st.h_prev(b) + u0,
                                gates, rh + u0, st.h_new(b) + u0);
          });
        } else {
          rows::carry(u0, u1, H, 3, st.h_prev(b), st.gates(b), st.h_new(b));
          for (int j = u0; j < u1; ++j) rh[j] = T(0);
        }
      });
      return;
    }
    st.product(w, [&](int b, int u0, int u1, T* pre) {
      T* rh = st.aux(b);
      if (st.in.active(b, st.t)) {
        add_outside_inputs(st, w.plan(), b, u0, u1, pre);
        gates_units_before(u1 - u0, H, pre, st.in.bias + u0, st.h_in(2, b) + u0, st.gates(b) + u0, rh + u0);
      } else {
        rows::carry(u0, u1, H, 3, st.h_prev(b), st.gates(b), st.h_new(b));
        for (int j = u0; j < u1; ++j) rh[j] = T(0);
      }
    });
    // (r * h_prev) U_h needs r of every unit of a row.
    step_barrier(st);
    const int b0 = st.share.rows.begin;
    for (int b = b0; b < st.share.rows.end; ++b) {
      const T* rh = st.aux(b);
      std::copy(rh, rh + H, st.scratch + static_cast<long>(b - b0) * H);
    }
    st.product(st.weights[1], [&](int b, int u0, int u1, T* pre) {
      if (st.in.active(b, st.t))
        candidate_units_before(u1 - u0, H, pre, st.h_prev(b) + u0, st.gates(b) + u0, st.h_new(b) + u0);
    }, st.scratch, H);
  }

  template <typename T>
  void backprop_state(BackwardStep<T>& st, int t_next) const {
    if (reset_after) backprop_gates(st, st.dgrec, t_next, 0, 3);
    else backprop_gates(st, st.dgx, t_next, 0, 2);  // the candidate's part goes in mid-step
  }

  template <typename T>
  void backward_step(BackwardStep<T>& st) const {
    const int H = st.in.units;
    const int j0 = st.share.units.begin, j1 = st.share.units.end, b0 = st.share.rows.begin;
    for (int b = st.share.rows.begin; b < st.share.rows.end; ++b) {
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
    step_barrier(st);
    const T* a = gate_grad_rows(st, st.dgx, st.t);
    const T* rm = st.in.recurrent_dropout_of_gate(2);
    st.weights_t->multiply(st.share.rows.size(), &a, gate_grad_ld(st), false, 2 * H, 3 * H, j0, j1,
                           [&](int r, int u0, int u1, const T* d_rh) {
                             const int b = b0 + r;
                             if (!st.in.active(b, st.t)) return;
                             reset_row_before(u0, u1, H, st.gates(b), st.h_prev(b), rm ? rm + b * H : nullptr, d_rh,
                                              st.dgx_row(b), st.dh + b * H);
                           });
  }

  template <typename T>
  void parameter_grads(const BackwardStep<T>& st, Range r, Range c, const WeightGrads<T>& out) const {
    kernel_gradients(r, c, st.in, st.dgx, out.dkernel, out.dbias, out.gate_major, st.grad_scratch);
    if (reset_after) {
      recurrent_gradients(r, c, st.in, st.saved.hprev, true, st.dgrec, 0, 3, out.drecurrent, out.drecurrent_bias,
                          out.gate_major, st.grad_scratch);
    } else {
      recurrent_gradients(r, c, st.in, st.saved.hprev, true, st.dgx, 0, 2, out.drecurrent, static_cast<T*>(nullptr),
                          out.gate_major, st.grad_scratch);
      recurrent_gradients(r, c, st.in, st.saved.aux, false, st.dgx, 2, 3, out.drecurrent, static_cast<T*>(nullptr),
                          out.gate_major, st.grad_scratch);
    }
  }
};

}  // namespace cpu
}  // namespace fusedrnn
