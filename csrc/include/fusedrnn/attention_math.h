// Per-row math of the attention kernels, written once for the CPU and the CUDA backends.
//
// Everything here works on one query row (one softmax over the value axis) or on one feature
// of one (query, key) pair: the loops over batches and rows, the GEMMs and the threading belong
// to the backends. Functions are templated on the scalar type and marked FUSEDRNN_HD (see
// cell_math.h, which also provides the vectorisable exp_ and tanh_).
//
// Semantics are Keras 3's keras.layers.Attention (score_mode="dot") and AdditiveAttention:
//   dot:      s_ij = scale * <q_i, k_j>
//   additive: s_ij = sum_d scale_d * tanh(q_id + k_jd)
//   w_i = softmax_j(s_ij) over the allowed keys j,  context_i = sum_j w_ij v_j
// A key j is allowed for query i when value_mask[j] is set and, with the causal mask, j <= i.
// Keras subtracts 1e9 from the scores of masked keys; here they get exactly zero weight, and a
// row with no allowed key gets all-zero weights (Keras would give it uniform weights).
#pragma once

#include <cstdint>

#include "fusedrnn/cell_math.h"

namespace fusedrnn {
namespace math {

// Number of keys a query row may look at before the value mask: all Tv, or i + 1 with the
// causal mask (Keras's causal mask is aligned top-left: query i sees keys 0..i, whatever Tq
// and Tv are).
FUSEDRNN_HD int attention_key_limit(bool causal, int i, int tv) {
  return causal ? (i + 1 < tv ? i + 1 : tv) : tv;
}

FUSEDRNN_HD bool attention_key_allowed(const uint8_t* value_mask, int limit, int j) {
  return j < limit && (value_mask == nullptr || value_mask[j] != 0);
}

// Masked, max-subtracted softmax of one row: w_j = exp(a*s_j - m) / sum over the allowed keys,
// with m the largest allowed a*s_j; disallowed keys get 0, and so does every key of a row with
// none allowed. `s` and `w` may be the same array. `a` multiplies the scores first (the dot
// form's scale; 1 otherwise), as Keras does before its softmax.
template <typename T>
FUSEDRNN_HD void masked_softmax_row(const T* s, T a, const uint8_t* value_mask, int limit, int tv, T* w) {
  bool any = false;
  T m = T(0);
  for (int j = 0; j < tv; ++j) {
    if (!attention_key_allowed(value_mask, limit, j)) continue;
    const T x = a * s[j];
    if (!any || x > m) m = x;
    any = true;
  }
  if (!any) {
    for (int j = 0; j < tv; ++j) w[j] = T(0);
    return;
  }
  T sum = T(0);
  for (int j = 0; j < tv; ++j) {
    const T e = attention_key_allowed(value_mask, limit, j) ? exp_(a * s[j] - m) : T(0);
    w[j] = e;
    sum += e;
  }
  // sum >= 1: the largest allowed score contributes exp(0).
  for (int j = 0; j < tv; ++j) w[j] = w[j] / sum;
}

// Back-propagation through the softmax of one row: ds_j = w_j * (dw_j - sum_k w_k dw_k).
// Keys with zero weight (masked ones) get zero gradient. `dw` and `ds` may be the same array.
template <typename T>
FUSEDRNN_HD void softmax_backward_row(const T* w, const T* dw, int tv, T* ds) {
  T dot = T(0);
  for (int j = 0; j < tv; ++j) dot += w[j] * dw[j];
  for (int j = 0; j < tv; ++j) ds[j] = w[j] * (dw[j] - dot);
}

// Additive score, one feature: scale_d * tanh(q_d + k_d).
template <typename T>
FUSEDRNN_HD T additive_term(T q, T k, T scale) {
  return scale * tanh_(q + k);
}

// Gradient of one feature of an additive score s = sum_d scale_d tanh(q_d + k_d), given
// ds = dL/ds: the pre-activation gradient ds * scale_d * (1 - t^2), which goes to both q_d
// and k_d, and the scale gradient ds * t, where t = tanh(q_d + k_d).
template <typename T>
FUSEDRNN_HD T additive_preact_grad(T t, T ds, T scale) {
  return ds * scale * (T(1) - t * t);
}

}  // namespace math
}  // namespace fusedrnn
