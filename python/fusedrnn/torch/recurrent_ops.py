"""fusedrnn's recurrent ops as PyTorch operators: ``torch.ops.fusedrnn.{rnn,lstm,gru}_{forward,backward}``.

Each op is a ``torch.library.custom_op`` with a fake (meta) implementation, so ``torch.compile``
traces through it without a graph break, and each forward op has its backward op registered as
its gradient (``torch.library.register_autograd``). The differentiable entry points are
:func:`rnn`, :func:`lstm` and :func:`gru`; the ``*_forward``/``*_backward`` ops are their parts.

Layout, gate order, masks and dropout masks are those of :mod:`fusedrnn.ops.recurrent` (Keras's):
``x`` (B, T, I) float, or integer ids (B, T) standing for one-hot rows of the kernel (CPU only);
``h0``/``c0`` (B, H) or None for zeros; ``kernel`` (I, G*H); ``recurrent_kernel`` (H, G*H);
``bias`` (G*H,), or (2, 3H) for the GRU with ``reset_after=True``; ``mask`` (B, T) bool;
``dropout_mask`` (B, I) or (G, B, I) and ``recurrent_dropout_mask`` (B, H) or (G, B, H), already
scaled. float32 or float64, every tensor on one device. LSTM gates i, f, c, o; GRU z, r, h.

The forward ops also return what their backward op needs (the step gates, the state entering
every step and the LSTM cell state or GRU candidate term, (B, T, ...)); with ``keep_cache=False``
(inference) these are empty (0,) tensors and the kernels keep O(B*H) memory instead of O(B*T*G*H).
The backward ops return an empty (0,) tensor where the NumPy op returns None (``dx`` for integer
ids). Double backward is not supported.

Eager calls of :func:`rnn`, :func:`lstm` and :func:`gru` (no torch.compile, no dispatch mode,
plain tensors) skip the operators: an ``autograd.Function`` runs the same :func:`_run_forward` and
:func:`_run_backward` and keeps the kernels' cache itself (see :mod:`fusedrnn.torch._eager`).
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from fusedrnn import ops as np_ops
from fusedrnn.ops import PackedWeights, RecurrentCache
from fusedrnn.ops._recurrent_cache import GATES
from fusedrnn.torch import _arrays as arr
from fusedrnn.torch._eager import eager as _eager
from fusedrnn.torch._weights import MappedWeights

__all__ = ["gru", "gru_backward", "gru_forward", "lstm", "lstm_backward", "lstm_forward", "rnn", "rnn_backward",
           "rnn_forward"]

_NAMES = ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias", "mask", "dropout_mask", "recurrent_dropout_mask")
_WEIGHTS = ("kernel", "recurrent_kernel", "bias")


# -- what the ops run ----------------------------------------------------------------------------
# One implementation for both paths: the registered operators below (what torch.compile traces)
# and the eager autograd.Function (_Recurrent) call these two functions.
def _arrays(names: Tuple[str, ...], tensors: Tuple[Optional[Tensor], ...]) -> Tuple[bool, list]:
    """(on CUDA, the tensors as the kernels read them): NumPy views on the CPU, detached
    contiguous tensors on CUDA."""
    if arr.all_on_cpu(tensors):
        return False, [arr.to_host(name, t) for name, t in zip(names, tensors)]
    if arr.check_device(list(zip(names, tensors))):
        return True, [arr.on_device(t) for t in tensors]
    return False, [arr.to_host(name, t) for name, t in zip(names, tensors)]  # pragma: no cover - check_device raised


def _tensors(results: Tuple[Any, ...]) -> Tuple[Optional[Tensor], ...]:
    """The kernels' results as tensors: NumPy arrays as tensors over the same memory, CUDA
    tensors as they are, None as None."""
    return tuple(torch.from_numpy(r) if isinstance(r, np.ndarray) else r for r in results)


def _run_forward(cell: str, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor,
                 recurrent_kernel: Tensor, bias: Tensor, mask: Optional[Tensor], go_backwards: bool,
                 activation: str, reset_after: bool, dropout_mask: Optional[Tensor],
                 recurrent_dropout_mask: Optional[Tensor], keep_cache: bool, packed: Optional[PackedWeights] = None
                 ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[RecurrentCache]]:
    """(outputs, h_last, c_last or None, the kernels' cache for :func:`_run_backward` or None).
    ``packed``: the weights' packed copy, when kernel and recurrent_kernel are the NumPy arrays it
    was packed from (fusedrnn.torch's modules in inference)."""
    cuda, a = _arrays(_NAMES, (x, h0, c0, kernel, recurrent_kernel, bias, mask, dropout_mask, recurrent_dropout_mask))
    options: Dict[str, Any] = dict(mask=a[6], go_backwards=go_backwards, dropout_mask=a[7],
                                   recurrent_dropout_mask=a[8], keep_cache=keep_cache)
    if packed is not None:
        options["packed"] = packed
    c_last = None
    if cell == "lstm":
        outputs, h_last, c_last, cache = np_ops.lstm_forward(a[0], a[1], a[2], a[3], a[4], a[5], **options)
    elif cell == "gru":
        outputs, h_last, cache = np_ops.gru_forward(a[0], a[1], a[3], a[4], a[5], reset_after=reset_after, **options)
    else:
        outputs, h_last, cache = np_ops.rnn_forward(a[0], a[1], a[3], a[4], a[5], activation=activation, **options)
    outputs, h_last, c_last = _tensors((outputs, h_last, c_last))
    return outputs, h_last, c_last, cache


def _run_backward(cell: str, cache: RecurrentCache, d_outputs: Optional[Tensor], d_h_last: Optional[Tensor],
                  d_c_last: Optional[Tensor], gate_major: bool = False) -> Tuple[Optional[Tensor], ...]:
    """(dx, dh0, dc0, d_kernel, d_recurrent_kernel, d_bias) from a forward's cache; None where there
    is nothing (dx for integer ids, dc0 but for the LSTM). With `gate_major` the weight gradients
    are transposed, (G*H, I) and (G*H, H), contiguous: torch.nn's layout, which the CPU kernels
    write directly."""
    cuda, d = _arrays(("d_outputs", "d_h_last", "d_c_last"), (d_outputs, d_h_last, d_c_last))
    layout = dict(gate_major=gate_major and not cuda)
    if cell == "lstm":
        dx, dh0, dc0, dk, drk, db = np_ops.lstm_backward(cache, d[0], d[1], d[2], **layout)
    elif cell == "gru":
        (dx, dh0, dk, drk, db), dc0 = np_ops.gru_backward(cache, d[0], d[1], **layout), None
    else:
        (dx, dh0, dk, drk, db), dc0 = np_ops.rnn_backward(cache, d[0], d[1], **layout), None
    results = _tensors((dx, dh0, dc0, dk, drk, db))
    if gate_major and cuda:
        results = results[:3] + (results[3].t().contiguous(), results[4].t().contiguous(), results[5])
    return results


def _forward_op(cell: str, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor,
                recurrent_kernel: Tensor, bias: Tensor, mask: Optional[Tensor], go_backwards: bool, activation: str,
                reset_after: bool, dropout_mask: Optional[Tensor], recurrent_dropout_mask: Optional[Tensor],
                keep_cache: bool) -> Tuple[Tensor, ...]:
    """What a forward operator returns: (outputs, h_last, c_last, gates, hprev, aux), the last
    three being the cache's arrays as tensors; (0,) tensors where there is nothing."""
    outputs, h_last, c_last, cache = _run_forward(cell, x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards,
                                                  activation, reset_after, dropout_mask, recurrent_dropout_mask,
                                                  keep_cache)
    saved = (None, None, None) if cache is None else _tensors((cache.gates, cache.hprev, cache.aux))
    return arr.empty_for_none(kernel, (outputs, h_last, c_last) + saved)


def _backward_op(cell: str, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor,
                 recurrent_kernel: Tensor, bias: Tensor, mask: Optional[Tensor], go_backwards: bool,
                 activation: str, reset_after: bool, dropout_mask: Optional[Tensor],
                 recurrent_dropout_mask: Optional[Tensor], gates: Tensor, hprev: Tensor, aux: Optional[Tensor],
                 d_outputs: Optional[Tensor], d_h_last: Optional[Tensor], d_c_last: Optional[Tensor]
                 ) -> Tuple[Tensor, ...]:
    """What a backward operator returns: the cache rebuilt from the forward operator's inputs and
    results, then :func:`_run_backward`; (0,) tensors where there is nothing."""
    if gates.dim() == 1:
        raise RuntimeError(f"gates: empty: {cell}_forward ran with keep_cache=False, which keeps nothing for a "
                           "backward pass")
    B, H = int(x.shape[0]), int(recurrent_kernel.shape[0])
    h0 = kernel.new_zeros((B, H)) if h0 is None else h0
    if cell == "lstm" and c0 is None:
        c0 = kernel.new_zeros((B, H))
    names = _NAMES + ("gates", "hprev", "aux")
    cuda, a = _arrays(names, (x, h0, c0, kernel, recurrent_kernel, bias, mask, dropout_mask, recurrent_dropout_mask,
                              gates, hprev, arr.none_if_empty(aux)))
    if not cuda:
        # The host cache holds what the CPU forward op hands its kernel: int32 ids, a uint8 mask and
        # (n, B, width) dropout masks.
        if not np.issubdtype(a[0].dtype, np.floating):
            a[0] = np.ascontiguousarray(a[0], dtype=np.int32)
        if a[6] is not None:
            a[6] = a[6].view(np.uint8)
        for k in (7, 8):
            if a[k] is not None and a[k].ndim == 2:
                a[k] = a[k].reshape(1, *a[k].shape)
    cache = RecurrentCache(cell, activation, bool(reset_after), bool(go_backwards), *a)
    return arr.empty_for_none(kernel, _run_backward(cell, cache, d_outputs, d_h_last, d_c_last))


def _fake_forward(cell: str, x: Tensor, kernel: Tensor, keep_cache: bool) -> Tuple[Tensor, ...]:
    B, T = x.shape[0], x.shape[1]
    GH = kernel.shape[1]
    H = GH // GATES[cell]
    state = kernel.new_empty((B, H))
    saved = (kernel.new_empty((B, T, GH)), kernel.new_empty((B, T, H)), kernel.new_empty((B, T, H)))
    if not keep_cache:
        saved = tuple(kernel.new_empty((0,)) for _ in saved)
    return (kernel.new_empty((B, T, H)), state, kernel.new_empty((B, H))) + saved


def _fake_backward(x: Tensor, kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor) -> Tuple[Tensor, ...]:
    B, H = x.shape[0], recurrent_kernel.shape[0]
    dx = torch.empty_like(x) if x.is_floating_point() else kernel.new_empty((0,))
    return (dx, kernel.new_empty((B, H)), kernel.new_empty((B, H)), torch.empty_like(kernel),
            torch.empty_like(recurrent_kernel), torch.empty_like(bias))


# -- the operators ---------------------------------------------------------------------------------
@torch.library.custom_op("fusedrnn::rnn_forward", mutates_args=())
def rnn_forward(x: Tensor, h0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor,
                mask: Optional[Tensor], go_backwards: bool, activation: str, dropout_mask: Optional[Tensor],
                recurrent_dropout_mask: Optional[Tensor], keep_cache: bool
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """SimpleRNN forward: ``(outputs (B, T, H), h_last (B, H), gates, hprev)``."""
    out, h, _, g, hp, _ = _forward_op("rnn", x, h0, None, kernel, recurrent_kernel, bias, mask,
                                      go_backwards, activation, True, dropout_mask,
                                      recurrent_dropout_mask, keep_cache)
    return out, h, g, hp


@torch.library.custom_op("fusedrnn::lstm_forward", mutates_args=())
def lstm_forward(x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor,
                 bias: Tensor, mask: Optional[Tensor], go_backwards: bool, dropout_mask: Optional[Tensor],
                 recurrent_dropout_mask: Optional[Tensor], keep_cache: bool
                 ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """LSTM forward: ``(outputs (B, T, H), h_last (B, H), c_last (B, H), gates, hprev, cell states)``."""
    return _forward_op("lstm", x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards, "tanh",
                       True, dropout_mask, recurrent_dropout_mask, keep_cache)


@torch.library.custom_op("fusedrnn::gru_forward", mutates_args=())
def gru_forward(x: Tensor, h0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor,
                mask: Optional[Tensor], go_backwards: bool, reset_after: bool, dropout_mask: Optional[Tensor],
                recurrent_dropout_mask: Optional[Tensor], keep_cache: bool
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """GRU forward: ``(outputs (B, T, H), h_last (B, H), gates, hprev, candidate terms)``."""
    out, h, _, g, hp, aux = _forward_op("gru", x, h0, None, kernel, recurrent_kernel, bias, mask,
                                        go_backwards, "tanh", reset_after, dropout_mask,
                                        recurrent_dropout_mask, keep_cache)
    return out, h, g, hp, aux


@torch.library.custom_op("fusedrnn::rnn_backward", mutates_args=())
def rnn_backward(x: Tensor, h0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor,
                 mask: Optional[Tensor], go_backwards: bool, activation: str, dropout_mask: Optional[Tensor],
                 recurrent_dropout_mask: Optional[Tensor], gates: Tensor, hprev: Tensor, d_outputs: Optional[Tensor],
                 d_h_last: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """SimpleRNN backward: ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``."""
    dx, dh0, _, dk, drk, db = _backward_op("rnn", x, h0, None, kernel, recurrent_kernel, bias, mask,
                                           go_backwards, activation, True, dropout_mask,
                                           recurrent_dropout_mask, gates, hprev, None, d_outputs,
                                           d_h_last, None)
    return dx, dh0, dk, drk, db


@torch.library.custom_op("fusedrnn::lstm_backward", mutates_args=())
def lstm_backward(x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor,
                  bias: Tensor, mask: Optional[Tensor], go_backwards: bool, dropout_mask: Optional[Tensor],
                  recurrent_dropout_mask: Optional[Tensor], gates: Tensor, hprev: Tensor, aux: Tensor,
                  d_outputs: Optional[Tensor], d_h_last: Optional[Tensor], d_c_last: Optional[Tensor]
                  ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """LSTM backward: ``(dx, dh0, dc0, d_kernel, d_recurrent_kernel, d_bias)``."""
    return _backward_op("lstm", x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards, "tanh",
                        True, dropout_mask, recurrent_dropout_mask, gates, hprev, aux, d_outputs,
                        d_h_last, d_c_last)


@torch.library.custom_op("fusedrnn::gru_backward", mutates_args=())
def gru_backward(x: Tensor, h0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor,
                 mask: Optional[Tensor], go_backwards: bool, reset_after: bool, dropout_mask: Optional[Tensor],
                 recurrent_dropout_mask: Optional[Tensor], gates: Tensor, hprev: Tensor, aux: Tensor,
                 d_outputs: Optional[Tensor], d_h_last: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """GRU backward: ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``."""
    dx, dh0, _, dk, drk, db = _backward_op("gru", x, h0, None, kernel, recurrent_kernel, bias, mask,
                                           go_backwards, "tanh", reset_after, dropout_mask,
                                           recurrent_dropout_mask, gates, hprev, aux, d_outputs,
                                           d_h_last, None)
    return dx, dh0, dk, drk, db


@rnn_forward.register_fake
def _(x, h0, kernel, recurrent_kernel, bias, mask, go_backwards, activation, dropout_mask, recurrent_dropout_mask,
      keep_cache):
    out, h, _, g, hp, _ = _fake_forward("rnn", x, kernel, keep_cache)
    return out, h, g, hp


@lstm_forward.register_fake
def _(x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards, dropout_mask, recurrent_dropout_mask,
      keep_cache):
    return _fake_forward("lstm", x, kernel, keep_cache)


@gru_forward.register_fake
def _(x, h0, kernel, recurrent_kernel, bias, mask, go_backwards, reset_after, dropout_mask, recurrent_dropout_mask,
      keep_cache):
    out, h, _, g, hp, aux = _fake_forward("gru", x, kernel, keep_cache)
    return out, h, g, hp, aux


@rnn_backward.register_fake
def _(x, h0, kernel, recurrent_kernel, bias, *args):
    dx, dh0, _, dk, drk, db = _fake_backward(x, kernel, recurrent_kernel, bias)
    return dx, dh0, dk, drk, db


@lstm_backward.register_fake
def _(x, h0, c0, kernel, recurrent_kernel, bias, *args):
    return _fake_backward(x, kernel, recurrent_kernel, bias)


@gru_backward.register_fake
def _(x, h0, kernel, recurrent_kernel, bias, *args):
    dx, dh0, _, dk, drk, db = _fake_backward(x, kernel, recurrent_kernel, bias)
    return dx, dh0, dk, drk, db


# -- autograd: each forward op's gradient is its backward op ------------------------------------
# Where each cell's forward op has its inputs: (x, h0, c0, kernel, recurrent_kernel, bias, mask,
# go_backwards, option, dropout_mask, recurrent_dropout_mask, keep_cache), c0 and the option
# (activation / reset_after) only where the cell has them.
_LAYOUT = {
    "rnn": ("x", "h0", "kernel", "recurrent_kernel", "bias", "mask", "go_backwards", "activation", "dropout_mask",
            "recurrent_dropout_mask", "keep_cache"),
    "lstm": ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias", "mask", "go_backwards", "dropout_mask",
             "recurrent_dropout_mask", "keep_cache"),
    "gru": ("x", "h0", "kernel", "recurrent_kernel", "bias", "mask", "go_backwards", "reset_after", "dropout_mask",
            "recurrent_dropout_mask", "keep_cache"),
}
_SAVED = ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias", "mask", "dropout_mask", "recurrent_dropout_mask",
          "gates", "hprev", "aux")


def _autograd(cell: str, backward_op: Any) -> Tuple[Any, Any]:
    layout = _LAYOUT[cell]

    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
        args = dict(zip(layout, inputs))
        outputs = dict(zip(("outputs", "h_last", "c_last") if cell == "lstm" else ("outputs", "h_last"), output))
        saved = output[len(outputs):]
        args.update(zip(("gates", "hprev", "aux"), saved))
        ctx.mark_non_differentiable(*saved)
        ctx.save_for_backward(*(args.get(name) for name in _SAVED))
        ctx.options = {k: args[k] for k in ("go_backwards", "activation", "reset_after", "keep_cache") if k in args}
        ctx.given = {k: args.get(k) is not None for k in ("h0", "c0")}
        ctx.float_x = bool(args["x"].is_floating_point())

    def backward(ctx: Any, *grads: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        if not ctx.options["keep_cache"]:
            raise RuntimeError(f"fusedrnn::{cell}_forward ran with keep_cache=False (inference), which keeps "
                               "nothing for a backward pass; call it with keep_cache=True to take gradients")
        s = dict(zip(_SAVED, ctx.saved_tensors))
        n_out = 3 if cell == "lstm" else 2
        d_out = dict(zip(("d_outputs", "d_h_last", "d_c_last"), grads[:n_out]))
        args = {**s, **ctx.options, **d_out}
        inputs = [args[name] for name in _backward_layout(cell)]
        results = backward_op(*inputs)
        names = ("dx", "dh0", "dc0", "kernel", "recurrent_kernel", "bias") if cell == "lstm" else \
                ("dx", "dh0", "kernel", "recurrent_kernel", "bias")
        g = dict(zip(names, results))
        g["x"] = g.pop("dx") if ctx.float_x else None
        g["h0"] = g.pop("dh0") if ctx.given["h0"] else None
        if cell == "lstm":
            g["c0"] = g.pop("dc0") if ctx.given["c0"] else None
        return tuple(g.get(name) for name in layout)

    return setup_context, backward


def _backward_layout(cell: str) -> Tuple[str, ...]:
    head = _LAYOUT[cell][:-1]  # the forward inputs but keep_cache
    saved = ("gates", "hprev") if cell == "rnn" else ("gates", "hprev", "aux")
    grads = ("d_outputs", "d_h_last", "d_c_last") if cell == "lstm" else ("d_outputs", "d_h_last")
    return head + saved + grads


for _cell, _fwd, _bwd in (("rnn", rnn_forward, rnn_backward), ("lstm", lstm_forward, lstm_backward),
                          ("gru", gru_forward, gru_backward)):
    _setup, _backward = _autograd(_cell, _bwd)
    _fwd.register_autograd(_backward, setup_context=_setup)


# -- eager mode: the same two functions without the operator dispatcher ------------------------
class _Recurrent(torch.autograd.Function):
    """What a forward op and its registered backward compute, as a plain autograd.Function: in eager
    mode this skips the custom-op dispatch (argument normalisation, redispatch, the (0,)
    placeholders) and keeps the kernels' own cache for the backward instead of rebuilding it from
    tensors; both cost more than a small layer's kernels. It runs :func:`_run_forward` and
    :func:`_run_backward`, as the operators do.

    With ``params`` (fusedrnn.torch's modules), kernel, recurrent_kernel and bias are the
    Parameters' values in Keras's layout, not recorded by autograd, and ``to_params`` maps their
    gradients to those of ``params``, which are what autograd differentiates."""

    @staticmethod
    def forward(ctx: Any, cell: str, go_backwards: bool, activation: str, reset_after: bool, to_params: Any,
                x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor,
                bias: Tensor, mask: Optional[Tensor], dropout_mask: Optional[Tensor],
                recurrent_dropout_mask: Optional[Tensor], *params: Tensor) -> Tuple[Tensor, ...]:
        outputs, h_last, c_last, cache = _run_forward(
            cell, x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards, activation, reset_after, dropout_mask,
            recurrent_dropout_mask, True)
        ctx.set_materialize_grads(False)
        # saved for autograd's check that no input changed in place before the backward (the cache
        # reads their memory); the modules pass their kept weights as NumPy arrays, whose
        # Parameters (params) stand for them here
        weights = tuple(w if isinstance(w, Tensor) else None for w in (kernel, recurrent_kernel, bias))
        ctx.save_for_backward(x, h0, c0, *weights, mask, dropout_mask, recurrent_dropout_mask, *params)
        ctx.cell, ctx.cache, ctx.to_params = cell, cache, to_params
        return (outputs, h_last) if c_last is None else (outputs, h_last, c_last)

    @staticmethod
    def backward(ctx: Any, *grads: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        ctx.saved_tensors  # noqa: B018 - raises if an input was modified in place since the forward
        need = ctx.needs_input_grad
        if all(g is None for g in grads):
            return (None,) * len(need)
        d_c_last = grads[2] if len(grads) == 3 else None
        # The modules' Parameters are in torch.nn's layout: their gradients come from the kernels that way.
        dx, dh0, dc0, dk, drk, db = _run_backward(ctx.cell, ctx.cache, grads[0], grads[1], d_c_last,
                                                  gate_major=ctx.to_params is not None)
        head = (None,) * 5 + (dx if need[5] else None, dh0 if need[6] else None, dc0 if need[7] else None)
        if ctx.to_params is None:
            return head + (dk if need[8] else None, drk if need[9] else None, db if need[10] else None, None, None, None)
        if not any(need[14:]):  # frozen Parameters: no gradient to map back
            return head + (None,) * len(need[8:])
        d_params = tuple(g if n else None for g, n in zip(ctx.to_params(dk, drk, db), need[14:]))
        return head + (None,) * 6 + d_params


def _recurrent(cell: str, operator: Any, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor,
               recurrent_kernel: Tensor, bias: Tensor, mask: Optional[Tensor], go_backwards: bool, activation: str,
               reset_after: bool, dropout_mask: Optional[Tensor], recurrent_dropout_mask: Optional[Tensor]
               ) -> Tuple[Tensor, ...]:
    """(outputs, h_last[, c_last]) of one cell: eagerly through _Recurrent (or straight through
    :func:`_run_forward` when nothing needs a gradient), else through the registered operator."""
    tensors = (x, h0, c0, kernel, recurrent_kernel, bias, mask, dropout_mask, recurrent_dropout_mask)
    _check_args(cell, tensors)
    n_out = 3 if cell == "lstm" else 2
    keep = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors[:6])
    if _eager(tensors):
        if keep:
            return _Recurrent.apply(cell, go_backwards, activation, reset_after, None, *tensors)
        return _run_forward(cell, x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards, activation,
                            reset_after, dropout_mask, recurrent_dropout_mask, False)[:n_out]
    if cell == "lstm":
        results = operator(x, h0, c0, kernel, recurrent_kernel, bias, mask, go_backwards, dropout_mask,
                           recurrent_dropout_mask, keep)
    else:
        option = activation if cell == "rnn" else reset_after
        results = operator(x, h0, kernel, recurrent_kernel, bias, mask, go_backwards, option, dropout_mask,
                           recurrent_dropout_mask, keep)
    return tuple(results[:n_out])


def eager_layer(cell: str, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], weights: MappedWeights,
                params: Tuple[Tensor, ...], to_params: Any, *, mask: Optional[Tensor], go_backwards: bool,
                activation: str) -> Tuple[Tensor, ...]:
    """One layer and direction of fusedrnn.torch's modules in eager mode (the caller checked
    :func:`fusedrnn.torch._eager.eager` on every tensor): ``weights`` the Parameters ``params``
    in Keras's layout (kept by the module, not recorded by autograd), ``to_params`` the map of
    their gradients to those of ``params``. With gradients: one autograd node from the Parameters
    to the results. Without (inference): the kernels run on the weights' packed copy, packed once
    per change of the Parameters. The module has checked the input and states (torch.nn's
    checks) and made the weights."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, h0, c0) + tuple(params)):
        # The weights as the NumPy views the kernels read (no per-call conversion of the tensors).
        inputs = (x, h0, c0) + tuple(weights.arrays) + (mask, None, None)
        return _Recurrent.apply(cell, go_backwards, activation, True, to_params, *inputs, *params)
    results = _run_forward(cell, x, h0, c0, *weights.arrays, mask, go_backwards, activation, True, None, None, False,
                           packed=weights.packed)
    return results[:3 if cell == "lstm" else 2]


# -- differentiable entry points ------------------------------------------------------------------
def _check_args(cell: str, tensors: Tuple[Any, ...]) -> None:
    """TypeError naming the argument unless x is a tensor (float, or integer ids), the weights
    float tensors and the optional ones tensors or None. Shapes are the kernels' to check."""
    x = tensors[0]
    arr.require_tensor("x", x)
    if x.is_floating_point():
        arr.require_float("x", x)
    for name, t in zip(_NAMES[1:], tensors[1:]):
        arr.require_tensor(name, t, optional=name not in _WEIGHTS)
        if t is not None and name != "mask":
            arr.require_float(name, t)


def rnn(x: Tensor, h0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor, *,
        mask: Optional[Tensor] = None, go_backwards: bool = False, activation: str = "tanh",
        dropout_mask: Optional[Tensor] = None, recurrent_dropout_mask: Optional[Tensor] = None
        ) -> Tuple[Tensor, Tensor]:
    """SimpleRNN over a sequence with autograd: ``(outputs (B, T, H), h_last (B, H))``.

    ``h_t = act(x_t kernel + bias + h_{t-1} recurrent_kernel)``; shapes in the module docstring.
    """
    out, h = _recurrent("rnn", rnn_forward, x, h0, None, kernel, recurrent_kernel, bias, mask, bool(go_backwards),
                        activation, True, dropout_mask, recurrent_dropout_mask)
    return out, h


def lstm(x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor,
         bias: Tensor, *, mask: Optional[Tensor] = None, go_backwards: bool = False,
         dropout_mask: Optional[Tensor] = None, recurrent_dropout_mask: Optional[Tensor] = None
         ) -> Tuple[Tensor, Tensor, Tensor]:
    """LSTM over a sequence with autograd (Keras gate order i, f, c, o):
    ``(outputs (B, T, H), h_last (B, H), c_last (B, H))``."""
    out, h, c = _recurrent("lstm", lstm_forward, x, h0, c0, kernel, recurrent_kernel, bias, mask, bool(go_backwards),
                           "tanh", True, dropout_mask, recurrent_dropout_mask)
    return out, h, c


def gru(x: Tensor, h0: Optional[Tensor], kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor, *,
        mask: Optional[Tensor] = None, go_backwards: bool = False, reset_after: bool = True,
        dropout_mask: Optional[Tensor] = None, recurrent_dropout_mask: Optional[Tensor] = None
        ) -> Tuple[Tensor, Tensor]:
    """GRU over a sequence with autograd (Keras gate order z, r, h): ``(outputs (B, T, H), h_last (B, H))``.

    ``reset_after=True`` takes bias (2, 3H) (input bias, recurrent bias), the form of PyTorch's GRU.
    """
    out, h = _recurrent("gru", gru_forward, x, h0, None, kernel, recurrent_kernel, bias, mask, bool(go_backwards),
                        "tanh", bool(reset_after), dropout_mask, recurrent_dropout_mask)
    return out, h
