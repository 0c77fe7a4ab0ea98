"""Readable NumPy reference of the attention ops (forward and backward), for tests and benchmarks.

Same contract as :mod:`fusedrnn.ops.attention` (shapes, masks, causal mask, zero weights for a
row with no allowed key, the (d_query, d_key, d_value, d_scale) gradients with d_key folded into
d_value when there is no separate key) but written for clarity, not speed: the additive form
materialises the (B, Tq, Tv, D) tanh terms. No argument checking.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

Cache = Dict[str, Any]


def allowed_keys(B: int, Tq: int, Tv: int, value_mask: Optional[np.ndarray], causal: bool) -> np.ndarray:
    """(B, Tq, Tv) booleans: may query i of batch b attend to key j?"""
    allowed = np.ones((B, Tq, Tv), dtype=bool)
    if value_mask is not None:
        allowed &= value_mask[:, None, :]
    if causal:  # Keras's causal mask, aligned top-left: j <= i
        allowed &= np.arange(Tv)[None, :] <= np.arange(Tq)[:, None]
    return allowed


def masked_softmax(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax over the last axis restricted to allowed entries; rows with none give zeros."""
    any_allowed = allowed.any(axis=-1, keepdims=True)
    m = np.where(allowed, scores, -np.inf).max(axis=-1, keepdims=True)
    m = np.where(any_allowed, m, 0.0)
    e = np.where(allowed, np.exp(np.where(allowed, scores - m, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return (e / np.where(any_allowed, total, 1.0)).astype(scores.dtype)


def _finish(query, value, key, scale, query_mask, value_mask, causal, kind, scores_for_softmax, extra):
    B, Tq, Tv = scores_for_softmax.shape
    weights = masked_softmax(scores_for_softmax, allowed_keys(B, Tq, Tv, value_mask, causal))
    context = weights @ value
    if query_mask is not None:
        context = context * query_mask[:, :, None]
    cache = dict(kind=kind, query=query, value=value, key=key, scale=scale, query_mask=query_mask,
                 value_mask=value_mask, causal=causal, weights=weights, **extra)
    return context.astype(query.dtype), weights, cache


def dot_attention_forward(query: np.ndarray, value: np.ndarray, key: Optional[np.ndarray] = None, *,
                          scale: Any = None, query_mask: Optional[np.ndarray] = None,
                          value_mask: Optional[np.ndarray] = None, causal: bool = False
                          ) -> Tuple[np.ndarray, np.ndarray, Cache]:
    """scores = scale * query key^T; weights = masked softmax; context = weights value."""
    k = value if key is None else key
    raw = query @ np.swapaxes(k, 1, 2)  # (B, Tq, Tv)
    scores = raw if scale is None else raw * scale
    return _finish(query, value, key, scale, query_mask, value_mask, causal, "dot", scores, {"raw": raw})


def additive_attention_forward(query: np.ndarray, value: np.ndarray, key: Optional[np.ndarray] = None, *,
                               scale: Optional[np.ndarray] = None, query_mask: Optional[np.ndarray] = None,
                               value_mask: Optional[np.ndarray] = None, causal: bool = False
                               ) -> Tuple[np.ndarray, np.ndarray, Cache]:
    """scores[b, i, j] = sum_d scale[d] tanh(query[b, i, d] + key[b, j, d]); then as the dot form."""
    k = value if key is None else key
    t = np.tanh(query[:, :, None, :] + k[:, None, :, :])  # (B, Tq, Tv, D)
    s = np.ones(query.shape[-1], query.dtype) if scale is None else scale
    scores = (t * s).sum(axis=-1)
    return _finish(query, value, key, scale, query_mask, value_mask, causal, "additive", scores, {"tanh": t})


def _scores_grad(cache: Cache, d_context: Optional[np.ndarray], d_weights: Optional[np.ndarray]):
    """Gradient of the softmax's input, and of the value through the context."""
    w, value = cache["weights"], cache["value"]
    dc = np.zeros(w.shape[:2] + value.shape[2:], w.dtype) if d_context is None else d_context
    if cache["query_mask"] is not None:  # the context of masked query rows was zeroed
        dc = dc * cache["query_mask"][:, :, None]
    dw = dc @ np.swapaxes(value, 1, 2)
    if d_weights is not None:
        dw = dw + d_weights
    ds = w * (dw - (w * dw).sum(axis=-1, keepdims=True))  # softmax backward
    d_value = np.swapaxes(w, 1, 2) @ dc
    return ds, d_value


def dot_attention_backward(cache: Cache, d_context: Optional[np.ndarray], d_weights: Optional[np.ndarray] = None):
    """(d_query, d_key, d_value, d_scale) of :func:`dot_attention_forward`."""
    ds, d_value = _scores_grad(cache, d_context, d_weights)
    q, key, scale = cache["query"], cache["key"], cache["scale"]
    k = cache["value"] if key is None else key
    a = 1.0 if scale is None else scale
    d_query = (a * ds) @ k
    d_key = (a * np.swapaxes(ds, 1, 2)) @ q
    d_scale = None if scale is None else np.asarray((ds * cache["raw"]).sum(), q.dtype)
    if key is None:
        return d_query.astype(q.dtype), None, (d_value + d_key).astype(q.dtype), d_scale
    return d_query.astype(q.dtype), d_key.astype(q.dtype), d_value.astype(q.dtype), d_scale


def additive_attention_backward(cache: Cache, d_context: Optional[np.ndarray],
                                d_weights: Optional[np.ndarray] = None):
    """(d_query, d_key, d_value, d_scale) of :func:`additive_attention_forward`."""
    ds, d_value = _scores_grad(cache, d_context, d_weights)
    q, key, scale, t = cache["query"], cache["key"], cache["scale"], cache["tanh"]
    s = np.ones(q.shape[-1], q.dtype) if scale is None else scale
    g = ds[..., None] * s * (1.0 - t * t)  # (B, Tq, Tv, D): gradient of q_i + k_j
    d_query = g.sum(axis=2)
    d_key = g.sum(axis=1)
    d_scale = None if scale is None else (ds[..., None] * t).sum(axis=(0, 1, 2)).astype(q.dtype)
    if key is None:
        return d_query.astype(q.dtype), None, (d_value + d_key).astype(q.dtype), d_scale
    return d_query.astype(q.dtype), d_key.astype(q.dtype), d_value.astype(q.dtype), d_scale
