// Fused element-wise optimizer updates: one pass over each parameter and its slots, instead of
// the half-dozen array passes the same rule costs in NumPy. The formulas are Keras 3's, in its
// order of operations (see python/fusedrnn/optimizers.py for the rules and their reference).
#pragma once

namespace fusedrnn {
namespace cpu {

// The caller passes 1 - beta and 1 - rho already rounded to T (Keras computes them in double
// precision), and this file is compiled without floating-point contraction (no fused
// multiply-adds), so the results are bit-identical to the NumPy reference and to Keras.

// Adam: m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); p -= (m * alpha) / (sqrt(v) + eps),
// with alpha the bias-corrected step size lr * sqrt(1 - beta_2^t) / (1 - beta_1^t).
template <typename T>
void adam_update(long n, T* p, const T* g, T* m, T* v, T alpha, T one_minus_beta_1, T one_minus_beta_2, T epsilon);

// RMSprop (not centered, no momentum): v = v rho + (g^2)(1 - rho); p -= (lr g) / sqrt(v + eps).
template <typename T>
void rmsprop_update(long n, T* p, const T* g, T* v, T learning_rate, T rho, T one_minus_rho, T epsilon);

}  // namespace cpu
}  // namespace fusedrnn
