"""fusedrnn's attention ops as PyTorch operators: ``torch.ops.fusedrnn.{dot,additive}_attention_{forward,backward}``.

Custom ops with fake implementations and registered gradients, as in
:mod:`fusedrnn.torch.recurrent_ops`; the differentiable entry points are :func:`dot_attention`
and :func:`additive_attention`. Semantics are those of :mod:`fusedrnn.ops.attention` (Keras's
``Attention(score_mode="dot")`` and ``AdditiveAttention``): query (B, Tq, D), value (B, Tv, Dv),
key (B, Tv, D) or None for the value, query_mask (B, Tq) and value_mask (B, Tv) bool (True =
keep), ``causal``; scale a 0-d tensor (dot) or a (D,) tensor (additive), or None. float32 or
float64 CPU tensors (the attention kernels have no CUDA version: CUDA tensors raise).

The forward ops return ``(context (B, Tq, Dv), weights (B, Tq, Tv), scores)``: ``scores`` is what
the dot form's backward op needs (the unscaled ``query . key``, (B, Tq, Tv)); the additive form
returns an empty (0,) tensor there. The backward ops return ``(d_query, d_key, d_value, d_scale)``
with empty (0,) tensors for ``d_key`` without a key (its gradient is then in ``d_value``) and for
``d_scale`` without a scale. Double backward is not supported.
"""

from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from fusedrnn import ops as np_ops
from fusedrnn.ops import AttentionCache
from fusedrnn.torch import _arrays as arr
from fusedrnn.torch._eager import eager as _eager

__all__ = ["additive_attention", "additive_attention_backward", "additive_attention_forward", "dot_attention",
           "dot_attention_backward", "dot_attention_forward"]

_NAMES = ("query", "value", "key", "scale", "query_mask", "value_mask")


def _host(named: Tuple[Tuple[str, Optional[Tensor]], ...]) -> list:
    if not arr.all_on_cpu([t for _, t in named]) and arr.check_device(list(named)):
        raise RuntimeError(f"{named[0][0]}: is a CUDA tensor, but fusedrnn's attention kernels run on the CPU only; "
                           "move the tensors to the CPU")
    return [arr.to_host(name, t) for name, t in named]


# One implementation for both paths: the registered operators below (what torch.compile traces)
# and the eager autograd.Function (_Attention) call these two functions.
def _run_forward(kind: str, query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                 query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool
                 ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(context, weights, scores); scores None for the additive form."""
    q, v, k, s, qm, vm = _host(tuple(zip(_NAMES, (query, value, key, scale, query_mask, value_mask))))
    forward = np_ops.dot_attention_forward if kind == "dot" else np_ops.additive_attention_forward
    context, weights, cache = forward(q, v, k, scale=s, query_mask=qm, value_mask=vm, causal=causal)
    scores = None if cache.scores is None else torch.from_numpy(cache.scores)
    return torch.from_numpy(context), torch.from_numpy(weights), scores


def _run_backward(kind: str, query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                  query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool, weights: Tensor,
                  scores: Optional[Tensor], d_context: Optional[Tensor], d_weights: Optional[Tensor]
                  ) -> Tuple[Optional[Tensor], ...]:
    """(d_query, d_key, d_value, d_scale); None for d_key without a key and d_scale without a scale."""
    names = _NAMES + ("weights", "scores", "d_context", "d_weights")
    a = _host(tuple(zip(names, (query, value, key, scale, query_mask, value_mask, weights,
                                arr.none_if_empty(scores), d_context, d_weights))))
    q, v, k, s, qm, vm, w, sc, dc, dw = a
    # The cache holds what the forward op hands its kernel: uint8 masks.
    qm = None if qm is None else qm.view(np.uint8)
    vm = None if vm is None else vm.view(np.uint8)
    cache = AttentionCache(kind, q, k, v, s, qm, vm, bool(causal), w, sc)
    backward = np_ops.dot_attention_backward if kind == "dot" else np_ops.additive_attention_backward
    return tuple(None if g is None else torch.from_numpy(g) for g in backward(cache, dc, dw))


def _fake_forward(kind: str, query: Tensor, value: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    B, Tq, Tv, Dv = query.shape[0], query.shape[1], value.shape[1], value.shape[2]
    scores = query.new_empty((B, Tq, Tv)) if kind == "dot" else query.new_empty((0,))
    return query.new_empty((B, Tq, Dv)), query.new_empty((B, Tq, Tv)), scores


def _fake_backward(query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor]
                   ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    dk = query.new_empty((0,)) if key is None else torch.empty_like(key)
    ds = query.new_empty((0,)) if scale is None else torch.empty_like(scale)
    return torch.empty_like(query), dk, torch.empty_like(value), ds


@torch.library.custom_op("fusedrnn::dot_attention_forward", mutates_args=())
def dot_attention_forward(query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                          query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool
                          ) -> Tuple[Tensor, Tensor, Tensor]:
    """Dot-product (Luong) attention forward: ``(context, weights, scores)``."""
    return arr.empty_for_none(query, _run_forward("dot", query, value, key, scale, query_mask, value_mask, causal))


@torch.library.custom_op("fusedrnn::additive_attention_forward", mutates_args=())
def additive_attention_forward(query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                               query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool
                               ) -> Tuple[Tensor, Tensor, Tensor]:
    """Additive (Bahdanau) attention forward: ``(context, weights, empty)``."""
    return arr.empty_for_none(query, _run_forward("additive", query, value, key, scale, query_mask, value_mask, causal))


@torch.library.custom_op("fusedrnn::dot_attention_backward", mutates_args=())
def dot_attention_backward(query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                           query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool, weights: Tensor,
                           scores: Tensor, d_context: Optional[Tensor], d_weights: Optional[Tensor]
                           ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dot-product attention backward: ``(d_query, d_key, d_value, d_scale)``."""
    return arr.empty_for_none(query, _run_backward("dot", query, value, key, scale, query_mask, value_mask, causal, weights,
                                        scores, d_context, d_weights))


@torch.library.custom_op("fusedrnn::additive_attention_backward", mutates_args=())
def additive_attention_backward(query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                                query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool,
                                weights: Tensor, scores: Tensor, d_context: Optional[Tensor],
                                d_weights: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Additive attention backward: ``(d_query, d_key, d_value, d_scale)``."""
    return arr.empty_for_none(query, _run_backward("additive", query, value, key, scale, query_mask, value_mask, causal,
                                        weights, scores, d_context, d_weights))


@dot_attention_forward.register_fake
def _(query, value, key, scale, query_mask, value_mask, causal):
    return _fake_forward("dot", query, value)


@additive_attention_forward.register_fake
def _(query, value, key, scale, query_mask, value_mask, causal):
    return _fake_forward("additive", query, value)


@dot_attention_backward.register_fake
def _(query, value, key, scale, *args):
    return _fake_backward(query, value, key, scale)


@additive_attention_backward.register_fake
def _(query, value, key, scale, *args):
    return _fake_backward(query, value, key, scale)


def _autograd(backward_op: Any) -> Tuple[Any, Any]:
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
        query, value, key, scale, query_mask, value_mask, causal = inputs
        _, weights, scores = output
        ctx.mark_non_differentiable(scores)
        ctx.save_for_backward(query, value, key, scale, query_mask, value_mask, weights, scores)
        ctx.causal = causal

    def backward(ctx: Any, d_context: Optional[Tensor], d_weights: Optional[Tensor], _d_scores: Any
                 ) -> Tuple[Optional[Tensor], ...]:
        query, value, key, scale, query_mask, value_mask, weights, scores = ctx.saved_tensors
        dq, dk, dv, ds = backward_op(query, value, key, scale, query_mask, value_mask, ctx.causal, weights, scores,
                                     d_context, d_weights)
        return (dq, dv, None if key is None else dk, None if scale is None else ds, None, None, None)

    return setup_context, backward


for _fwd, _bwd in ((dot_attention_forward, dot_attention_backward),
                   (additive_attention_forward, additive_attention_backward)):
    _setup, _backward = _autograd(_bwd)
    _fwd.register_autograd(_backward, setup_context=_setup)


class _Attention(torch.autograd.Function):
    """A forward op and its registered backward as a plain autograd.Function, for eager calls (no
    custom-op dispatch); it runs :func:`_run_forward` and :func:`_run_backward`, as the operators do."""

    @staticmethod
    def forward(ctx: Any, kind: str, causal: bool, query: Tensor, value: Tensor, key: Optional[Tensor],
                scale: Optional[Tensor], query_mask: Optional[Tensor], value_mask: Optional[Tensor]
                ) -> Tuple[Tensor, Tensor]:
        context, weights, scores = _run_forward(kind, query, value, key, scale, query_mask, value_mask, causal)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(query, value, key, scale, query_mask, value_mask, weights)
        ctx.kind, ctx.causal, ctx.scores = kind, causal, scores
        return context, weights

    @staticmethod
    def backward(ctx: Any, d_context: Optional[Tensor], d_weights: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        if d_context is None and d_weights is None:
            return (None,) * 8
        query, value, key, scale, query_mask, value_mask, weights = ctx.saved_tensors
        dq, dk, dv, ds = _run_backward(ctx.kind, query, value, key, scale, query_mask, value_mask, ctx.causal, weights,
                                       ctx.scores, d_context, d_weights)
        need = ctx.needs_input_grad
        return (None, None, dq if need[2] else None, dv if need[3] else None, dk if need[4] else None,
                ds if need[5] else None, None, None)


def _attention(kind: str, operator: Any, query: Any, value: Any, key: Any, scale: Any, query_mask: Any,
               value_mask: Any, causal: bool) -> Tuple[Tensor, Tensor]:
    """(context, weights): eagerly through _Attention (or straight through :func:`_run_forward`
    when nothing needs a gradient), else (torch.compile, dispatch modes) through the operator."""
    tensors = (query, value, key, scale, query_mask, value_mask)
    for name, t in zip(_NAMES, tensors):
        arr.require_tensor(name, t, optional=name not in ("query", "value"))
        if t is not None and not name.endswith("mask"):
            arr.require_float(name, t)
    if _eager(tensors):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors[:4]):
            return _Attention.apply(kind, causal, *tensors)
        return _run_forward(kind, query, value, key, scale, query_mask, value_mask, causal)[:2]
    context, weights, _ = operator(query, value, key, scale, query_mask, value_mask, causal)
    return context, weights


def dot_attention(query: Tensor, value: Tensor, key: Optional[Tensor] = None, *, scale: Any = None,
                  query_mask: Optional[Tensor] = None, value_mask: Optional[Tensor] = None, causal: bool = False
                  ) -> Tuple[Tensor, Tensor]:
    """Dot-product (Luong) attention with autograd: ``(context (B, Tq, Dv), weights (B, Tq, Tv))``.

    ``weights = softmax(scale * query @ key^T)`` over the unmasked keys, ``context = weights @ value``
    (zero on rows where query_mask is False). scale: a 0-d tensor (learnable), a float, or None.
    """
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        scale = torch.tensor(float(scale), dtype=getattr(query, "dtype", torch.float32))
    return _attention("dot", dot_attention_forward, query, value, key, scale, query_mask, value_mask, bool(causal))


def additive_attention(query: Tensor, value: Tensor, key: Optional[Tensor] = None, *, scale: Optional[Tensor] = None,
                       query_mask: Optional[Tensor] = None, value_mask: Optional[Tensor] = None,
                       causal: bool = False) -> Tuple[Tensor, Tensor]:
    """Additive (Bahdanau) attention with autograd: ``(context (B, Tq, Dv), weights (B, Tq, Tv))``.

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])`` (scale (D,) or None
    for ones), then the masked softmax and weighted sum of :func:`dot_attention`.
    """
    return _attention("additive", additive_attention_forward, query, value, key, scale, query_mask, value_mask,
                      bool(causal))
