"""The CPU path of the recurrent ops: argument checks and the calls into ``fusedrnn._C``.

:mod:`fusedrnn.ops.recurrent` documents the shapes, dtypes and semantics and dispatches here for
NumPy (host) arrays; :mod:`fusedrnn.ops._cuda_recurrent` is the same for CUDA arrays.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from fusedrnn import _C
from fusedrnn.ops import _checks as chk
from fusedrnn.ops._recurrent_cache import GATES, RecurrentCache, bias_spec, units_from_kernel
from fusedrnn.ops.checked_weights import check_checked
from fusedrnn.ops.deferred_grads import DeferredWeightGrads
from fusedrnn.ops.packed import check_packed


def forward(cell: str, x: Any, h0: Any, c0: Any, kernel: Any, recurrent_kernel: Any, bias: Any, *,
            mask: Any, go_backwards: bool, activation: str, reset_after: bool, dropout_mask: Any,
            recurrent_dropout_mask: Any, keep_cache: bool, packed: Any = None, checked: Any = None
            ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[RecurrentCache]]:
    """(outputs, h_last, c_last or None, cache or None) of one cell over a sequence of host arrays;
    `packed`: a PackedWeights whose packed copy of the weights the kernels use; `checked`: a
    CheckedWeights that checks the weights for NaN and inf once per version."""
    gates = GATES[cell]
    if packed is not None:
        packed = check_packed(packed)
        packed.check_options(cell, reset_after, activation, keep_cache)
    if checked is not None:
        checked = check_checked(checked)
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
    H = units_from_kernel(cell, kernel.shape, I)
    # Packed weights are checked for NaN and inf when they are packed (PackedWeights.handle),
    # weights given a CheckedWeights once per version.
    every_call = packed is None and checked is None
    kernel = chk.float_input("kernel", kernel, dtype, (I, gates * H), finite=every_call)
    recurrent_kernel = chk.float_input("recurrent_kernel", recurrent_kernel, dtype, (H, gates * H),
                                       "(units, gates*units)", finite=every_call)
    bias = chk.float_input("bias", bias, dtype, *bias_spec(cell, reset_after, H), finite=checked is None)
    if checked is not None:
        checked.check("bias", bias)
        if packed is None:
            checked.check("kernel", kernel)
            checked.check("recurrent_kernel", recurrent_kernel)
    h0 = np.zeros((B, H), dtype) if h0 is None else chk.float_input("h0", h0, dtype, (B, H), "(batch, units)")
    if cell == "lstm":
        c0 = np.zeros((B, H), dtype) if c0 is None else chk.float_input("c0", c0, dtype, (B, H), "(batch, units)")
    mask_u8 = chk.bool_mask("mask", mask, (B, T))
    dmask = chk.dropout_mask("dropout_mask", dropout_mask, dtype, gates, B, I, "features")
    rmask = chk.dropout_mask("recurrent_dropout_mask", recurrent_dropout_mask, dtype, gates, B, H, "units")
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation: expected 'tanh' or 'relu', got {activation!r}")
    go_backwards = bool(go_backwards)
    handle = None if packed is None else packed.handle(kernel, recurrent_kernel, x.dtype == np.int32)

    outputs, h_last, c_last, saved_gates, hprev, aux = _C.recurrent_forward(
        cell, x, h0, c0, kernel, recurrent_kernel, bias, mask_u8, dmask, rmask, go_backwards, activation,
        bool(reset_after), keep_cache, handle)
    if not keep_cache:
        return outputs, h_last, c_last, None
    cache = RecurrentCache(cell, activation, bool(reset_after), go_backwards, x, h0, c0, kernel,
                           recurrent_kernel, bias, mask_u8, dmask, rmask, saved_gates, hprev, aux)
    return outputs, h_last, c_last, cache



def backward(cell: str, cache: RecurrentCache, d_outputs: Any, d_h_last: Any, d_c_last: Any,
             gate_major: bool = False, defer_to: Optional[DeferredWeightGrads] = None) -> Tuple[Any, ...]:
    """(dx, dh0, dc0 or None, d_kernel, d_recurrent_kernel, d_bias) for a cache of host arrays; the
    weight gradients transposed, (G*H, I) and (G*H, H), with `gate_major`. With `defer_to` the
    weight gradients are None and the gate gradients go to that DeferredWeightGrads."""
    B, T, H, dtype = cache.batch, cache.steps, cache.units, cache.kernel.dtype
    d_outputs = chk.optional_float_input("d_outputs", d_outputs, dtype, (B, T, H), "(batch, time, units)")
    d_h_last = chk.optional_float_input("d_h_last", d_h_last, dtype, (B, H), "(batch, units)")
    if cell == "lstm":
        d_c_last = chk.optional_float_input("d_c_last", d_c_last, dtype, (B, H), "(batch, units)")
    results = _C.recurrent_backward(
        cell, cache.x, cache.h0, cache.c0, cache.kernel, cache.recurrent_kernel, cache.bias, cache.mask,
        cache.dropout_mask, cache.recurrent_dropout_mask, cache.go_backwards, cache.activation,
        cache.reset_after, cache.gates, cache.hprev, cache.aux, d_outputs, d_h_last, d_c_last, gate_major,
        defer_to is not None)
    if defer_to is None:
        return results
    dx, dh0, dc0, d_gates, d_recurrent_gates, _ = results
    defer_to.add(cache, d_gates, d_recurrent_gates)
    return dx, dh0, dc0, None, None, None
