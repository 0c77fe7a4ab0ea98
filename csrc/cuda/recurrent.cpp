// Orchestration of the CUDA recurrent ops: cuBLAS GEMMs and the fused step kernels, enqueued
// on the caller's stream (see recurrent.h for the structure of a step).
#include "cuda/recurrent.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "cuda/blas.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/workspace.h"

namespace fusedrnn {
namespace cuda {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("fusedrnn CUDA: " + what);
}

template <typename T>
void check_problem(const CellConfig& cfg, const Problem<T>& p) {
  require(p.batch >= 1 && p.steps >= 1 && p.input_size >= 1 && p.units >= 1, "every dimension must be at least 1");
  require(p.gates == cfg.gates(), "gates does not match the cell");
  require(static_cast<long>(p.batch) * p.steps <= INT_MAX && static_cast<long>(p.width()) <= INT_MAX / 2,
          "problem too large for 32-bit cuBLAS dimensions");
  require(p.x && p.h0 && p.kernel && p.recurrent && p.bias, "missing x, h0, kernel, recurrent_kernel or bias");
  require(cfg.kind != Cell::kLstm || p.c0, "missing c0");
  require(!(cfg.kind == Cell::kGru && cfg.reset_after) || p.recurrent_bias, "missing the GRU's recurrent bias");
  require(!p.dropout || p.n_dropout == 1 || p.n_dropout == p.gates, "dropout_mask: expected 1 or gates masks");
  require(!p.recurrent_dropout || p.n_recurrent_dropout == 1 || p.n_recurrent_dropout == p.gates,
          "recurrent_dropout_mask: expected 1 or gates masks");
}

// ---- workspace plans ------------------------------------------------------------------------

template <typename T>
struct ForwardWork {
  int* first = nullptr;    // (B) first unmasked step
  T* masked_x = nullptr;   // (B, T, I): x times one dropout mask
  T* dropped = nullptr;    // 2 x (n, B, H): dropped-out h_{s-1} and h_s
  T* rec = nullptr;        // (B, G*H): this step's h_{s-1} U
};

template <typename T>
ForwardWork<T> plan_forward(const CellConfig& cfg, const Problem<T>& p, Carver& c) {
  const long B = p.batch, S = p.steps, I = p.input_size, H = p.units;
  (void)cfg;
  ForwardWork<T> w;
  if (p.mask) w.first = c.take<int>(B);
  if (p.dropout) w.masked_x = c.take<T>(B * S * I);
  if (p.recurrent_dropout) w.dropped = c.take<T>(2 * p.n_recurrent_dropout * B * H);
  w.rec = c.take<T>(B * p.width());
  return w;
}

template <typename T>
struct BackwardWork {
  int* first = nullptr;
  T* dgx = nullptr;        // (B, T, G*H)
  T* dgrec = nullptr;      // (B, T, G*H), GRU reset_after; else aliases dgx
  T* dh = nullptr;         // (B, H)
  T* dc = nullptr;         // (B, H), LSTM
  T* R = nullptr;          // (n_R, B, H): the next step's gate gradients times U^T
  T* D = nullptr;          // (B, H), GRU reset_after=False: dgx_h U_h^T
  T* ones = nullptr;       // (B*T): for the bias gradients
  T* scratch = nullptr;    // (B, T, max(I, H)): dropped-out GEMM operands
  T* dx_parts = nullptr;   // (G, B, T, I): per-gate input gradients with G dropout masks
};

// Number of R slabs: one unless each gate has its own recurrent dropout mask.
template <typename T>
int r_slabs(const Problem<T>& p) {
  return p.recurrent_dropout && p.n_recurrent_dropout > 1 ? p.n_recurrent_dropout : 1;
}

template <typename T>
BackwardWork<T> plan_backward(const CellConfig& cfg, const Problem<T>& p, Carver& c) {
  const long B = p.batch, S = p.steps, I = p.input_size, H = p.units, GH = p.width();
  const bool gru_after = cfg.kind == Cell::kGru && cfg.reset_after;
  BackwardWork<T> w;
  if (p.mask) w.first = c.take<int>(B);
  w.dgx = c.take<T>(B * S * GH);
  w.dgrec = gru_after ? c.take<T>(B * S * GH) : w.dgx;
  w.dh = c.take<T>(B * H);
  if (cfg.kind == Cell::kLstm) w.dc = c.take<T>(B * H);
  w.R = c.take<T>(r_slabs(p) * B * H);
  if (cfg.kind == Cell::kGru && !cfg.reset_after) w.D = c.take<T>(B * H);
  w.ones = c.take<T>(B * S);
  if (p.dropout || p.recurrent_dropout) w.scratch = c.take<T>(B * S * std::max(I, H));
  if (p.dropout && p.n_dropout > 1) w.dx_parts = c.take<T>(p.n_dropout * B * S * I);
  return w;
}

void poison(void* p, size_t bytes, cudaStream_t stream) {
  // All-ones bytes are a NaN in float and in double.
  if (p != nullptr && bytes > 0) FUSEDRNN_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, bytes, stream));
}

// Gate columns [g0, g1) of the dropout mask m: one mask for all gates, or one per gate.
inline int mask_gate_begin(int n_masks, int m) { return n_masks == 1 ? 0 : m; }
inline int mask_gate_end(int n_masks, int m, int gates) { return n_masks == 1 ? gates : m + 1; }

// ---- forward pieces --------------------------------------------------------------------------

// gates[(b, t), :] = (x[b, t] * dropout_g[b]) W_g + bias for every gate.
template <typename T>
void input_projection(const Blas& blas, const Problem<T>& p, T* gates, T* masked_x) {
  const int BS = p.batch * p.steps, I = p.input_size, H = p.units, GH = p.width();
  launch_broadcast_row(gates, BS, GH, GH, p.bias, blas.stream());
  if (p.dropout == nullptr) {
    blas.gemm<T>(false, false, BS, GH, I, T(1), p.x, I, p.kernel, GH, T(1), gates, GH);
    return;
  }
  for (int m = 0; m < p.n_dropout; ++m) {
    launch_scale_by_batch(masked_x, p.x, p.dropout + static_cast<long>(m) * p.batch * I, p.batch, p.steps, I,
                          blas.stream());
    const int g0 = mask_gate_begin(p.n_dropout, m), g1 = mask_gate_end(p.n_dropout, m, p.gates);
    blas.gemm<T>(false, false, BS, (g1 - g0) * H, I, T(1), masked_x, I, p.kernel + g0 * H, GH, T(1),
                 gates + g0 * H, GH);
  }
}

// The left operand of gate g's recurrent matmul at step s: h_{s-1} itself (row t of hprev) or
// its dropped-out copy.
template <typename T>
struct Operand {
  const T* ptr;
  long ld;
};

template <typename T>
Operand<T> recurrent_operand(const Problem<T>& p, const T* hprev, const T* dropped, int s, int g) {
  const long B = p.batch, H = p.units, S = p.steps;
  if (p.recurrent_dropout == nullptr) return {hprev + p.time_of_step(s) * H, S * H};
  const long slab = p.n_recurrent_dropout * B * H;
  return {dropped + (s % 2) * slab + (p.n_recurrent_dropout == 1 ? 0 : g) * B * H, H};
}

// rec[:, g*H:(g+1)*H] = operand(g) U_g for g in [g0, g1).
template <typename T>
void recurrent_matmul(const Blas& blas, const Problem<T>& p, const T* hprev, const T* dropped, int s, int g0,
                      int g1, T* rec) {
  const int B = p.batch, H = p.units, GH = p.width();
  const Operand<T> h = recurrent_operand(p, hprev, dropped, s, g0);
  if (p.recurrent_dropout == nullptr || p.n_recurrent_dropout == 1) {
    blas.gemm<T>(false, false, B, (g1 - g0) * H, H, T(1), h.ptr, h.ld, p.recurrent + g0 * H, GH, T(0),
                 rec + g0 * H, GH);
  } else {
    blas.gemm_batched<T>(false, false, B, H, H, T(1), h.ptr, h.ld, static_cast<long>(B) * H, p.recurrent + g0 * H,
                         GH, H, T(0), rec + g0 * H, GH, H, g1 - g0);
  }
}

// ---- backward pieces -------------------------------------------------------------------------

// R = dg[(:, t_next), gates [0, g1)] U^T per R slab: the recurrent gradient reaching h_{s}.
template <typename T>
void backprop_recurrent(const Blas& blas, const Problem<T>& p, const T* dg, int t_next, int g1, T* R) {
  const int B = p.batch, H = p.units, GH = p.width();
  const long S = p.steps;
  const T* rows = dg + t_next * static_cast<long>(GH);
  if (r_slabs(p) == 1) {
    blas.gemm<T>(false, true, B, H, g1 * H, T(1), rows, S * GH, p.recurrent, GH, T(0), R, H);
  } else {
    blas.gemm_batched<T>(false, true, B, H, H, T(1), rows, S * GH, H, p.recurrent, GH, H, T(0), R, H,
                         static_cast<long>(B) * H, g1);
  }
}

// d_recurrent[:, gates [g0, g1)] = (left * recurrent_dropout_g)^T dg_g over all (b, t); with
// apply_dropout false the left operand already holds its mask.
template <typename T>
void recurrent_weight_grads(const Blas& blas, const Problem<T>& p, const T* left, bool apply_dropout, const T* dg,
                            int g0, int g1, T* drecurrent, T* scratch) {
  const int B = p.batch, S = p.steps, BS = B * S, H = p.units, GH = p.width();
  if (!apply_dropout || p.recurrent_dropout == nullptr) {
    blas.gemm<T>(true, false, H, (g1 - g0) * H, BS, T(1), left, H, dg + g0 * H, GH, T(0), drecurrent + g0 * H, GH);
  } else if (p.n_recurrent_dropout == 1) {
    launch_scale_by_batch(scratch, left, p.recurrent_dropout, B, S, H, blas.stream());
    blas.gemm<T>(true, false, H, (g1 - g0) * H, BS, T(1), scratch, H, dg + g0 * H, GH, T(0), drecurrent + g0 * H,
                 GH);
  } else {
    for (int g = g0; g < g1; ++g) {
      launch_scale_by_batch(scratch, left, p.recurrent_dropout + static_cast<long>(g) * B * H, B, S, H,
                            blas.stream());
      blas.gemm<T>(true, false, H, H, BS, T(1), scratch, H, dg + g * H, GH, T(0), drecurrent + g * H, GH);
    }
  }
}

// dx, d_kernel and d_bias from the input-side gate gradients of all steps.
template <typename T>
void input_grads(const Blas& blas, const Problem<T>& p, const T* dgx, const BackwardWork<T>& w, const Grads<T>& g) {
  const int B = p.batch, S = p.steps, BS = B * S, I = p.input_size, H = p.units, GH = p.width();
  const cudaStream_t st = blas.stream();
  blas.column_sums<T>(BS, GH, dgx, GH, w.ones, g.dbias);
  if (p.dropout == nullptr) {
    blas.gemm<T>(true, false, I, GH, BS, T(1), p.x, I, dgx, GH, T(0), g.dkernel, GH);
    blas.gemm<T>(false, true, BS, I, GH, T(1), dgx, GH, p.kernel, GH, T(0), g.dx, I);
    return;
  }
  for (int m = 0; m < p.n_dropout; ++m) {
    launch_scale_by_batch(w.scratch, p.x, p.dropout + static_cast<long>(m) * B * I, B, S, I, st);
    const int g0 = mask_gate_begin(p.n_dropout, m), g1 = mask_gate_end(p.n_dropout, m, p.gates);
    blas.gemm<T>(true, false, I, (g1 - g0) * H, BS, T(1), w.scratch, I, dgx + g0 * H, GH, T(0), g.dkernel + g0 * H,
                 GH);
  }
  if (p.n_dropout == 1) {
    blas.gemm<T>(false, true, BS, I, GH, T(1), dgx, GH, p.kernel, GH, T(0), g.dx, I);
    launch_scale_by_batch(g.dx, g.dx, p.dropout, B, S, I, st);
  } else {
    blas.gemm_batched<T>(false, true, BS, I, H, T(1), dgx, GH, H, p.kernel, GH, H, T(0), w.dx_parts, I,
                         static_cast<long>(BS) * I, p.gates);
    launch_masked_sum(g.dx, w.dx_parts, p.dropout, p.gates, B, S, I, st);
  }
}

}  // namespace

template <typename T>
size_t forward_workspace_bytes(const CellConfig& cfg, const Problem<T>& p) {
  Carver c(nullptr);
  plan_forward(cfg, p, c);
  return c.used();
}

template <typename T>
size_t backward_workspace_bytes(const CellConfig& cfg, const Problem<T>& p) {
  Carver c(nullptr);
  plan_backward(cfg, p, c);
  return c.used();
}

template <typename T>
void recurrent_forward(const CellConfig& cfg, const Problem<T>& p, const Saved<T>& saved, const Outputs<T>& out,
                       void* workspace, size_t workspace_bytes, const RunOptions& opt) {
  check_problem(cfg, p);
  require(saved.gates && saved.hprev && out.outputs && out.h_last, "missing an output buffer");
  require(cfg.kind == Cell::kRnn || saved.aux, "missing cache.aux");
  require(cfg.kind != Cell::kLstm || out.c_last, "missing c_last");
  Carver carver(workspace);
  const ForwardWork<T> w = plan_forward(cfg, p, carver);
  require(carver.used() <= workspace_bytes && (workspace != nullptr || carver.used() == 0),
          "workspace smaller than forward_workspace_bytes");

  const cudaStream_t st = opt.stream;
  const Blas blas(st, opt.allow_tf32);
  const int B = p.batch, S = p.steps, H = p.units, GH = p.width();
  const long BSH = static_cast<long>(B) * S * H;
  if (opt.poison) {
    poison(out.outputs, BSH * sizeof(T), st);
    poison(out.h_last, static_cast<size_t>(B) * H * sizeof(T), st);
    poison(out.c_last, static_cast<size_t>(B) * H * sizeof(T), st);
    poison(saved.gates, BSH * p.gates * sizeof(T), st);
    poison(saved.hprev, BSH * sizeof(T), st);
    poison(saved.aux, BSH * sizeof(T), st);
    poison(workspace, carver.used(), st);
  }

  if (p.mask) launch_first_active(w.first, p.mask, B, S, p.go_backwards, st);
  input_projection(blas, p, saved.gates, w.masked_x);
  const int t0 = p.time_of_step(0);
  FUSEDRNN_CUDA_CHECK(cudaMemcpy2DAsync(saved.hprev + static_cast<long>(t0) * H, sizeof(T) * S * H, p.h0,
                                        sizeof(T) * H, sizeof(T) * H, B, cudaMemcpyDeviceToDevice, st));
  const long slab = static_cast<long>(p.n_recurrent_dropout) * B * H;
  if (p.recurrent_dropout)
    launch_dropped_state(w.dropped, p.h0, H, p.recurrent_dropout, p.n_recurrent_dropout, B, H, st);

  ForwardStepArgs<T> a;
  a.batch = B;
  a.steps = S;
  a.units = H;
  a.activation = cfg.activation;
  a.gates = saved.gates;
  a.rec = w.rec;
  a.aux = saved.aux;
  a.hprev = saved.hprev;
  a.outputs = out.outputs;
  a.c0 = p.c0;
  a.recurrent_bias = p.recurrent_bias;
  a.mask = p.mask;
  a.first = w.first;
  a.rdrop = p.recurrent_dropout;
  a.n_rdrop = p.n_recurrent_dropout;
  for (int s = 0; s < S; ++s) {
    a.s = s;
    a.t = p.time_of_step(s);
    a.t_prev = s > 0 ? p.time_of_step(s - 1) : -1;
    const bool last = s + 1 == S;
    a.h_next = last ? out.h_last : saved.hprev + static_cast<long>(p.time_of_step(s + 1)) * H;
    a.h_next_ld = last ? H : static_cast<long>(S) * H;
    a.c_last = last ? out.c_last : nullptr;
    a.dropped_next = p.recurrent_dropout && !last ? w.dropped + ((s + 1) % 2) * slab : nullptr;
    switch (cfg.kind) {
      case Cell::kRnn:
        recurrent_matmul(blas, p, saved.hprev, w.dropped, s, 0, 1, w.rec);
        launch_rnn_forward_step(a, st);
        break;
      case Cell::kLstm:
        recurrent_matmul(blas, p, saved.hprev, w.dropped, s, 0, 4, w.rec);
        launch_lstm_forward_step(a, st);
        break;
      case Cell::kGru:
        if (cfg.reset_after) {
          recurrent_matmul(blas, p, saved.hprev, w.dropped, s, 0, 3, w.rec);
          launch_gru_forward_step_after(a, st);
        } else {
          recurrent_matmul(blas, p, saved.hprev, w.dropped, s, 0, 2, w.rec);
          const Operand<T> hh = recurrent_operand(p, saved.hprev, w.dropped, s, 2);
          a.hin_h = hh.ptr;
          a.hin_ld = hh.ld;
          launch_gru_forward_gates_before(a, st);
          // The candidate's matmul on r * h_{s-1} (aux row t).
          blas.gemm<T>(false, false, B, H, H, T(1), saved.aux + static_cast<long>(a.t) * H, static_cast<long>(S) * H,
                       p.recurrent + 2 * H, GH, T(0), w.rec + 2 * H, GH);
          launch_gru_forward_candidate_before(a, st);
        }
        break;
    }
  }
}

template <typename T>
void recurrent_backward(const CellConfig& cfg, const Problem<T>& p, const Saved<T>& saved,
                        const Incoming<T>& incoming, const Grads<T>& grads, void* workspace, size_t workspace_bytes,
                        const RunOptions& opt) {
  check_problem(cfg, p);
  const bool gru_after = cfg.kind == Cell::kGru && cfg.reset_after;
  const bool gru_before = cfg.kind == Cell::kGru && !cfg.reset_after;
  require(saved.gates && saved.hprev && (cfg.kind == Cell::kRnn || saved.aux), "missing a saved buffer");
  require(grads.dx && grads.dh0 && grads.dkernel && grads.drecurrent && grads.dbias, "missing a gradient buffer");
  require(cfg.kind != Cell::kLstm || grads.dc0, "missing dc0");
  require(!gru_after || grads.drecurrent_bias, "missing the recurrent bias gradient");
  Carver carver(workspace);
  const BackwardWork<T> w = plan_backward(cfg, p, carver);
  require(carver.used() <= workspace_bytes && workspace != nullptr, "workspace smaller than backward_workspace_bytes");

  const cudaStream_t st = opt.stream;
  const Blas blas(st, opt.allow_tf32);
  const int B = p.batch, S = p.steps, I = p.input_size, H = p.units, GH = p.width();
  const size_t state_bytes = static_cast<size_t>(B) * H * sizeof(T);
  if (opt.poison) {
    poison(grads.dx, static_cast<size_t>(B) * S * I * sizeof(T), st);
    poison(grads.dh0, state_bytes, st);
    poison(grads.dc0, state_bytes, st);
    poison(grads.dkernel, static_cast<size_t>(I) * GH * sizeof(T), st);
    poison(grads.drecurrent, static_cast<size_t>(H) * GH * sizeof(T), st);
    poison(grads.dbias, GH * sizeof(T), st);
    poison(grads.drecurrent_bias, GH * sizeof(T), st);
    poison(workspace, carver.used(), st);
  }

  if (p.mask) launch_first_active(w.first, p.mask, B, S, p.go_backwards, st);
  launch_fill(w.ones, static_cast<long>(B) * S, T(1), st);
  if (incoming.d_h_last) FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(w.dh, incoming.d_h_last, state_bytes, cudaMemcpyDeviceToDevice, st));
  else FUSEDRNN_CUDA_CHECK(cudaMemsetAsync(w.dh, 0, state_bytes, st));
  if (w.dc) {
    if (incoming.d_c_last) FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(w.dc, incoming.d_c_last, state_bytes, cudaMemcpyDeviceToDevice, st));
    else FUSEDRNN_CUDA_CHECK(cudaMemsetAsync(w.dc, 0, state_bytes, st));
  }

  BackwardStepArgs<T> a;
  a.batch = B;
  a.steps = S;
  a.units = H;
  a.activation = cfg.activation;
  a.gates = saved.gates;
  a.aux = saved.aux;
  a.hprev = saved.hprev;
  a.c0 = p.c0;
  a.d_outputs = incoming.d_outputs;
  a.mask = p.mask;
  a.first = w.first;
  a.dh = w.dh;
  a.dc = w.dc;
  a.n_R = gru_before && r_slabs(p) > 1 ? 2 : r_slabs(p);
  a.rdrop = p.recurrent_dropout;
  a.n_rdrop = p.n_recurrent_dropout;
  a.dgx = w.dgx;
  a.dgrec = gru_after ? w.dgrec : nullptr;
  a.D = w.D;
  // Gate gradients that go back through U at the next step: the candidate's of the GRU with
  // reset_after=False goes in mid-step (through r * h_{s-1}) instead.
  const T* dg_rec = gru_after ? w.dgrec : w.dgx;
  const int g_rec = gru_before ? 2 : p.gates;

  for (int s = S - 1; s >= 0; --s) {
    a.s = s;
    a.t = p.time_of_step(s);
    a.t_prev = s > 0 ? p.time_of_step(s - 1) : -1;
    if (s + 1 < S) {
      backprop_recurrent(blas, p, dg_rec, p.time_of_step(s + 1), g_rec, w.R);
      a.R = w.R;
    } else {
      a.R = nullptr;
    }
    switch (cfg.kind) {
      case Cell::kRnn: launch_rnn_backward_step(a, st); break;
      case Cell::kLstm: launch_lstm_backward_step(a, st); break;
      case Cell::kGru:
        launch_gru_backward_step(a, cfg.reset_after, st);
        if (gru_before) {
          blas.gemm<T>(false, true, B, H, H, T(1), w.dgx + static_cast<long>(a.t) * GH + 2 * H,
                       static_cast<long>(S) * GH, p.recurrent + 2 * H, GH, T(0), w.D, H);
          launch_gru_backward_reset_before(a, st);
        }
        break;
    }
  }
  backprop_recurrent(blas, p, dg_rec, p.time_of_step(0), g_rec, w.R);
  a.R = w.R;
  launch_finish_state_grads(a, grads.dh0, grads.dc0, st);

  input_grads(blas, p, w.dgx, w, grads);
  if (gru_after) {
    recurrent_weight_grads(blas, p, saved.hprev, true, w.dgrec, 0, 3, grads.drecurrent, w.scratch);
    blas.column_sums<T>(B * S, GH, w.dgrec, GH, w.ones, grads.drecurrent_bias);
  } else if (gru_before) {
    recurrent_weight_grads(blas, p, saved.hprev, true, w.dgx, 0, 2, grads.drecurrent, w.scratch);
    recurrent_weight_grads(blas, p, saved.aux, false, w.dgx, 2, 3, grads.drecurrent, w.scratch);
  } else {
    recurrent_weight_grads(blas, p, saved.hprev, true, w.dgx, 0, p.gates, grads.drecurrent, w.scratch);
  }
}

#define FUSEDRNN_INSTANTIATE(T)                                                                               \
  template size_t forward_workspace_bytes<T>(const CellConfig&, const Problem<T>&);                           \
  template size_t backward_workspace_bytes<T>(const CellConfig&, const Problem<T>&);                          \
  template void recurrent_forward<T>(const CellConfig&, const Problem<T>&, const Saved<T>&, const Outputs<T>&, \
                                     void*, size_t, const RunOptions&);                                      \
  template void recurrent_backward<T>(const CellConfig&, const Problem<T>&, const Saved<T>&, const Incoming<T>&, \
                                      const Grads<T>&, void*, size_t, const RunOptions&);
FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)
#undef FUSEDRNN_INSTANTIATE

}  // namespace cuda
}  // namespace fusedrnn
