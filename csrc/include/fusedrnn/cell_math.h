// Per-element gate math of the recurrent cells, written once for the CPU and the CUDA backends.
//
// Everything here works on one hidden unit of one batch row: the loops, the GEMMs and the
// threading belong to the backends. Functions are templated on the scalar type (float or
// double) and marked FUSEDRNN_HD so that nvcc compiles them for host and device.
//
// The equations are Keras 3's (keras.layers.SimpleRNN / LSTM / GRU with their default
// activations: tanh for the state, sigmoid for the gates). Backward functions take the values
// saved by the forward pass and the gradient flowing into the cell's outputs and return the
// gradients of the gate pre-activations.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FUSEDRNN_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Forced inlining keeps the gate math inside the callers' vectorised loops.
#define FUSEDRNN_HD inline __attribute__((always_inline))
#else
#define FUSEDRNN_HD inline
#endif

namespace fusedrnn {
namespace math {

// ---------------------------------------------------------------------------------------------
// Elementary functions. On the host, float exp and tanh are branch-free polynomial and rational
// forms so that the compiler vectorises the pointwise loops (libm calls do not vectorise); they
// are accurate to a few ulp. Doubles and device code use the standard library.
// ---------------------------------------------------------------------------------------------

FUSEDRNN_HD float exp_(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  // exp(x) = 2^n * exp(r), x = n*ln2 + r, |r| <= ln2/2; exp(r) by a degree-6 polynomial fitted
  // to exp in relative error on that interval (at most 8.3e-8 relative when evaluated in float).
  // Round to nearest by the 1.5 * 2^23 trick: it vectorises where nearbyint may not. The sum's
  // low mantissa bits then hold n as an integer (0x4B400000 + n), which gives 2^n below.
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  const float r = std::fma(n, -1.428606765330187e-06f, std::fma(n, -0.693145751953125f, x));
  float p = 0.001381461275741458f;
  p = std::fma(p, r, 0.008368710055947304f);
  p = std::fma(p, r, 0.04166838899254799f);
  p = std::fma(p, r, 0.1666652113199234f);
  p = std::fma(p, r, 0.4999999403953552f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  // Scale by 2^n through the exponent bits, (n + 127) << 23, with n clamped to [-127, 128] in
  // integers: 2^-127 comes out as 0 and 2^128 as inf, so the result underflows to 0 below
  // x = -87.6 and overflows to inf above 88.4. The clamps work on integers, off the path from x
  // to the result (a clamp of x in floats compiles to compares and blends ahead of everything).
  int32_t bits;
  __builtin_memcpy(&bits, &shifted, sizeof(bits));
  bits = bits < 0x4B400000 - 127 ? 0x4B400000 - 127 : bits;
  bits = bits > 0x4B400000 + 128 ? 0x4B400000 + 128 : bits;
  bits = (bits - (0x4B400000 - 127)) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  // Past |x| = 1e6 the reduction above loses r (n is no longer exact), so the result is the
  // clamped scale alone: 0 or inf. A NaN fails the test and stays NaN through p.
  return std::fabs(x) > 1.0e6f ? scale : p * scale;
#endif
}

FUSEDRNN_HD double exp_(double x) { return std::exp(x); }

FUSEDRNN_HD float tanh_(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  // tanh(x) = x P(x^2) / Q(x^2), degrees 5 and 3, a rational function fitted to tanh in relative
  // error on [-9, 9]. Evaluated in float it stays within 6 ulp of tanh, about 1 ulp on average;
  // no exp and one division, a third of the instructions of 1 - 2 / (exp(2x) + 1) with a series
  // for small x. Past |x| = 7.9 the result is +-1 (tanh(7.9) is within 5 ulp of 1, and from +-8
  // the rational form would round past +-1). The test is on x, so it runs beside the rational
  // form rather than ahead of it; a NaN fails it and stays NaN.
  const float t = x * x;
  float p = 1.840723233559327e-11f;
  p = std::fma(p, t, -1.2854070696732833e-08f);
  p = std::fma(p, t, 9.295974450651556e-06f);
  p = std::fma(p, t, 0.002924148226156831f);
  p = std::fma(p, t, 0.1292244791984558f);
  p = std::fma(p, t, 0.9999999403953552f);
  float q = 0.00022855409770272672f;
  q = std::fma(q, t, 0.023777255788445473f);
  q = std::fma(q, t, 0.4625573456287384f);
  q = std::fma(q, t, 1.0f);
  const float y = x * p / q;
  return std::fabs(x) > 7.9f ? std::copysign(1.0f, x) : y;
#endif
}

FUSEDRNN_HD double tanh_(double x) { return std::tanh(x); }

template <typename T>
FUSEDRNN_HD T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}

// Activation of SimpleRNN's state.
enum class Activation : int { kTanh = 0, kRelu = 1 };

template <typename T>
FUSEDRNN_HD T activate(Activation a, T x) {
  return a == Activation::kTanh ? tanh_(x) : (x > T(0) ? x : T(0));
}

// Derivative of the activation, expressed through its output y = activate(a, x).
template <typename T>
FUSEDRNN_HD T activate_grad_from_output(Activation a, T y) {
  return a == Activation::kTanh ? T(1) - y * y : (y > T(0) ? T(1) : T(0));
}

// ---------------------------------------------------------------------------------------------
// SimpleRNN: h = act(x W + b + h_prev U)
// ---------------------------------------------------------------------------------------------
template <typename T>
FUSEDRNN_HD T rnn_backward(Activation a, T h, T dh) {
  return dh * activate_grad_from_output(a, h);
}

// ---------------------------------------------------------------------------------------------
// LSTM, gates in Keras order i, f, c (candidate, called g here), o:
//   i = sigmoid(zi), f = sigmoid(zf), g = tanh(zc), o = sigmoid(zo)
//   c = f * c_prev + i * g,  h = o * tanh(c)
// ---------------------------------------------------------------------------------------------
template <typename T>
struct LstmGates {
  T i, f, g, o;
};

template <typename T>
FUSEDRNN_HD LstmGates<T> lstm_activate(T zi, T zf, T zc, T zo) {
  return {sigmoid(zi), sigmoid(zf), tanh_(zc), sigmoid(zo)};
}

template <typename T>
FUSEDRNN_HD T lstm_cell_state(LstmGates<T> a, T c_prev) {
  return a.f * c_prev + a.i * a.g;
}

template <typename T>
FUSEDRNN_HD T lstm_hidden(LstmGates<T> a, T c) {
  return a.o * tanh_(c);
}

// Gradients of the four pre-activations and of c_prev, given dh and dc flowing into (h, c).
template <typename T>
struct LstmGrads {
  T dzi, dzf, dzc, dzo, dc_prev;
};

template <typename T>
FUSEDRNN_HD LstmGrads<T> lstm_backward(LstmGates<T> a, T c, T c_prev, T dh, T dc) {
  const T tc = tanh_(c);
  const T dc_total = dc + dh * a.o * (T(1) - tc * tc);
  const T di = dc_total * a.g;
  const T df = dc_total * c_prev;
  const T dg = dc_total * a.i;
  const T d_o = dh * tc;
  return {di * a.i * (T(1) - a.i), df * a.f * (T(1) - a.f), dg * (T(1) - a.g * a.g),
          d_o * a.o * (T(1) - a.o), dc_total * a.f};
}

// ---------------------------------------------------------------------------------------------
// GRU, gates in Keras order z (update), r (reset), h (candidate):
//   z = sigmoid(xz + rz), r = sigmoid(xr + rr)
//   reset_after=True : hh = tanh(xh + r * rh),   rh = (h_prev U_h + b_rec_h)
//   reset_after=False: hh = tanh(xh + (r * h_prev) U_h)
//   h = z * h_prev + (1 - z) * hh
// where x* are the input projections (with the input bias) and r* the recurrent ones.
// ---------------------------------------------------------------------------------------------
template <typename T>
FUSEDRNN_HD T gru_hidden(T z, T hh, T h_prev) {
  return z * h_prev + (T(1) - z) * hh;
}

// Backward through h = z * h_prev + (1 - z) * hh and the two sigmoid/tanh non-linearities
// that do not depend on the reset mode.
template <typename T>
struct GruGrads {
  T dzz;       // d pre-activation of z
  T dzh;       // d pre-activation of hh (input to tanh)
  T dh_prev;   // direct path dh * z
};

template <typename T>
FUSEDRNN_HD GruGrads<T> gru_backward(T z, T hh, T h_prev, T dh) {
  const T dz = dh * (h_prev - hh);
  const T dhh = dh * (T(1) - z);
  return {dz * z * (T(1) - z), dhh * (T(1) - hh * hh), dh * z};
}

// Derivative of the reset gate's pre-activation from the gradient reaching r.
template <typename T>
FUSEDRNN_HD T sigmoid_backward(T s, T ds) {
  return ds * s * (T(1) - s);
}

}  // namespace math
}  // namespace fusedrnn
