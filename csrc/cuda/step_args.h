// Arguments of the per-step fused pointwise kernels (plain structs, passed to the kernels by
// value). The buffers are the ones of the CPU backend (csrc/cpu/recurrent.h), in device memory:
//   gates (B, T, G*H) and aux, hprev (B, T, H) in input-time order t; outputs (B, T, H) in
//   processing order s (t = T-1-s with go_backwards). G gates of H units in Keras's order.
// Every kernel thread handles one (batch row b, hidden unit j) and all gates of that unit.
#pragma once

#include <cstdint>

namespace fusedrnn {
namespace cuda {

enum class Cell : int { kRnn = 0, kLstm = 1, kGru = 2 };

template <typename T>
struct ForwardStepArgs {
  int batch = 0, steps = 0, units = 0;
  int s = 0;       // processing step
  int t = 0;       // its input time
  int t_prev = -1; // input time of step s-1 (-1 at s = 0): where the LSTM's c_{s-1} is
  int activation = 0;  // SimpleRNN: math::Activation

  T* gates = nullptr;           // saved gates; on entry row (b, t) holds x W + b, on exit activated
  const T* rec = nullptr;       // (B, G*H): h_{s-1} U of this step, gate g in columns [gH, (g+1)H)
  T* aux = nullptr;             // (B, T, H): LSTM c, GRU candidate term (see recurrent.h)
  const T* hprev = nullptr;     // (B, T, H): row (b, t) holds h_{s-1}
  T* h_next = nullptr;          // where h_s goes: row t_{s+1} of hprev or h_last
  long h_next_ld = 0;           // its leading dimension (T*H or H)
  T* outputs = nullptr;         // (B, T, H)
  const T* c0 = nullptr;        // LSTM (B, H): c entering step 0
  T* c_last = nullptr;          // LSTM (B, H): written at the last step only (else null)
  const T* recurrent_bias = nullptr;  // GRU reset_after (3H,)
  const uint8_t* mask = nullptr;      // (B, T) or null
  const int* first = nullptr;         // (B): first unmasked processing step, or null
  const T* hin_h = nullptr;     // GRU reset_after=False: h_{s-1} as it enters gate h (dropped out)
  long hin_ld = 0;
  const T* rdrop = nullptr;     // (n, B, H) recurrent dropout masks, or null
  int n_rdrop = 0;
  T* dropped_next = nullptr;    // (n, B, H): h_s * rdrop[m] for the next step's matmul, or null
};

template <typename T>
struct BackwardStepArgs {
  int batch = 0, steps = 0, units = 0;
  int s = 0, t = 0, t_prev = -1;
  int activation = 0;

  const T* gates = nullptr;     // saved (B, T, G*H)
  const T* aux = nullptr;       // saved (B, T, H)
  const T* hprev = nullptr;     // saved (B, T, H)
  const T* c0 = nullptr;        // LSTM (B, H)
  const T* d_outputs = nullptr; // (B, T, H) or null
  const uint8_t* mask = nullptr;
  const int* first = nullptr;
  T* dh = nullptr;              // (B, H): gradient reaching h_s from later steps, updated to h_{s-1}
  T* dc = nullptr;              // LSTM (B, H): same for the cell state
  // The recurrent gradient of step s+1 not yet in dh: sum_m R[m] * rdrop[m] (rdrop null: R[0]).
  const T* R = nullptr;         // (n_R, B, H) or null
  int n_R = 0;
  const T* rdrop = nullptr;     // (n, B, H) or null
  int n_rdrop = 0;
  T* dgx = nullptr;             // (B, T, G*H): gradients of the input-side pre-activations
  T* dgrec = nullptr;           // GRU reset_after: (B, T, G*H) for the recurrent side
  const T* D = nullptr;         // GRU reset_after=False: (B, H) = dgx_h(t) U_h^T
};

}  // namespace cuda
}  // namespace fusedrnn
