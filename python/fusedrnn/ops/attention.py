"""Fused attention ops: dot-product (Luong) and additive (Bahdanau) attention, forward and backward.

Shapes: ``query`` (B, Tq, D), ``value`` (B, Tv, Dv), ``key`` (B, Tv, D) (defaults to ``value``,
which then needs Dv == D). Results: ``context`` (B, Tq, Dv) and ``weights`` (B, Tq, Tv). All
float arrays must be C-contiguous NumPy arrays of one dtype, float32 or float64, without NaN or
inf; masks are boolean arrays, ``query_mask`` (B, Tq) and ``value_mask`` (B, Tv), True = keep.

The semantics are Keras 3's ``keras.layers.Attention`` (``score_mode="dot"``) and
``keras.layers.AdditiveAttention``, with ``dropout=0`` (attention dropout is not supported):

* dot:      ``scores[b, i, j] = scale * sum_d query[b, i, d] * key[b, j, d]`` (``scale`` a scalar,
  Keras's ``use_scale=True`` weight of shape ``()``; no scaling when None)
* additive: ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])`` (``scale``
  of shape (D,), Keras's ``use_scale=True`` weight; all ones when None)
* ``weights = softmax(scores)`` over the keys ``j`` that are allowed: ``value_mask[b, j]`` is True
  and, with ``causal=True``, ``j <= i`` (Keras's ``use_causal_mask``; it is aligned top-left, so
  with Tq = 1 the query sees key 0 only). The softmax subtracts the row's maximum first.
* ``context = weights @ value``; rows where ``query_mask[b, i]`` is False are set to zero (as
  Keras does; the weights of those rows are still returned, unmasked, as Keras returns them).

Deviations from Keras (both only where Keras's own result is degenerate):

* Keras subtracts 1e9 (65504 for float16) from masked scores instead of excluding them. Here
  masked keys get exactly zero weight; the two agree unless the unmasked scores are themselves
  around -1e9.
* A row with no allowed key (fully masked) gets all-zero weights and a zero context. Keras gives
  it uniform weights in float32 (every score becomes about -1e9) and, in float64, the softmax of
  the unmasked scores (-1e9 is too small to flatten them): neither is meaningful, and neither
  comes back here. No gradient flows through such a row.

The ``*_backward`` ops take the cache, the gradient of the context and optionally the gradient
of the returned weights, and return ``(d_query, d_key, d_value, d_scale)``. ``d_key`` is None
when the forward call had no key (the key gradient is then included in ``d_value``, since the
key was the value); ``d_scale`` is None when the call had no scale. A query of one step (Tq = 1,
the inner loop of decoding) takes the same path, with no Python-side per-row work.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, Optional, Tuple

import numpy as np

from fusedrnn import _C
from fusedrnn.ops import _checks as chk
from fusedrnn.ops.checked_weights import CheckedWeights, check_checked
from fusedrnn.ops.packed_dense import PackedDense, check_packed_dense

Grads = Tuple[np.ndarray, Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]


@dataclass(frozen=True)
class AttentionCache:
    """What an attention forward op keeps for its backward op (treat as opaque).

    ``weights`` (B, Tq, Tv) are the returned attention weights; ``scores`` (B, Tq, Tv) the dot
    form's unscaled ``query . key`` (None for the additive form, whose backward pass recomputes
    the tanh terms instead of keeping B*Tq*Tv*D of them).
    """

    kind: str
    query: np.ndarray
    key: Optional[np.ndarray]
    value: np.ndarray
    scale: Optional[np.ndarray]
    query_mask: Optional[np.ndarray]
    value_mask: Optional[np.ndarray]
    causal: bool
    weights: np.ndarray
    scores: Optional[np.ndarray]

    @property
    def batch(self) -> int:
        return int(self.query.shape[0])

    @property
    def query_steps(self) -> int:
        return int(self.query.shape[1])

    @property
    def value_steps(self) -> int:
        return int(self.value.shape[1])

    @property
    def dim(self) -> int:
        return int(self.query.shape[2])

    @property
    def value_dim(self) -> int:
        return int(self.value.shape[2])


# -- argument checks ---------------------------------------------------------------------------
def _same_dtype(name: str, a: Any, dtype: Optional[np.dtype]) -> np.ndarray:
    a = chk.check_float(name, a)
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the query's dtype), got {a.dtype}")
    return a


def _float3(name: str, a: Any, dtype: Optional[np.dtype], what: str) -> np.ndarray:
    a = _same_dtype(name, a, dtype)
    if a.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D array {what}, got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name}: every dimension must be at least 1, got shape {a.shape}")
    chk.check_contiguous(name, a)
    # NaN/inf: checked by the kernel as it reads the data (ValueError naming the argument).
    return a


def _mask(name: str, a: Any, shape: Tuple[int, int], what: str) -> Optional[np.ndarray]:
    if a is None:
        return None
    a = chk.as_array(name, a)
    if a.dtype != np.bool_:
        raise TypeError(f"{name}: expected a boolean array, got {a.dtype}")
    chk.check_shape(name, a, shape, what)
    return np.ascontiguousarray(a).view(np.uint8)


def _dot_scale(scale: Any, dtype: np.dtype) -> Optional[np.ndarray]:
    if scale is None:
        return None
    if isinstance(scale, np.ndarray):
        scale = _same_dtype("scale", scale, dtype)
        if scale.shape != ():
            raise ValueError(f"scale: expected a scalar (shape ()), got shape {scale.shape}")
        value = scale
    elif isinstance(scale, (Real, np.floating)) and not isinstance(scale, bool):
        value = np.asarray(scale, dtype=dtype)
    else:
        raise TypeError(f"scale: expected a float or a 0-d array, got {chk.describe(scale)}")
    value = np.ascontiguousarray(value, dtype=dtype).reshape(())
    chk.check_finite("scale", value)
    return value


def _additive_scale(scale: Any, dtype: np.dtype, dim: int) -> Optional[np.ndarray]:
    if scale is None:
        return None
    scale = _same_dtype("scale", scale, dtype)
    return chk.float_input("scale", scale, dtype, (dim,), "(dim,): one weight per query feature")


def _inputs(query: Any, value: Any, key: Any, query_mask: Any, value_mask: Any):
    query = _float3("query", query, None, "(batch, Tq, dim)")
    dtype = query.dtype
    B, Tq, D = query.shape
    value = _float3("value", value, dtype, "(batch, Tv, value_dim)")
    if value.shape[0] != B:
        raise ValueError(f"value: batch size {value.shape[0]} does not match the query's {B}")
    Tv, Dv = int(value.shape[1]), int(value.shape[2])
    if key is None:
        if Dv != D:
            raise ValueError(f"value: without a key, value is the key and its last axis must be the query's dim "
                             f"{D}, got shape {value.shape}")
    else:
        key = _float3("key", key, dtype, "(batch, Tv, dim)")
        if key.shape[0] != B:
            raise ValueError(f"key: batch size {key.shape[0]} does not match the query's {B}")
        if key.shape[1] != Tv:
            raise ValueError(f"key: its length {key.shape[1]} does not match the value's length Tv={Tv} "
                             f"(key and value pair up along axis 1)")
        if key.shape[2] != D:
            raise ValueError(f"key: its last axis {key.shape[2]} does not match the query's dim {D}")
    qm = _mask("query_mask", query_mask, (B, Tq), "(batch, Tq)")
    vm = _mask("value_mask", value_mask, (B, Tv), "(batch, Tv)")
    return query, value, key, qm, vm


def _forward(kind: str, query: Any, value: Any, key: Any, scale: Any, query_mask: Any, value_mask: Any,
             causal: bool) -> Tuple[np.ndarray, np.ndarray, AttentionCache]:
    query, value, key, qm, vm = _inputs(query, value, key, query_mask, value_mask)
    dtype = query.dtype
    s = _dot_scale(scale, dtype) if kind == "dot" else _additive_scale(scale, dtype, int(query.shape[2]))
    causal = bool(causal)
    context, weights, scores = _C.attention_forward(kind, query, key, value, s, qm, vm, causal)
    cache = AttentionCache(kind, query, key, value, s, qm, vm, causal, weights, scores)
    return context, weights, cache


def _backward(kind: str, cache: Any, d_context: Any, d_weights: Any) -> Grads:
    if not isinstance(cache, AttentionCache):
        raise TypeError(f"cache: expected the cache returned by {kind}_attention_forward, got {chk.describe(cache)}")
    if cache.kind != kind:
        raise ValueError(f"cache: comes from {cache.kind}_attention_forward, not {kind}_attention_forward")
    B, Tq, Tv, Dv, dtype = cache.batch, cache.query_steps, cache.value_steps, cache.value_dim, cache.query.dtype
    if d_context is not None:
        d_context = _same_dtype("d_context", d_context, dtype)
        chk.check_shape("d_context", d_context, (B, Tq, Dv), "(batch, Tq, value_dim)")
        chk.check_contiguous("d_context", d_context)
    if d_weights is not None:
        d_weights = _same_dtype("d_weights", d_weights, dtype)
        chk.check_shape("d_weights", d_weights, (B, Tq, Tv), "(batch, Tq, Tv)")
        chk.check_contiguous("d_weights", d_weights)
    # NaN/inf in d_context or d_weights: ValueError from the kernel, which checks as it reads.
    dq, dk, dv, ds = _C.attention_backward(kind, cache.query, cache.key, cache.value, cache.scale, cache.query_mask,
                                           cache.value_mask, cache.causal, cache.weights, cache.scores, d_context,
                                           d_weights)
    return dq, dk, dv, ds


# -- public ops --------------------------------------------------------------------------------
def dot_attention_forward(query: np.ndarray, value: np.ndarray, key: Optional[np.ndarray] = None, *,
                          scale: Any = None, query_mask: Optional[np.ndarray] = None,
                          value_mask: Optional[np.ndarray] = None, causal: bool = False
                          ) -> Tuple[np.ndarray, np.ndarray, AttentionCache]:
    """Dot-product (Luong) attention, as ``keras.layers.Attention(score_mode="dot")``.

    ``scores = scale * query @ key^T`` (B, Tq, Tv); masked keys (``value_mask`` False, or
    ``j > i`` with ``causal``) get no weight; ``weights = softmax(scores)`` over the keys;
    ``context = weights @ value``, zero on rows where ``query_mask`` is False.

    Args: query (B, Tq, D); value (B, Tv, Dv); key (B, Tv, D) or None for the value; scale a
    float or 0-d array (Keras's ``scale`` weight) or None; query_mask (B, Tq) and value_mask
    (B, Tv) boolean or None; causal as Keras's ``use_causal_mask``.
    Returns ``(context (B, Tq, Dv), weights (B, Tq, Tv), cache)``.

    Differences from Keras (see the module docstring): masked keys get exactly zero weight
    (Keras subtracts 1e9 from their scores), and a row with no unmasked key gets zero weights
    and a zero context instead of Keras's uniform weights. Attention dropout is not supported.
    """
    return _forward("dot", query, value, key, scale, query_mask, value_mask, causal)


def dot_attention_backward(cache: AttentionCache, d_context: Optional[np.ndarray],
                           d_weights: Optional[np.ndarray] = None) -> Grads:
    """Gradients of :func:`dot_attention_forward`: ``(d_query, d_key, d_value, d_scale)``.

    d_context (B, Tq, Dv) and d_weights (B, Tq, Tv) may be None (no gradient arrives there).
    d_key is None when the forward had no key (then d_value includes the key's gradient);
    d_scale is a 0-d array, or None when the forward had no scale.
    """
    return _backward("dot", cache, d_context, d_weights)


def additive_attention_forward(query: np.ndarray, value: np.ndarray, key: Optional[np.ndarray] = None, *,
                               scale: Optional[np.ndarray] = None, query_mask: Optional[np.ndarray] = None,
                               value_mask: Optional[np.ndarray] = None, causal: bool = False
                               ) -> Tuple[np.ndarray, np.ndarray, AttentionCache]:
    """Additive (Bahdanau) attention, as ``keras.layers.AdditiveAttention``.

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])``, then the same
    masked softmax and context as :func:`dot_attention_forward` (same masks, same deviations
    from Keras: exact zero weight for masked keys, zeros for fully masked rows).

    Args: query (B, Tq, D); value (B, Tv, Dv); key (B, Tv, D) or None for the value; scale
    (D,) (Keras's ``use_scale=True`` weight) or None for no scaling; query_mask (B, Tq),
    value_mask (B, Tv), causal as for the dot form.
    Returns ``(context (B, Tq, Dv), weights (B, Tq, Tv), cache)``. The (B, Tq, Tv, D) tanh
    terms are never stored: the backward pass recomputes them.
    """
    return _forward("additive", query, value, key, scale, query_mask, value_mask, causal)


def additive_attention_backward(cache: AttentionCache, d_context: Optional[np.ndarray],
                                d_weights: Optional[np.ndarray] = None) -> Grads:
    """Gradients of :func:`additive_attention_forward`: ``(d_query, d_key, d_value, d_scale)``.

    As :func:`dot_attention_backward`; d_scale has shape (D,).
    """
    return _backward("additive", cache, d_context, d_weights)


# -- dense projection (BahdanauAttention's W1, W2) ---------------------------------------------
def dense_forward(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray] = None, *,
                  checked: Optional[CheckedWeights] = None, packed: Optional[PackedDense] = None) -> np.ndarray:
    """``x @ kernel + bias`` for x (..., I), kernel (I, U), bias (U,) or None; on fusedrnn's threads.

    ``checked``: a :class:`fusedrnn.ops.CheckedWeights` that checks kernel and bias for NaN and
    inf once per version instead of on every call (x is checked on every call either way).
    ``packed``: a :class:`fusedrnn.ops.PackedDense` that keeps the kernel packed between calls
    (checked when packed), for calls of few rows (up to 16; bfloat16: any)."""
    x = chk.check_float("x", x)
    if x.ndim < 1 or x.shape[-1] == 0 or x.size == 0:
        raise ValueError(f"x: expected an array of shape (..., features) with no empty axis, got {x.shape}")
    chk.check_contiguous("x", x)
    chk.check_finite("x", x)
    kernel = chk.check_float("kernel", kernel, x.dtype)
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[-1] or kernel.shape[1] == 0:
        raise ValueError(f"kernel: expected shape ({x.shape[-1]}, units), got {kernel.shape}")
    every_call = checked is None
    kernel = chk.float_input("kernel", kernel, x.dtype, kernel.shape, finite=every_call and packed is None)
    if bias is not None:
        bias = chk.float_input("bias", bias, x.dtype, (kernel.shape[1],), "(units,)", finite=every_call)
    if not every_call:
        checked = check_checked(checked)
        if packed is None:
            checked.check("kernel", kernel)
        checked.check("bias", bias)
    handle = None if packed is None else check_packed_dense(packed).handle(kernel)  # checks the kernel when packing
    y = _C.dense_forward(x.reshape(-1, x.shape[-1]), kernel, bias, handle)
    return y.reshape(*x.shape[:-1], kernel.shape[1])


def dense_backward(x: np.ndarray, kernel: np.ndarray, dy: np.ndarray, with_bias: bool = False, *,
                   input_grad: bool = True, weight_grad: bool = True
                   ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`dense_forward`: ``(dx (..., I), d_kernel (I, U), d_bias (U,) or None)``.

    ``input_grad=False`` skips dx and ``weight_grad=False`` d_kernel (None in their place): a
    layer applied at every step of a loop can take dx per step and d_kernel once, over the rows of
    all the steps stacked."""
    x = chk.check_float("x", x)
    kernel = chk.check_float("kernel", kernel, x.dtype)
    if x.ndim < 1 or kernel.ndim != 2 or kernel.shape[0] != x.shape[-1]:
        raise ValueError(f"kernel: expected shape ({x.shape[-1] if x.ndim else '?'}, units), got {kernel.shape}")
    chk.check_contiguous("x", x)
    chk.check_contiguous("kernel", kernel)
    dy = chk.check_float("dy", dy, x.dtype)
    chk.check_shape("dy", dy, (*x.shape[:-1], kernel.shape[1]), "(..., units)")
    chk.check_contiguous("dy", dy)
    chk.check_finite("dy", dy)
    input_grad = chk.check_flag("input_grad", input_grad)
    weight_grad = chk.check_flag("weight_grad", weight_grad)
    rows = x.reshape(-1, x.shape[-1])
    dx, dk, db = _C.dense_backward(rows, kernel, dy.reshape(rows.shape[0], kernel.shape[1]), bool(with_bias),
                                   input_grad, weight_grad)
    return (None if dx is None else dx.reshape(x.shape)), dk, db
