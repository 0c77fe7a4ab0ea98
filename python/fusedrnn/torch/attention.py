"""Attention modules for PyTorch on fusedrnn's attention kernels.

* :class:`LuongAttention`: dot-product attention, ``keras.layers.Attention(score_mode="dot")``
  (optional learnable scalar ``scale``).
* :class:`AdditiveAttention`: ``keras.layers.AdditiveAttention`` (learnable ``scale`` (dim,)).
* :class:`BahdanauAttention`: encoder-decoder additive attention with its projections
  ``v^T tanh(W1 q + W2 h)``, as :class:`fusedrnn.layers.BahdanauAttention`.

Every module returns ``(context, weights)``. Masks are boolean, True = keep; masked keys get
exactly zero weight and a row with no key left gets zero weights and a zero context (see
:mod:`fusedrnn.ops.attention`). The kernels run on the CPU; modules whose parameters or inputs
are elsewhere (:attr:`fused` False) compute the same formulas with torch operations.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from fusedrnn.torch import attention_ops
from fusedrnn.torch._arrays import FLOAT_DTYPES

__all__ = ["AdditiveAttention", "BahdanauAttention", "LuongAttention"]


def _attention_in_torch(kind: str, query: Tensor, value: Tensor, key: Optional[Tensor], scale: Optional[Tensor],
                        query_mask: Optional[Tensor], value_mask: Optional[Tensor], causal: bool
                        ) -> Tuple[Tensor, Tensor]:
    """The kernels' formulas in torch operations (for tensors the kernels cannot take)."""
    key = value if key is None else key
    if kind == "dot":
        scores = query @ key.transpose(1, 2)
        if scale is not None:
            scores = scores * scale
    else:
        terms = torch.tanh(query[:, :, None, :] + key[:, None, :, :])
        scores = terms.sum(-1) if scale is None else terms @ scale
    B, Tq, Tv = scores.shape
    allowed = torch.ones((B, Tq, Tv), dtype=torch.bool, device=scores.device)
    if value_mask is not None:
        allowed = allowed & value_mask[:, None, :]
    if causal:
        allowed = allowed & torch.ones((Tq, Tv), dtype=torch.bool, device=scores.device).tril()
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    weights = torch.where(allowed.any(-1, keepdim=True), weights, torch.zeros_like(weights))
    context = weights @ value
    if query_mask is not None:
        context = context * query_mask[..., None]
    return context, weights


class _Attention(nn.Module):
    """Shared by LuongAttention and AdditiveAttention: the call and the choice of path."""

    _kind = "dot"
    scale: Optional[nn.Parameter]

    @property
    def fused(self) -> bool:
        """Whether the kernels run (float32/float64 parameters on the CPU; inputs must be too)."""
        return all(p.device.type == "cpu" and p.dtype in FLOAT_DTYPES for p in self.parameters())

    def forward(self, query: Tensor, value: Tensor, key: Optional[Tensor] = None, query_mask: Optional[Tensor] = None,
                value_mask: Optional[Tensor] = None, causal: bool = False) -> Tuple[Tensor, Tensor]:
        """query (B, Tq, D), value (B, Tv, Dv), key (B, Tv, D) or None (the value is the key);
        query_mask (B, Tq), value_mask (B, Tv) bool; causal: key j is seen by query i only if j <= i.
        Returns ``(context (B, Tq, Dv), weights (B, Tq, Tv))``."""
        on_cpu = isinstance(query, Tensor) and query.device.type == "cpu" and query.dtype in FLOAT_DTYPES
        if self.fused and on_cpu:
            op = attention_ops.dot_attention if self._kind == "dot" else attention_ops.additive_attention
            return op(query, value, key, scale=self.scale, query_mask=query_mask, value_mask=value_mask,
                      causal=causal)
        return _attention_in_torch(self._kind, query, value, key, self.scale, query_mask, value_mask, causal)


class LuongAttention(_Attention):
    """Dot-product (Luong) attention, ``keras.layers.Attention(score_mode="dot")``.

    ``weights = softmax(scale * query @ key^T)`` over the allowed keys, ``context = weights @ value``.
    With ``use_scale=True`` the module has one parameter, ``scale`` of shape (), initialised to 1.
    """

    def __init__(self, use_scale: bool = False, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.use_scale = bool(use_scale)
        self.scale = nn.Parameter(torch.ones((), device=device, dtype=dtype)) if use_scale else None

    def extra_repr(self) -> str:
        return f"use_scale={self.use_scale}"


class AdditiveAttention(_Attention):
    """Additive attention, ``keras.layers.AdditiveAttention``.

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])``; query and key have
    ``dim`` features. With ``use_scale=True`` (the default, as in Keras) the module has one
    parameter, ``scale`` (dim,), Glorot-uniform initialised as Keras does (bound sqrt(3 / dim)).
    """

    _kind = "additive"

    def __init__(self, dim: int, use_scale: bool = True, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim: expected a positive integer, got {dim!r}")
        self.dim = dim
        self.use_scale = bool(use_scale)
        self.scale = nn.Parameter(torch.empty((dim,), device=device, dtype=dtype)) if use_scale else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.scale is not None:
            bound = math.sqrt(3.0 / self.dim)
            nn.init.uniform_(self.scale, -bound, bound)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, use_scale={self.use_scale}"


class BahdanauAttention(nn.Module):
    """Encoder-decoder additive attention (Bahdanau et al., 2015) with its projections.

    ``e_ij = v^T tanh(W1 q_i + W2 h_j [+ b])``, ``a_ij = softmax_j(e_ij)`` over unmasked j,
    ``c_i = sum_j a_ij h_j``. Parameters: ``query_proj`` (Linear query_size -> units, with the bias
    ``b`` when ``bias=True``), ``key_proj`` (Linear value_size -> units, no bias) and ``v`` (units,);
    Glorot-uniform weights and zero bias, as :class:`fusedrnn.layers.BahdanauAttention`. The score
    is the additive attention kernel on the projected query and keys with ``scale = v``.
    """

    def __init__(self, query_size: int, value_size: int, units: int, bias: bool = False,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        for name, n in (("query_size", query_size), ("value_size", value_size), ("units", units)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"{name}: expected a positive integer, got {n!r}")
        self.units = units
        self.query_proj = nn.Linear(query_size, units, bias=bias, device=device, dtype=dtype)
        self.key_proj = nn.Linear(value_size, units, bias=False, device=device, dtype=dtype)
        self.v = nn.Parameter(torch.empty((units,), device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.query_proj.weight)
        nn.init.xavier_uniform_(self.key_proj.weight)
        if self.query_proj.bias is not None:
            nn.init.zeros_(self.query_proj.bias)
        bound = math.sqrt(6.0 / (self.units + 1))  # v is a Dense(1) kernel (units, 1)
        nn.init.uniform_(self.v, -bound, bound)

    @property
    def fused(self) -> bool:
        """Whether the attention kernel runs (float32/float64 parameters on the CPU)."""
        return all(p.device.type == "cpu" and p.dtype in FLOAT_DTYPES for p in self.parameters())

    def project_keys(self, values: Tensor) -> Tensor:
        """``W2 h_j`` for every encoder output (B, Tv, units): compute once, reuse at every decoder step."""
        return self.key_proj(values)

    def forward(self, query: Tensor, values: Tensor, value_mask: Optional[Tensor] = None,
                query_mask: Optional[Tensor] = None, projected_keys: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor]:
        """query (B, query_size) (one decoder step) or (B, Tq, query_size); values (B, Tv, value_size);
        value_mask (B, Tv) and, for a 3-D query, query_mask (B, Tq), bool; projected_keys from
        :meth:`project_keys` or None. Returns ``(context, weights)``: (B, value_size), (B, Tv) for
        a 2-D query; (B, Tq, value_size), (B, Tq, Tv) for a 3-D one."""
        if not isinstance(query, Tensor) or query.dim() not in (2, 3):
            shape = tuple(query.shape) if isinstance(query, Tensor) else type(query).__name__
            raise ValueError(f"query: expected (batch, query_size) or (batch, Tq, query_size), got {shape}")
        step = query.dim() == 2
        if step and query_mask is not None:
            raise ValueError("query_mask: only for a 3-D query (batch, Tq, query_size)")
        q3 = query[:, None, :] if step else query
        keys = self.project_keys(values) if projected_keys is None else projected_keys
        pq = self.query_proj(q3)
        if self.fused and pq.device.type == "cpu":
            context, weights = attention_ops.additive_attention(pq, values, keys, scale=self.v, query_mask=query_mask,
                                                                value_mask=value_mask)
        else:
            context, weights = _attention_in_torch("additive", pq, values, keys, self.v, query_mask, value_mask, False)
        if step:
            return context[:, 0], weights[:, 0]
        return context, weights

    def extra_repr(self) -> str:
        return f"units={self.units}"
