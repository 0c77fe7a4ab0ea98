"""Shared by the attention parity tests: how large the rounding errors of each result may be.

Two float32 implementations that sum in different orders differ by a multiple of u times the
sum of the absolute values of the terms they add, not of the result: where the terms cancel (a
softmax row's score gradients sum to zero; a row that attends to one key has score gradients of
zero, made of rounding alone) the result can be thousands of times smaller than its error bound.
:func:`result_sizes` computes every result once more in float64 with each term replaced by its
absolute value, the standard bound of forward error analysis (|fl(A B) - A B| <= g_n |A| |B|),
and the tests hold each result to ``rtol * size``.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from fusedrnn import reference_attention as ref


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def result_sizes(kind, query, value, key, scale, query_mask, value_mask, causal, d_context, d_weights
                 ) -> Dict[str, float]:
    """{name: size} for output, scores, d_query, d_value, d_key and d_scale (absent without a
    separate key or a scale): the largest entry of each result computed from absolute values."""
    q, v, k, s = _f64(query), _f64(value), _f64(key), _f64(scale)
    forward = ref.dot_attention_forward if kind == "dot" else ref.additive_attention_forward
    _, w, cache = forward(q, v, k, scale=s, query_mask=query_mask, value_mask=value_mask, causal=causal)
    keys = v if k is None else k
    dc = np.zeros(w.shape[:2] + v.shape[2:]) if d_context is None else _f64(d_context)
    if query_mask is not None:
        dc = dc * query_mask[:, :, None]
    dw = dc @ np.swapaxes(v, 1, 2) + (0.0 if d_weights is None else _f64(d_weights))
    # |softmax backward|: w * (|dw| + sum_j w |dw|), the terms of w * (dw - sum_j w dw)
    ds = w * (np.abs(dw) + (w * np.abs(dw)).sum(axis=-1, keepdims=True))
    context = w @ np.abs(v)
    if query_mask is not None:
        context = context * query_mask[:, :, None]
    d_value = np.swapaxes(w, 1, 2) @ np.abs(dc)
    if kind == "dot":
        a = 1.0 if s is None else abs(float(s))
        d_query = a * ds @ np.abs(keys)
        d_key = a * np.swapaxes(ds, 1, 2) @ np.abs(q)
        d_scale = None if s is None else (ds * np.abs(cache["raw"])).sum()
    else:
        t = cache["tanh"]
        g = ds[..., None] * (np.ones(q.shape[-1]) if s is None else np.abs(s)) * (1.0 - t * t)
        d_query, d_key = g.sum(axis=2), g.sum(axis=1)
        d_scale = None if s is None else (ds[..., None] * np.abs(t)).sum(axis=(0, 1, 2))
    if k is None:  # the value is also the key: its gradient adds both
        d_value = d_value + d_key
    sizes = {"output": context, "scores": w, "d_query": d_query, "d_value": d_value}
    if k is not None:
        sizes["d_key"] = d_key
    if d_scale is not None:
        sizes["d_scale"] = d_scale
    return {name: float(np.max(a, initial=0.0)) for name, a in sizes.items()}
