// Fused element-wise optimizer updates: one pass over each parameter and its slots, instead of
// the half-dozen array passes the same rule costs in NumPy. The formulas are Keras 3's, in its
// order of operations (see python/fusedrnn/optimizers.py for the rules and their reference).
#pragma once

namespace fusedrnn {
namespace cpu {

// Adam: m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); p -= m * alpha / (sqrt(v) + eps),
// with alpha the bias-corrected step size lr * sqrt(1 - beta_2^t) / (1 - beta_1^t).
template <typename T>
void adam_update(long n, T* p, const T* g, T* m, T* v, T alpha, T beta_1, T beta_2, T epsilon);

// RMSprop (not centered, no momentum): v = rho v + (1 - rho) g^2; p -= lr g / sqrt(v + eps).
template <typename T>
void rmsprop_update(long n, T* p, const T* g, T* v, T learning_rate, T rho, T epsilon);

}  // namespace cpu
}  // namespace fusedrnn
