"""The fused ``call`` of the Keras attention layers on the TensorFlow backend.

:func:`call` computes ``keras.layers.Attention(score_mode="dot")`` / ``AdditiveAttention`` with
``fusedrnn.ops.{dot,additive}_attention_forward`` through
:func:`fusedrnn.keras._tf_bridge.call_fused`, and the gradient with the matching ``*_backward``.
Shapes: query (B, Tq, D), value (B, Tv, Dv), key (B, Tv, D) or absent (the value is the key);
masks (B, Tq) and (B, Tv), any dtype (read as booleans); results (B, Tq, Dv) and (B, Tq, Tv).

Fully masked rows: Keras gives a query row with no allowed key the softmax of its scores minus
1e9 (uniform weights when the scores are small), where the fused kernels give zeros. A batch
that holds such a row (some value mask all False; with ``use_causal_mask``, a value mask whose
first step is False, since query row 0 may see key 0 only) is computed by Keras's own
implementation instead, inside the same graph (``tf.cond``), so the results always equal
Keras's.

Dtypes: float64 layers compute in float64; every other compute dtype (float32, and float16 /
bfloat16 under the ``mixed_*`` policies) computes in float32 and casts the results back.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from fusedrnn import ops
from fusedrnn.keras._tf_bridge import call_fused

# Input positions of the bridge call.
QUERY, VALUE, KEY, SCALE, QUERY_MASK, VALUE_MASK = range(6)

_OPS = {"dot": (ops.dot_attention_forward, ops.dot_attention_backward),
        "additive": (ops.additive_attention_forward, ops.additive_attention_backward)}


class _Forward:
    """The NumPy forward function of the bridge for one (kind, causal) configuration."""

    def __init__(self, kind: str, causal: bool) -> None:
        self.kind, self.causal = kind, bool(causal)

    def __call__(self, a: List[Optional[np.ndarray]], keep_cache: bool) -> Any:
        query, value = a[QUERY], a[VALUE]
        B, Tq = query.shape[0], query.shape[1]
        Tv, Dv = value.shape[1], value.shape[2]
        if 0 in (B, Tq, Tv, Dv):  # empty results (Keras: a zero context), nothing to differentiate
            return (np.zeros((B, Tq, Dv), query.dtype), np.zeros((B, Tq, Tv), query.dtype)), None
        forward = _OPS[self.kind][0]
        context, weights, cache = forward(query, value, a[KEY], scale=a[SCALE], query_mask=a[QUERY_MASK],
                                          value_mask=a[VALUE_MASK], causal=self.causal)
        return (context, weights), (cache if keep_cache else None)


def _backward_for(kind: str) -> Callable[..., List[Optional[np.ndarray]]]:
    backward_op = _OPS[kind][1]

    def backward(cache: Any, a: List[Optional[np.ndarray]], upstream: List[Optional[np.ndarray]]):
        grads: List[Optional[np.ndarray]] = [None] * len(a)  # the bridge fills zeros for None
        d_context, d_weights = upstream
        if cache is None or (d_context is None and d_weights is None):
            return grads
        d_query, d_key, d_value, d_scale = backward_op(cache, d_context, d_weights)
        grads[QUERY], grads[VALUE], grads[KEY] = d_query, d_value, d_key
        if d_scale is not None:
            grads[SCALE] = np.reshape(d_scale, a[SCALE].shape)
        return grads

    return backward


def _bool_mask(mask: Any) -> Optional[tf.Tensor]:
    return None if mask is None else tf.cast(mask, tf.bool)


def _has_fully_masked_row(value_mask: Optional[tf.Tensor], causal: bool) -> Optional[tf.Tensor]:
    """A scalar bool tensor: does some query row have no allowed key? None when none can."""
    if value_mask is None:
        return None   # causal alone: row i always sees key 0
    if causal:        # row 0 sees key 0 only, and every later row sees at least what row 0 sees
        return tf.reduce_any(tf.logical_not(value_mask[:, :1]))
    return tf.reduce_any(tf.logical_not(tf.reduce_any(value_mask, axis=1)))


def fused_attention(kind: str, query: Any, value: Any, key: Any, scale: Any, query_mask: Any, value_mask: Any,
                    causal: bool, compute: tf.DType) -> List[tf.Tensor]:
    """[context (B, Tq, Dv), weights (B, Tq, Tv)] from the fused kernels, in dtype `compute`."""
    inputs = [tf.cast(query, compute), tf.cast(value, compute), None if key is None else tf.cast(key, compute),
              None if scale is None else tf.cast(scale, compute), query_mask, value_mask]
    differentiable = [True, True, key is not None, scale is not None, False, False]
    B, Tq, Tv, Dv = query.shape[0], query.shape[1], value.shape[1], value.shape[2]
    specs = [((B, Tq, Dv), compute), ((B, Tq, Tv), compute)]
    return call_fused(_Forward(kind, causal), _backward_for(kind), inputs, specs, differentiable,
                      name=f"fusedrnn_{kind}_attention")


def call(layer: Any, kind: str, inputs: Sequence[Any], mask: Any, return_attention_scores: bool,
         use_causal_mask: bool, keras_call: Callable[[], Any]) -> Any:
    """The layer's ``call`` through the fused kernels (``keras_call()`` gives Keras's own
    ``(output, scores)`` for batches with a fully masked row)."""
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else None
    query_mask = _bool_mask(mask[0]) if mask else None
    value_mask = _bool_mask(mask[1]) if mask else None
    out_dtype = tf.as_dtype(layer.compute_dtype)
    compute = tf.float64 if out_dtype == tf.float64 else tf.float32
    scale = layer.scale.value if layer.use_scale else None

    def fused() -> List[tf.Tensor]:
        context, weights = fused_attention(kind, query, value, key, scale, query_mask, value_mask,
                                           bool(use_causal_mask), compute)
        return [tf.cast(context, out_dtype), tf.cast(weights, out_dtype)]

    def stock() -> List[tf.Tensor]:
        context, weights = keras_call()
        return [tf.cast(context, out_dtype), tf.cast(weights, out_dtype)]

    degenerate = _has_fully_masked_row(value_mask, bool(use_causal_mask))
    if degenerate is None:
        context, weights = fused()
    elif tf.executing_eagerly():
        context, weights = stock() if bool(degenerate) else fused()
    else:
        context, weights = tf.cond(degenerate, stock, fused)
        context.set_shape((query.shape[0], query.shape[1], value.shape[2]))
        weights.set_shape((query.shape[0], query.shape[1], value.shape[1]))
    return (context, weights) if return_attention_scores else context
