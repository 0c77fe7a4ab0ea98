"""Shared by the attention parity tests: the size d_scale's float32 error scales with."""

from __future__ import annotations

import numpy as np

from fusedrnn import reference_attention as ref


def d_scale_size(kind, query, value, key, scale, query_mask, value_mask, causal, d_context, d_weights):
    """max over the scale's entries of the summed absolute terms of d_scale, in float64.

    d_scale adds up B*Tq*Tv terms that largely cancel, so two float32 implementations that
    round in different orders differ by a multiple of u * sum|terms|, which can be thousands of
    times |d_scale| itself. Tolerances for d_scale are relative to this size.
    """
    def f64(a):
        return None if a is None else np.asarray(a, np.float64)

    forward = ref.dot_attention_forward if kind == "dot" else ref.additive_attention_forward
    _, _, cache = forward(f64(query), f64(value), f64(key), scale=f64(scale), query_mask=query_mask,
                          value_mask=value_mask, causal=causal)
    return float(np.max(ref.scale_gradient_magnitude(cache, f64(d_context), f64(d_weights))))
