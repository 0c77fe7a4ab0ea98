// CPU kernels of dot-product (Luong) and additive (Bahdanau) attention, forward and backward,
// plus the dense projection (x W + b) that BahdanauAttention puts in front of the additive
// kernel, so that all of its work runs on the kernels' own thread pool.
//
// Layout (row-major, batch-major like Keras): query (B, Tq, D), key (B, Tv, D), value
// (B, Tv, Dv), weights (B, Tq, Tv), context (B, Tq, Dv). Masks are bytes, 1 = keep.
// The row math (masked softmax, additive terms) is the shared header fusedrnn/attention_math.h.
//
// Threading: each op runs one OpenMP parallel region. Work that is independent per query row
// (scores, softmax, context, the softmax backward and d_query of the dot form) is split into
// units of (batch, block of query rows); work that sums over query rows (d_key, d_value, and
// all gradients of the additive form) into units of (batch, block of feature columns), so that
// no two threads write the same element. With B >= threads a unit is a whole batch item.
#pragma once

#include <atomic>
#include <cstdint>

namespace fusedrnn {
namespace cpu {

enum class ScoreKind : int { kDot = 0, kAdditive = 1 };

template <typename T>
struct AttentionProblem {
  ScoreKind kind = ScoreKind::kDot;
  int batch = 0, tq = 0, tv = 0, dim = 0, value_dim = 0;
  const T* query = nullptr;            // (B, Tq, D)
  const T* key = nullptr;              // (B, Tv, D); the value array itself when key_is_value
  const T* value = nullptr;            // (B, Tv, Dv)
  const T* scale = nullptr;            // dot: one scalar; additive: (D,); null = no scale
  const uint8_t* query_mask = nullptr; // (B, Tq) or null
  const uint8_t* value_mask = nullptr; // (B, Tv) or null
  bool causal = false;
  bool key_is_value = false;           // key defaulted to value: d_key is added to d_value
  // When set, the kernels check the float arrays they read for NaN/inf while the data is in
  // cache anyway, and set a bit per offending argument (see NonFinite); null: no check.
  std::atomic<int>* nonfinite = nullptr;
};

// Bits of AttentionProblem::nonfinite.
enum NonFinite : int { kQueryBad = 1, kKeyBad = 2, kValueBad = 4, kDContextBad = 8, kDWeightsBad = 16 };

template <typename T>
struct AttentionOutputs {
  T* context = nullptr;  // (B, Tq, Dv)
  T* weights = nullptr;  // (B, Tq, Tv)
  T* scores = nullptr;   // (B, Tq, Tv): dot form only, the unscaled q.k (kept for d_scale)
};

template <typename T>
struct AttentionGrads {
  T* d_query = nullptr;  // (B, Tq, D)
  T* d_key = nullptr;    // (B, Tv, D); null when key_is_value (then added into d_value)
  T* d_value = nullptr;  // (B, Tv, Dv)
  T* d_scale = nullptr;  // dot: one scalar; additive: (D,); null when the problem has no scale
};

// context, weights (and the dot form's raw scores) of the problem.
template <typename T>
void attention_forward(const AttentionProblem<T>& p, const AttentionOutputs<T>& out);

// Gradients given the forward's weights (and raw scores for the dot form) and the gradients
// arriving at the context and at the weights (either may be null: no gradient there).
template <typename T>
void attention_backward(const AttentionProblem<T>& p, const T* weights, const T* scores, const T* d_context,
                        const T* d_weights, const AttentionGrads<T>& grads);

// y (N, U) = x (N, I) kernel (I, U) + bias (U,) (bias may be null).
template <typename T>
void dense_forward(int n, int in, int units, const T* x, const T* kernel, const T* bias, T* y);

// dx (N, I) = dy kernel^T, d_kernel (I, U) = x^T dy, d_bias (U,) = sum over rows of dy; each of
// the three may be null (not computed).
template <typename T>
void dense_backward(int n, int in, int units, const T* x, const T* kernel, const T* dy, T* dx, T* d_kernel,
                    T* d_bias);

}  // namespace cpu
}  // namespace fusedrnn
