// The CUDA recurrent ops (SimpleRNN, LSTM, GRU), forward and backward over whole sequences.
//
// Same buffers and semantics as the CPU backend (csrc/cpu/recurrent.h): the caller allocates
// every output and the saved buffers in device memory, plus one workspace of the size that
// *_workspace_bytes returns; everything is enqueued on the caller's stream and nothing here
// allocates or synchronises.
//
// Forward: the input projection of all steps is one cuBLAS GEMM (one per distinct dropout
// mask) onto the broadcast bias; then per step one GEMM h_{s-1} U (a strided-batched one with a
// recurrent dropout mask per gate) and one fused pointwise kernel (cell_math.h) that writes the
// activated gates, the new state, the outputs and the next step's dropped-out state. The GRU
// with reset_after=False needs r before its candidate matmul: two GEMMs and two kernels a step.
//
// Backward: per step one GEMM (the next step's gate gradients times U^T) and one fused kernel;
// then the weight and input gradients of all steps are a few large GEMMs, the bias gradients
// GEMVs against a vector of ones.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/step_args.h"

namespace fusedrnn {
namespace cuda {

struct CellConfig {
  Cell kind = Cell::kLstm;
  int activation = 0;       // SimpleRNN: math::Activation
  bool reset_after = true;  // GRU
  int gates() const { return kind == Cell::kLstm ? 4 : (kind == Cell::kGru ? 3 : 1); }
};

// The shared arguments of forward and backward (device pointers; optional ones may be null).
template <typename T>
struct Problem {
  int batch = 0, steps = 0, input_size = 0, units = 0, gates = 1;
  const T* x = nullptr;               // (B, T, I)
  const T* h0 = nullptr;              // (B, H)
  const T* c0 = nullptr;              // (B, H), LSTM
  const T* kernel = nullptr;          // (I, G*H)
  const T* recurrent = nullptr;       // (H, G*H)
  const T* bias = nullptr;            // (G*H,)
  const T* recurrent_bias = nullptr;  // (G*H,), GRU reset_after
  const uint8_t* mask = nullptr;      // (B, T)
  const T* dropout = nullptr;         // (n_dropout, B, I), n_dropout in {1, G}
  int n_dropout = 0;
  const T* recurrent_dropout = nullptr;  // (n_recurrent_dropout, B, H)
  int n_recurrent_dropout = 0;
  bool go_backwards = false;

  int width() const { return gates * units; }
  int time_of_step(int s) const { return go_backwards ? steps - 1 - s : s; }
};

template <typename T>
struct Saved {
  T* gates;  // (B, T, G*H)
  T* hprev;  // (B, T, H)
  T* aux;    // (B, T, H); null for SimpleRNN
};

template <typename T>
struct Outputs {
  T* outputs;  // (B, T, H)
  T* h_last;   // (B, H)
  T* c_last;   // (B, H), LSTM
};

template <typename T>
struct Incoming {
  const T* d_outputs;  // (B, T, H) or null
  const T* d_h_last;   // (B, H) or null
  const T* d_c_last;   // (B, H) or null
};

template <typename T>
struct Grads {
  T* dx;               // (B, T, I)
  T* dh0;              // (B, H)
  T* dc0;              // (B, H), LSTM
  T* dkernel;          // (I, G*H)
  T* drecurrent;       // (H, G*H)
  T* dbias;            // (G*H,)
  T* drecurrent_bias;  // (G*H,), GRU reset_after
};

struct RunOptions {
  cudaStream_t stream = nullptr;
  bool allow_tf32 = false;  // float GEMMs on TF32 tensor cores
  bool poison = false;      // test hook: fill outputs and workspace with NaN first
};

template <typename T>
size_t forward_workspace_bytes(const CellConfig& cfg, const Problem<T>& p);
template <typename T>
size_t backward_workspace_bytes(const CellConfig& cfg, const Problem<T>& p);

template <typename T>
void recurrent_forward(const CellConfig& cfg, const Problem<T>& p, const Saved<T>& saved, const Outputs<T>& out,
                       void* workspace, size_t workspace_bytes, const RunOptions& opt);

template <typename T>
void recurrent_backward(const CellConfig& cfg, const Problem<T>& p, const Saved<T>& saved,
                        const Incoming<T>& incoming, const Grads<T>& grads, void* workspace, size_t workspace_bytes,
                        const RunOptions& opt);

}  // namespace cuda
}  // namespace fusedrnn
