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
of the kernel instead of a GEMM (exactly the same numbers: a one-hot row times the kernel is
that row), ``d_kernel`` a scatter-add, and the backward op returns ``dx = None``.

NaN or inf in any input raises ValueError (the check is one pass over the inputs).

``keep_cache=False`` runs a forward pass that no backward pass will follow (inference, as under
PyTorch's ``no_grad``): the returned cache is None, and the kernel keeps only the state of the
step before instead of every step's gates and states (O(B*H) memory instead of O(B*T*G*H)). The
outputs are the same numbers, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from fusedrnn import _C, _device
from fusedrnn.ops import _checks as chk

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class RecurrentCache:
    """What a forward op keeps for its backward op (treat as opaque).

    ``x`` is the input (B, T, I) or the one-hot ids (B, T) as int32. ``gates`` (B, T, G*H) holds
    the activated gate values, ``hprev`` (B, T, H) the state entering every step and ``aux``
    (B, T, H) the cell state (LSTM) or the GRU's candidate term; all in input-time order.
    """

    cell: str
    activation: str
    reset_after: bool
    go_backwards: bool
    x: np.ndarray
    h0: np.ndarray
    c0: Optional[np.ndarray]
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    mask: Optional[np.ndarray]
    dropout_mask: Optional[np.ndarray]
    recurrent_dropout_mask: Optional[np.ndarray]
    gates: np.ndarray
    hprev: np.ndarray
    aux: Optional[np.ndarray]

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def units(self) -> int:
        return int(self.h0.shape[1])


def _forward(cell: str, x: Any, h0: Any, c0: Any, kernel: Any, recurrent_kernel: Any, bias: Any, *,
             mask: Any, go_backwards: bool, activation: str, reset_after: bool, dropout_mask: Any,
             recurrent_dropout_mask: Any, keep_cache: bool
             ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[RecurrentCache]]:
    keep_cache = chk.check_flag("keep_cache", keep_cache)
    if _device.any_cuda_array(x, h0, c0, kernel, recurrent_kernel, bias, mask, dropout_mask, recurrent_dropout_mask):
        from fusedrnn.ops import _cuda_recurrent

        outputs, h_last, c_last, cache = _cuda_recurrent.forward(
            cell, x, h0, c0, kernel, recurrent_kernel, bias, mask=mask, go_backwards=go_backwards,
            activation=activation, reset_after=reset_after, dropout_mask=dropout_mask,
            recurrent_dropout_mask=recurrent_dropout_mask)
        return outputs, h_last, c_last, cache if keep_cache else None
    gates = _GATES[cell]
    x = chk.as_array("x", x)
    if np.issubdtype(x.dtype, np.integer):
        kernel = chk.check_float("kernel", kernel)
        if kernel.ndim != 2:
            raise ValueError(f"kernel: expected a 2-D array (vocabulary, gates*units), got shape {kernel.shape}")
        x = chk.token_ids("x", x, int(kernel.shape[0]))
        (B, T), I = (int(d) for d in x.shape), int(kernel.shape[0])
        dtype = kernel.dtype
    else:
        x = chk.check_float("x", x)
        if x.ndim != 3:
            raise ValueError(f"x: expected a 3-D array (batch, time, features) or integer ids (batch, time), "
                             f"got shape {x.shape}")
        B, T, I = (int(d) for d in x.shape)
        dtype = x.dtype
        chk.check_contiguous("x", x)
        chk.check_finite("x", x)
    if B == 0 or T == 0 or I == 0:
        raise ValueError(f"x: batch, time and feature sizes must be at least 1, got shape {x.shape}")
    kernel = chk.check_float("kernel", kernel, dtype)
    if kernel.ndim != 2 or kernel.shape[0] != I or kernel.shape[1] % gates != 0 or kernel.shape[1] == 0:
        raise ValueError(f"kernel: expected shape ({I}, {gates}*units) (features, gates*units), got {kernel.shape}")
    H = kernel.shape[1] // gates
    kernel = chk.float_input("kernel", kernel, dtype, (I, gates * H))
    recurrent_kernel = chk.float_input("recurrent_kernel", recurrent_kernel, dtype, (H, gates * H), "(units, gates*units)")
    if cell == "gru" and reset_after:
        bias = chk.float_input("bias", bias, dtype, (2, 3 * H),
                               "(2, 3*units): input and recurrent bias, as Keras's GRU with reset_after=True")
    else:
        note = " (GRU with reset_after=False)" if cell == "gru" else ""
        bias = chk.float_input("bias", bias, dtype, (gates * H,), f"(gates*units,){note}")
    h0 = np.zeros((B, H), dtype) if h0 is None else chk.float_input("h0", h0, dtype, (B, H), "(batch, units)")
    if cell == "lstm":
        c0 = np.zeros((B, H), dtype) if c0 is None else chk.float_input("c0", c0, dtype, (B, H), "(batch, units)")
    mask_u8 = chk.bool_mask("mask", mask, (B, T))
    dmask = chk.dropout_mask("dropout_mask", dropout_mask, dtype, gates, B, I, "features")
    rmask = chk.dropout_mask("recurrent_dropout_mask", recurrent_dropout_mask, dtype, gates, B, H, "units")
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation: expected 'tanh' or 'relu', got {activation!r}")
    go_backwards = bool(go_backwards)

    outputs, h_last, c_last, saved_gates, hprev, aux = _C.recurrent_forward(
        cell, x, h0, c0, kernel, recurrent_kernel, bias, mask_u8, dmask, rmask, go_backwards, activation,
        bool(reset_after), keep_cache)
    if not keep_cache:
        return outputs, h_last, c_last, None
    cache = RecurrentCache(cell, activation, bool(reset_after), go_backwards, x, h0, c0, kernel,
                           recurrent_kernel, bias, mask_u8, dmask, rmask, saved_gates, hprev, aux)
    return outputs, h_last, c_last, cache


def _backward(cell: str, cache: Any, d_outputs: Any, d_h_last: Any, d_c_last: Any) -> Tuple[Any, ...]:
    if cache is None:
        raise ValueError(f"cache: None: {cell}_forward ran with keep_cache=False, which keeps nothing for a "
                         f"backward pass; run it with keep_cache=True (the default) to take gradients")
    if not isinstance(cache, RecurrentCache):
        raise TypeError(f"cache: expected the cache returned by {cell}_forward, got {chk.describe(cache)}")
    if cache.cell != cell:
        raise ValueError(f"cache: comes from {cache.cell}_forward, not {cell}_forward")
    if _device.any_cuda_array(cache.x, d_outputs, d_h_last, d_c_last):
        from fusedrnn.ops import _cuda_recurrent

        return _cuda_recurrent.backward(cell, cache, d_outputs, d_h_last, d_c_last)
    B, T, H, dtype = cache.batch, cache.steps, cache.units, cache.kernel.dtype
    d_outputs = chk.optional_float_input("d_outputs", d_outputs, dtype, (B, T, H), "(batch, time, units)")
    d_h_last = chk.optional_float_input("d_h_last", d_h_last, dtype, (B, H), "(batch, units)")
    if cell == "lstm":
        d_c_last = chk.optional_float_input("d_c_last", d_c_last, dtype, (B, H), "(batch, units)")
    return _C.recurrent_backward(
        cell, cache.x, cache.h0, cache.c0, cache.kernel, cache.recurrent_kernel, cache.bias, cache.mask,
        cache.dropout_mask, cache.recurrent_dropout_mask, cache.go_backwards, cache.activation,
        cache.reset_after, cache.gates, cache.hprev, cache.aux, d_outputs, d_h_last, d_c_last)


# --------------------------------------------------------------------------------------------
def rnn_forward(x: np.ndarray, h0: Optional[np.ndarray], kernel: np.ndarray, recurrent_kernel: np.ndarray,
                bias: np.ndarray, *, mask: Optional[np.ndarray] = None, go_backwards: bool = False,
                activation: str = "tanh", dropout_mask: Optional[np.ndarray] = None,
                recurrent_dropout_mask: Optional[np.ndarray] = None, keep_cache: bool = True
                ) -> Tuple[np.ndarray, np.ndarray, Optional[RecurrentCache]]:
    """SimpleRNN over a sequence: ``h_t = act(x_t kernel + bias + h_{t-1} recurrent_kernel)``.

    Args: x (B, T, I); h0 (B, H) or None for zeros; kernel (I, H); recurrent_kernel (H, H);
    bias (H,); activation 'tanh' or 'relu'. Returns ``(outputs (B, T, H), h_last (B, H), cache)``;
    the cache is None with ``keep_cache=False``.
    """
    outputs, h_last, _, cache = _forward("rnn", x, h0, None, kernel, recurrent_kernel, bias, mask=mask,
                                         go_backwards=go_backwards, activation=activation, reset_after=True,
                                         dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask,
                                         keep_cache=keep_cache)
    return outputs, h_last, cache


def rnn_backward(cache: RecurrentCache, d_outputs: Optional[np.ndarray], d_h_last: Optional[np.ndarray]
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`rnn_forward`: ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``.

    d_outputs (B, T, H) and d_h_last (B, H) may be None (no gradient arrives there).
    """
    dx, dh0, _, dk, drk, db = _backward("rnn", cache, d_outputs, d_h_last, None)
    return dx, dh0, dk, drk, db


def lstm_forward(x: np.ndarray, h0: Optional[np.ndarray], c0: Optional[np.ndarray], kernel: np.ndarray,
                 recurrent_kernel: np.ndarray, bias: np.ndarray, *, mask: Optional[np.ndarray] = None,
                 go_backwards: bool = False, dropout_mask: Optional[np.ndarray] = None,
                 recurrent_dropout_mask: Optional[np.ndarray] = None, keep_cache: bool = True
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[RecurrentCache]]:
    """LSTM over a sequence, Keras's equations and gate order (i, f, c, o).

    Args: x (B, T, I); h0, c0 (B, H) or None for zeros; kernel (I, 4H); recurrent_kernel
    (H, 4H); bias (4H,). Returns ``(outputs (B, T, H), h_last (B, H), c_last (B, H), cache)``;
    the cache is None with ``keep_cache=False``.
    """
    return _forward("lstm", x, h0, c0, kernel, recurrent_kernel, bias, mask=mask, go_backwards=go_backwards,
                    activation="tanh", reset_after=True, dropout_mask=dropout_mask,
                    recurrent_dropout_mask=recurrent_dropout_mask, keep_cache=keep_cache)  # type: ignore[return-value]


def lstm_backward(cache: RecurrentCache, d_outputs: Optional[np.ndarray], d_h_last: Optional[np.ndarray],
                  d_c_last: Optional[np.ndarray]) -> Tuple[np.ndarray, ...]:
    """Gradients of :func:`lstm_forward`: ``(dx, dh0, dc0, d_kernel, d_recurrent_kernel, d_bias)``."""
    return tuple(_backward("lstm", cache, d_outputs, d_h_last, d_c_last))


def gru_forward(x: np.ndarray, h0: Optional[np.ndarray], kernel: np.ndarray, recurrent_kernel: np.ndarray,
                bias: np.ndarray, *, mask: Optional[np.ndarray] = None, go_backwards: bool = False,
                reset_after: bool = True, dropout_mask: Optional[np.ndarray] = None,
                recurrent_dropout_mask: Optional[np.ndarray] = None, keep_cache: bool = True
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
                                         keep_cache=keep_cache)
    return outputs, h_last, cache


def gru_backward(cache: RecurrentCache, d_outputs: Optional[np.ndarray], d_h_last: Optional[np.ndarray]
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`gru_forward`: ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``."""
    dx, dh0, _, dk, drk, db = _backward("gru", cache, d_outputs, d_h_last, None)
    return dx, dh0, dk, drk, db
