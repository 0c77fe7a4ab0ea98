"""Fused recurrent ops: SimpleRNN, LSTM and GRU over whole sequences, forward and backward.

Shapes follow Keras (batch-major). ``B`` batch, ``T`` time steps, ``I`` input features, ``H``
units, ``G`` gates (1 SimpleRNN, 4 LSTM, 3 GRU). Every array argument must be a C-contiguous
NumPy array of one float dtype, float32 or float64; results have that dtype.

Weights use Keras's layout and gate order: ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H),
``bias`` (G*H,) — except the GRU with ``reset_after=True``, whose bias is (2, 3H): input bias
then recurrent bias. LSTM gates are i, f, c, o; GRU gates z, r, h.

Masks follow Keras: on a step where ``mask[b, t]`` is False the states are carried over
unchanged and the output repeats the previous output (zeros before the first unmasked step).
With ``go_backwards=True`` the sequence is read from the last step to the first and
``outputs[:, s]`` belongs to processing step ``s`` (time ``T-1-s``), as Keras returns it.

Dropout masks are given by the caller, already scaled (values 0 or 1/(1-rate)):
``dropout_mask`` (B, I) or (G, B, I) multiplies the input of every step (per gate when
G masks are given), ``recurrent_dropout_mask`` (B, H) or (G, B, H) multiplies h_{t-1} where
it enters each gate's recurrent matmul — the same masks for all steps, as in Keras.

One-hot input: ``x`` may instead be integer ids (B, T) standing for one-hot rows of width
``I = kernel.shape[0]`` (a character model's input). The input projection is then a row gather
of the kernel instead of a GEMM (the same numbers to float rounding: a one-hot row times the
kernel is that row, but the sums are ordered differently), ``d_kernel`` a scatter-add, and the
backward op returns ``dx = None``.

NaN or inf in any input raises ValueError (the check is one pass over the inputs).

``keep_cache=False`` runs a forward pass that no backward pass will follow (inference, as under
PyTorch's ``no_grad``): the returned cache is None, and the kernel keeps only the state of the
step before instead of every step's gates and states (O(B*H) memory instead of O(B*T*G*H)). The
outputs are the same numbers, bit for bit.

``packed=ops.PackedWeights(cell)`` (CPU only) keeps the packed weights between calls instead of
packing them in every call; see :mod:`fusedrnn.ops.packed`, which also has the single-step ops
``lstm_step``/``gru_step``/``rnn_step`` for decoders.
``checked=ops.CheckedWeights()`` (CPU only) checks the weights for NaN and inf once per version
instead of on every call (a decoder's steps in training; see :mod:`fusedrnn.ops.checked_weights`).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from fusedrnn import _device
from fusedrnn.ops import _checks as chk
from fusedrnn.ops import _cpu_recurrent, _cuda_recurrent
from fusedrnn.ops._recurrent_cache import RecurrentCache
from fusedrnn.ops.checked_weights import CheckedWeights
from fusedrnn.ops.deferred_grads import DeferredWeightGrads
from fusedrnn.ops.packed import PackedWeights

__all__ = ["RecurrentCache", "gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward",
           "rnn_forward"]

def _forward(cell: str, x: Any, h0: Any, c0: Any, kernel: Any, recurrent_kernel: Any, bias: Any, *,
             mask: Any, go_backwards: bool, activation: str, reset_after: bool, dropout_mask: Any,
             recurrent_dropout_mask: Any, keep_cache: bool, packed: Any = None, checked: Any = None
             ) -> Tuple[Any, Any, Optional[Any], Optional[RecurrentCache]]:
    keep_cache = chk.check_flag("keep_cache", keep_cache)
    args = (cell, x, h0, c0, kernel, recurrent_kernel, bias)
    options = dict(mask=mask, go_backwards=go_backwards, activation=activation, reset_after=reset_after,
                   dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask)
    if _device.any_cuda_array(x, h0, c0, kernel, recurrent_kernel, bias, mask, dropout_mask, recurrent_dropout_mask):
        if packed is not None:
            raise TypeError("packed: PackedWeights serve the CPU kernels only; pass packed=None with CUDA arrays")
        if checked is not None:
            raise TypeError("checked: CheckedWeights serve the CPU kernels only; pass checked=None with CUDA arrays")
        outputs, h_last, c_last, cache = _cuda_recurrent.forward(*args, **options)
        return outputs, h_last, c_last, cache if keep_cache else None
    return _cpu_recurrent.forward(*args, **options, keep_cache=keep_cache, packed=packed, checked=checked)


def _backward(cell: str, cache: Any, d_outputs: Any, d_h_last: Any, d_c_last: Any, gate_major: Any,
              defer_to: Any = None) -> Tuple[Any, ...]:
    if cache is None:
        raise ValueError(f"cache: None: {cell}_forward ran with keep_cache=False, which keeps nothing for a "
                         f"backward pass; run it with keep_cache=True (the default) to take gradients")
    if not isinstance(cache, RecurrentCache):
        raise TypeError(f"cache: expected the cache returned by {cell}_forward, got {chk.describe(cache)}")
    if cache.cell != cell:
        raise ValueError(f"cache: comes from {cache.cell}_forward, not {cell}_forward")
    gate_major = chk.check_flag("gate_major", gate_major)
    if defer_to is not None:
        if not isinstance(defer_to, DeferredWeightGrads):
            raise TypeError(f"defer_weight_grads: expected a fusedrnn.ops.DeferredWeightGrads or None, got "
                            f"{chk.describe(defer_to)}")
        if gate_major:
            raise ValueError("gate_major: the weight gradients are deferred; pass gate_major to "
                             "DeferredWeightGrads.result() instead")
    if _device.any_cuda_array(cache.x, d_outputs, d_h_last, d_c_last):
        if gate_major:
            raise ValueError("gate_major: the CUDA kernels return the weight gradients in Keras's layout only; "
                             "pass gate_major=False with CUDA arrays")
        if defer_to is not None:
            raise ValueError("defer_weight_grads: deferred weight gradients are computed by the CPU kernels only; "
                             "pass defer_weight_grads=None with CUDA arrays")
        return _cuda_recurrent.backward(cell, cache, d_outputs, d_h_last, d_c_last)
    return _cpu_recurrent.backward(cell, cache, d_outputs, d_h_last, d_c_last, gate_major, defer_to)


# --------------------------------------------------------------------------------------------
def rnn_forward(x: np.ndarray, h0: Optional[np.ndarray], kernel: np.ndarray, recurrent_kernel: np.ndarray,
                bias: np.ndarray, *, mask: Optional[np.ndarray] = None, go_backwards: bool = False,
                activation: str = "tanh", dropout_mask: Optional[np.ndarray] = None,
                recurrent_dropout_mask: Optional[np.ndarray] = None, keep_cache: bool = True,
                packed: Optional[PackedWeights] = None, checked: Optional[CheckedWeights] = None
                ) -> Tuple[np.ndarray, np.ndarray, Optional[RecurrentCache]]:
    """SimpleRNN over a sequence: ``h_t = act(x_t kernel + bias + h_{t-1} recurrent_kernel)``.

    Args: x (B, T, I); h0 (B, H) or None for zeros; kernel (I, H); recurrent_kernel (H, H);
    bias (H,); activation 'tanh' or 'relu'. Returns ``(outputs (B, T, H), h_last (B, H), cache)``;
    the cache is None with ``keep_cache=False``.
    """
    outputs, h_last, _, cache = _forward("rnn", x, h0, None, kernel, recurrent_kernel, bias, mask=mask,
                                         go_backwards=go_backwards, activation=activation, reset_after=True,
                                         dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask,
                                         keep_cache=keep_cache, packed=packed, checked=checked)
    return outputs, h_last, cache


def rnn_backward(cache: RecurrentCache, d_outputs: Optional[np.ndarray], d_h_last: Optional[np.ndarray], *,
                 gate_major: bool = False, defer_weight_grads: Optional[DeferredWeightGrads] = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`rnn_forward`: ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``.

    d_outputs (B, T, H) and d_h_last (B, H) may be None (no gradient arrives there).
    ``gate_major=True`` (CPU only) returns the weight gradients transposed, d_kernel (G*H, I) and
    d_recurrent_kernel (G*H, H): the layout of ``torch.nn``'s ``weight_ih``/``weight_hh``, which the
    kernels produce without a transpose.
    ``defer_weight_grads`` (CPU only): a :class:`fusedrnn.ops.DeferredWeightGrads` that keeps this
    call's gate gradients and computes its weight gradients later, summed with those of the other
    calls given it (a decoder's single steps); the three weight gradients returned are then None.
    """
    dx, dh0, _, dk, drk, db = _backward("rnn", cache, d_outputs, d_h_last, None, gate_major, defer_weight_grads)
    return dx, dh0, dk, drk, db


def lstm_forward(x: np.ndarray, h0: Optional[np.ndarray], c0: Optional[np.ndarray], kernel: np.ndarray,
                 recurrent_kernel: np.ndarray, bias: np.ndarray, *, mask: Optional[np.ndarray] = None,
                 go_backwards: bool = False, dropout_mask: Optional[np.ndarray] = None,
                 recurrent_dropout_mask: Optional[np.ndarray] = None, keep_cache: bool = True,
                 packed: Optional[PackedWeights] = None, checked: Optional[CheckedWeights] = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[RecurrentCache]]:
    """LSTM over a sequence, Keras's equations and gate order (i, f, c, o).

    Args: x (B, T, I); h0, c0 (B, H) or None for zeros; kernel (I, 4H); recurrent_kernel
    (H, 4H); bias (4H,). Returns ``(outputs (B, T, H), h_last (B, H), c_last (B, H), cache)``;
    the cache is None with ``keep_cache=False``.
    """
    return _forward("lstm", x, h0, c0, kernel, recurrent_kernel, bias, mask=mask, go_backwards=go_backwards,
                    activation="tanh", reset_after=True, dropout_mask=dropout_mask,
                    recurrent_dropout_mask=recurrent_dropout_mask, keep_cache=keep_cache,
                    packed=packed, checked=checked)  # type: ignore[return-value]


def lstm_backward(cache: RecurrentCache, d_outputs: Optional[np.ndarray], d_h_last: Optional[np.ndarray],
                  d_c_last: Optional[np.ndarray], *, gate_major: bool = False,
                  defer_weight_grads: Optional[DeferredWeightGrads] = None) -> Tuple[np.ndarray, ...]:
    """Gradients of :func:`lstm_forward`: ``(dx, dh0, dc0, d_kernel, d_recurrent_kernel, d_bias)``;
    ``gate_major`` and ``defer_weight_grads`` as in :func:`rnn_backward`."""
    return tuple(_backward("lstm", cache, d_outputs, d_h_last, d_c_last, gate_major, defer_weight_grads))


def gru_forward(x: np.ndarray, h0: Optional[np.ndarray], kernel: np.ndarray, recurrent_kernel: np.ndarray,
                bias: np.ndarray, *, mask: Optional[np.ndarray] = None, go_backwards: bool = False,
                reset_after: bool = True, dropout_mask: Optional[np.ndarray] = None,
                recurrent_dropout_mask: Optional[np.ndarray] = None, keep_cache: bool = True,
                packed: Optional[PackedWeights] = None, checked: Optional[CheckedWeights] = None
                ) -> Tuple[np.ndarray, np.ndarray, Optional[RecurrentCache]]:
    """GRU over a sequence, Keras's equations and gate order (z, r, h).

    ``reset_after=True`` (Keras's default): ``hh = tanh(x_h + r * (h_{t-1} U_h + b_rec_h))`` and
    bias (2, 3H); ``reset_after=False``: ``hh = tanh(x_h + (r * h_{t-1}) U_h)`` and bias (3H,).
    Then ``h = z * h_{t-1} + (1 - z) * hh``. Returns ``(outputs (B, T, H), h_last (B, H), cache)``;
    the cache is None with ``keep_cache=False``.
    """
    outputs, h_last, _, cache = _forward("gru", x, h0, None, kernel, recurrent_kernel, bias, mask=mask,
                                         go_backwards=go_backwards, activation="tanh", reset_after=reset_after,
                                         dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask,
                                         keep_cache=keep_cache, packed=packed, checked=checked)
    return outputs, h_last, cache


def gru_backward(cache: RecurrentCache, d_outputs: Optional[np.ndarray], d_h_last: Optional[np.ndarray], *,
                 gate_major: bool = False, defer_weight_grads: Optional[DeferredWeightGrads] = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`gru_forward`: ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``;
    ``gate_major`` and ``defer_weight_grads`` as in :func:`rnn_backward`."""
    dx, dh0, _, dk, drk, db = _backward("gru", cache, d_outputs, d_h_last, None, gate_major, defer_weight_grads)
    return dx, dh0, dk, drk, db
