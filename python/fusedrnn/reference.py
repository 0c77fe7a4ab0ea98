"""Readable, slow, pure-NumPy reference of the fused recurrent ops.

This module mirrors :mod:`fusedrnn.ops` function by function (same names,
signatures and return structure) but is written for clarity, not speed.  The
test-suite uses it as an oracle, the benchmark as "the NumPy reference", and it
doubles as documentation of the exact equations the C++ kernels implement.
Everything is computed in the dtype of the inputs (float32 or float64).

Conventions (identical to Keras 3)
----------------------------------
Shapes are batch-major::

    B  batch size            T  time steps
    I  input features        H  units (hidden size)
    G  number of gates: 1 (SimpleRNN), 4 (LSTM), 3 (GRU)

    x                 (B, T, I)
    h0, c0            (B, H)            ``None`` means zeros
    kernel            (I, G*H)          gate g uses columns [g*H, (g+1)*H)
    recurrent_kernel  (H, G*H)
    bias              (G*H,)            GRU with reset_after=True: (2, 3H)
    outputs           (B, T, H)

Gate order is Keras's: LSTM ``i, f, c, o``; GRU ``z, r, h``.
``sigmoid`` is the exact logistic function 1 / (1 + exp(-x)).

Time direction.  With ``go_backwards=True`` the sequence (and the mask) is
processed from the last time step to the first; ``outputs[:, s]`` is the
output produced at processing step ``s`` (which consumed ``x[:, T-1-s]``).
The outputs are *not* re-reversed (this is what Keras does).

Masking (Keras semantics, ``zero_output_for_mask=False``).  ``mask`` is a
(B, T) bool array.  At a step where ``mask[b, t]`` is False the cell is still
evaluated but its result is discarded for that row::

    h_t   = where(m_t, h_new, h_{t-1})          (same for c_t)
    out_t = where(m_t, h_new, out_{t-1})        with out_{-1} = 0

so the states are carried over unchanged and the output repeats the previous
step's output (zeros before the first unmasked step).

Dropout (Keras 3 semantics, masks supplied by the caller).  ``dropout_mask``
has shape (B, I) or (G, B, I) and ``recurrent_dropout_mask`` (B, H) or
(G, B, H); they are already scaled (values 0 or 1/(1-rate)) and are reused at
every time step.  A (B, I) mask is shared by all gates.  Gate ``g`` sees
``x_t * dm[g]`` in its input matmul and ``h_{t-1} * rm[g]`` in its recurrent
matmul.  Nothing else is dropped (in particular not the GRU's final mix, nor
the LSTM carry).

Backward functions implement hand-written backpropagation through time for the
scalar loss ``L = sum(outputs * d_outputs) + sum(h_last * d_h_last)
(+ sum(c_last * d_c_last))``, i.e. they return the vector-Jacobian products
for the given incoming gradients.  Any incoming gradient may be ``None``
(= zeros).  Dropout masks and the boolean mask are constants (no gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
]

_NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------
# Elementwise helpers
# --------------------------------------------------------------------------
def _sigmoid(a):
    """Numerically stable logistic function, computed in ``a.dtype``."""
    e = np.exp(-np.abs(a))  # in (0, 1], never overflows
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _gate(a, g, H):
    """Columns of gate ``g`` of a (..., G*H) array."""
    return a[..., g * H:(g + 1) * H]


def _dropped(v, m, g):
    """``v * m[g]`` if a dropout mask is given, else ``v``."""
    return v if m is None else v * m[g]


# --------------------------------------------------------------------------
# Argument validation (mirrors the errors raised by fusedrnn.ops)
# --------------------------------------------------------------------------
def _check_float_array(name, a, dtype):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if dtype is None:
        if a.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    elif a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but x has dtype {dtype}; "
                        "all arrays must share one float dtype")


def _check_shape(name, a, shape, what):
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({what}), got {a.shape}")


def _check_finite(name, a):
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")


def _validate_forward(cell, x, h0, c0, kernel, recurrent_kernel, bias, mask,
                      go_backwards, dropout_mask, recurrent_dropout_mask,
                      reset_after=True):
    """Check every argument; return (B, T, I, H, G, dm, rm).

    ``dm``/``rm`` are the dropout masks normalised to (G, B, I)/(G, B, H)
    (or None).
    """
    G = _NUM_GATES[cell]
    _check_float_array("x", x, None)
    dtype = x.dtype
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (batch, time, features), got shape {x.shape}")
    B, T, I = x.shape
    if B == 0 or T == 0 or I == 0:
        raise ValueError(f"x must have non-zero batch, time and feature sizes, got shape {x.shape}")

    _check_float_array("recurrent_kernel", recurrent_kernel, dtype)
    if (recurrent_kernel.ndim != 2 or recurrent_kernel.shape[0] == 0
            or recurrent_kernel.shape[1] != G * recurrent_kernel.shape[0]):
        raise ValueError(f"recurrent_kernel must have shape (H, {G}*H) with H > 0, "
                         f"got {recurrent_kernel.shape}")
    H = recurrent_kernel.shape[0]

    _check_float_array("kernel", kernel, dtype)
    _check_shape("kernel", kernel, (I, G * H), f"(input features, {G}*units)")

    _check_float_array("bias", bias, dtype)
    if cell == "gru" and reset_after:
        _check_shape("bias", bias, (2, G * H), "(2, 3*units) because reset_after=True")
    elif cell == "gru":
        _check_shape("bias", bias, (G * H,), "(3*units,) because reset_after=False")
    else:
        _check_shape("bias", bias, (G * H,), f"({G}*units,)")

    states = [("h0", h0)] + ([("c0", c0)] if cell == "lstm" else [])
    for name, s in states:
        if s is not None:
            _check_float_array(name, s, dtype)
            _check_shape(name, s, (B, H), "(batch, units)")

    if mask is not None:
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"mask must be a numpy.ndarray of bool, got {type(mask).__name__}")
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must have dtype bool, got {mask.dtype}")
        _check_shape("mask", mask, (B, T), "(batch, time)")

    norm = []
    for name, m, n in (("dropout_mask", dropout_mask, I),
                       ("recurrent_dropout_mask", recurrent_dropout_mask, H)):
        if m is None:
            norm.append(None)
            continue
        _check_float_array(name, m, dtype)
        if m.shape == (B, n):
            m = np.broadcast_to(m, (G, B, n))
        elif m.shape != (G, B, n):
            raise ValueError(f"{name} must have shape {(B, n)} or {(G, B, n)}, got {m.shape}")
        norm.append(m)
    dm, rm = norm

    for name, a in [("x", x), ("kernel", kernel), ("recurrent_kernel", recurrent_kernel),
                    ("bias", bias)] + states + [("dropout_mask", dm),
                                                ("recurrent_dropout_mask", rm)]:
        if a is not None:
            _check_finite(name, a)
    return B, T, I, H, G, dm, rm


def _validate_backward(cell, cache, grads):
    if not isinstance(cache, _Cache) or cache.cell != cell:
        raise TypeError(f"cache must be the cache returned by the reference "
                        f"{cell}_forward, got {type(cache).__name__}"
                        + (f" from {cache.cell}_forward" if isinstance(cache, _Cache) else ""))
    B, T, H = cache.B, cache.T, cache.H
    out = []
    for name, g, shape in grads:
        shape = {"seq": (B, T, H), "state": (B, H)}[shape]
        if g is None:
            out.append(np.zeros(shape, cache.dtype))
            continue
        _check_float_array(name, g, cache.dtype)
        _check_shape(name, g, shape, "same shape as the corresponding forward result")
        out.append(g)
    return out


# --------------------------------------------------------------------------
# Cache and the time loop shared by all three cells
# --------------------------------------------------------------------------
@dataclass
class _Cache:
    """Everything the backward pass needs (opaque to users)."""

    cell: str
    dtype: Any
    B: int
    T: int
    I: int
    H: int
    G: int
    go_backwards: bool
    xs: np.ndarray                  # x in processing order (B, T, I)
    ms: Optional[np.ndarray]        # mask in processing order (B, T) or None
    dm: Optional[np.ndarray]        # (G, B, I) or None
    rm: Optional[np.ndarray]        # (G, B, H) or None
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    options: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)   # per-step cell caches


def _input_projection(xs, kernel, dm, G, H):
    """Input matmul for all time steps at once: (B, T, G*H).

    Gate g:  (x_t * dm[g]) @ kernel[:, g*H:(g+1)*H]   (no bias).
    """
    if dm is None:
        return xs @ kernel
    return np.concatenate(
        [(xs * dm[g][:, None, :]) @ _gate(kernel, g, H) for g in range(G)], axis=-1)


def _input_projection_backward(xs, kernel, dm, G, H, dzx):
    """Gradients of :func:`_input_projection` given dzx (B, T, G*H)."""
    B, T, I = xs.shape
    if dm is None:
        dxs = dzx @ kernel.T
        dkernel = xs.reshape(B * T, I).T @ dzx.reshape(B * T, G * H)
        return dxs, dkernel
    dxs = np.zeros_like(xs)
    dkernel = np.zeros_like(kernel)
    for g in range(G):
        dz_g = _gate(dzx, g, H)
        xg = xs * dm[g][:, None, :]
        dkernel[:, g * H:(g + 1) * H] = xg.reshape(B * T, I).T @ dz_g.reshape(B * T, H)
        dxs += (dz_g @ _gate(kernel, g, H).T) * dm[g][:, None, :]
    return dxs, dkernel


def _run_forward(cache, h0, c0, step_forward):
    """Time loop with Keras masking; returns (outputs, h_last, c_last).

    ``step_forward(cache, zx_s, h_prev, c_prev)`` returns
    ``(h_new, c_new, step_cache)`` where zx_s is the (B, G*H) input projection
    (plus input bias) of processing step s.
    """
    B, T, H, dtype = cache.B, cache.T, cache.H, cache.dtype
    zx = _input_projection(cache.xs, cache.kernel, cache.dm, cache.G, H)
    zx = zx + cache.options["input_bias"]
    h = np.zeros((B, H), dtype) if h0 is None else h0.copy()
    c = None
    if cache.cell == "lstm":
        c = np.zeros((B, H), dtype) if c0 is None else c0.copy()
    outputs = np.empty((B, T, H), dtype)
    out_prev = np.zeros((B, H), dtype)
    for s in range(T):
        h_new, c_new, step_cache = step_forward(cache, zx[:, s], h, c)
        cache.steps.append(step_cache)
        if cache.ms is None:
            h, c, out = h_new, c_new, h_new
        else:
            m = cache.ms[:, s, None]                     # (B, 1) bool
            out = np.where(m, h_new, out_prev)
            h = np.where(m, h_new, h)
            if c is not None:
                c = np.where(m, c_new, c)
        outputs[:, s] = out
        out_prev = out
    return outputs, h, c


def _run_backward(cache, d_outputs, d_h_last, d_c_last, step_backward):
    """Backpropagation through time with Keras masking.

    ``step_backward(cache, step_cache, dh_new, dc_new, grads)`` must accumulate
    the weight gradients into ``grads`` and return
    ``(dzx_s, dh_prev, dc_prev)`` where dzx_s is the gradient wrt the input
    projection (plus input bias) of step s.

    Returns (dx, dh0, dc0, d_kernel, d_recurrent_kernel, grads).
    """
    B, T, H, dtype = cache.B, cache.T, cache.H, cache.dtype
    grads = {"d_recurrent_kernel": np.zeros_like(cache.recurrent_kernel),
             "d_recurrent_bias": np.zeros(cache.G * H, dtype)}
    dzx = np.empty((B, T, cache.G * H), dtype)
    dh = d_h_last.copy()                    # dL/dh_s  (total, from the future)
    dc = d_c_last.copy() if cache.cell == "lstm" else None
    dout_carry = np.zeros((B, H), dtype)    # dL/dout_s flowing from out_{s+1}
    for s in reversed(range(T)):
        g_out = d_outputs[:, s] + dout_carry
        if cache.ms is None:
            dh_new, dc_new = g_out + dh, dc
            dh_keep = dc_keep = None
        else:
            m = cache.ms[:, s, None]
            zero = np.zeros((), dtype)
            # out_s = where(m, h_new, out_{s-1});  h_s = where(m, h_new, h_{s-1})
            dh_new = np.where(m, g_out + dh, zero)
            dout_carry = np.where(m, zero, g_out)
            dh_keep = np.where(m, zero, dh)
            if dc is not None:
                dc_new = np.where(m, dc, zero)
                dc_keep = np.where(m, zero, dc)
            else:
                dc_new = dc_keep = None
        dzx[:, s], dh, dc = step_backward(cache, cache.steps[s], dh_new, dc_new, grads)
        if dh_keep is not None:
            dh = dh + dh_keep
            if dc is not None:
                dc = dc + dc_keep
    dxs, d_kernel = _input_projection_backward(cache.xs, cache.kernel, cache.dm,
                                               cache.G, H, dzx)
    grads["d_input_bias"] = dzx.sum(axis=(0, 1))
    dx = dxs[:, ::-1] if cache.go_backwards else dxs
    return np.ascontiguousarray(dx), dh, dc, d_kernel, grads


def _make_cache(cell, x, kernel, recurrent_kernel, bias, mask, go_backwards, dims, **options):
    B, T, I, H, G, dm, rm = dims
    xs = x[:, ::-1] if go_backwards else x
    ms = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    return _Cache(cell=cell, dtype=x.dtype, B=B, T=T, I=I, H=H, G=G,
                  go_backwards=bool(go_backwards), xs=xs, ms=ms, dm=dm, rm=rm,
                  kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                  options=options)


# --------------------------------------------------------------------------
# SimpleRNN
# --------------------------------------------------------------------------
def _rnn_step_forward(cache, zx, h_prev, _c_prev):
    U, rm = cache.recurrent_kernel, cache.rm
    pre = zx + _dropped(h_prev, rm, 0) @ U
    h = np.tanh(pre) if cache.options["activation"] == "tanh" else np.maximum(pre, 0)
    return h, None, (h_prev, pre, h)


def _rnn_step_backward(cache, step, dh, _dc, grads):
    h_prev, pre, h = step
    U, rm = cache.recurrent_kernel, cache.rm
    if cache.options["activation"] == "tanh":
        dpre = dh * (1 - h * h)
    else:
        dpre = np.where(pre > 0, dh, np.zeros((), cache.dtype))
    grads["d_recurrent_kernel"] += _dropped(h_prev, rm, 0).T @ dpre
    dh_prev = _dropped(dpre @ U.T, rm, 0)
    return dpre, dh_prev, None


def rnn_forward(x, h0, kernel, recurrent_kernel, bias, *, mask=None, go_backwards=False,
                activation="tanh", dropout_mask=None, recurrent_dropout_mask=None):
    """SimpleRNN over a whole sequence (Keras ``SimpleRNN``).

    For each processing step t::

        h_t = act((x_t * dm) @ kernel + bias + (h_{t-1} * rm) @ recurrent_kernel)

    with ``act`` = tanh or relu, plus the masking rules of the module docstring.

    Args:
        x: (B, T, I) float32/float64.
        h0: (B, H) or None (zeros).
        kernel: (I, H).  recurrent_kernel: (H, H).  bias: (H,).
        mask: optional (B, T) bool.  go_backwards: process time in reverse.
        activation: ``'tanh'`` or ``'relu'``.
        dropout_mask: optional (B, I) or (1, B, I).
        recurrent_dropout_mask: optional (B, H) or (1, B, H).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), cache)``.
    """
    if not isinstance(activation, str) or activation not in ("tanh", "relu"):
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    dims = _validate_forward("rnn", x, h0, None, kernel, recurrent_kernel, bias, mask,
                             go_backwards, dropout_mask, recurrent_dropout_mask)
    cache = _make_cache("rnn", x, kernel, recurrent_kernel, bias, mask, go_backwards, dims,
                        activation=activation, input_bias=bias)
    outputs, h_last, _ = _run_forward(cache, h0, None, _rnn_step_forward)
    return outputs, h_last, cache


def rnn_backward(cache, d_outputs, d_h_last):
    """Gradients of :func:`rnn_forward`.

    Per step (``pre`` the pre-activation, ``g`` = dL/dh_t)::

        dpre = g * (1 - h_t**2)            (tanh)   or  g * [pre > 0]  (relu)
        d_kernel           += (x_t * dm)^T dpre
        d_recurrent_kernel += (h_{t-1} * rm)^T dpre
        d_bias             += sum_b dpre
        dx_t                = (dpre @ kernel^T) * dm
        dL/dh_{t-1}        += (dpre @ recurrent_kernel^T) * rm

    Returns:
        ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``.
    """
    d_outputs, d_h_last = _validate_backward(
        "rnn", cache, [("d_outputs", d_outputs, "seq"), ("d_h_last", d_h_last, "state")])
    dx, dh0, _, d_kernel, grads = _run_backward(cache, d_outputs, d_h_last, None,
                                                _rnn_step_backward)
    return dx, dh0, d_kernel, grads["d_recurrent_kernel"], grads["d_input_bias"]


# --------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------
def _lstm_step_forward(cache, zx, h_prev, c_prev):
    H, U, rm = cache.H, cache.recurrent_kernel, cache.rm
    z = [_gate(zx, g, H) + _dropped(h_prev, rm, g) @ _gate(U, g, H) for g in range(4)]
    i, f, o = _sigmoid(z[0]), _sigmoid(z[1]), _sigmoid(z[3])
    cc = np.tanh(z[2])
    c = f * c_prev + i * cc
    tc = np.tanh(c)
    h = o * tc
    return h, c, (h_prev, c_prev, i, f, cc, o, tc)


def _lstm_step_backward(cache, step, dh, dc, grads):
    h_prev, c_prev, i, f, cc, o, tc = step
    H, U, rm = cache.H, cache.recurrent_kernel, cache.rm
    do = dh * tc
    dc = dc + dh * o * (1 - tc * tc)
    di, df, dcc = dc * cc, dc * c_prev, dc * i
    dc_prev = dc * f
    dz = [di * i * (1 - i), df * f * (1 - f), dcc * (1 - cc * cc), do * o * (1 - o)]
    dh_prev = np.zeros_like(h_prev)
    dU = grads["d_recurrent_kernel"]
    for g in range(4):
        dU[:, g * H:(g + 1) * H] += _dropped(h_prev, rm, g).T @ dz[g]
        dh_prev += _dropped(dz[g] @ _gate(U, g, H).T, rm, g)
    return np.concatenate(dz, axis=-1), dh_prev, dc_prev


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, *, mask=None, go_backwards=False,
                 dropout_mask=None, recurrent_dropout_mask=None):
    """LSTM over a whole sequence (Keras ``LSTM``, gate order i, f, c, o).

    For each processing step t and gate g in (i, f, c, o)::

        z_g = (x_t * dm[g]) @ kernel_g + bias_g + (h_{t-1} * rm[g]) @ recurrent_kernel_g
        i = sigmoid(z_i)   f = sigmoid(z_f)   c~ = tanh(z_c)   o = sigmoid(z_o)
        c_t = f * c_{t-1} + i * c~
        h_t = o * tanh(c_t)

    where ``kernel_g = kernel[:, g*H:(g+1)*H]`` (same for the others), plus
    the masking rules of the module docstring (h and c are both carried).

    Args:
        x: (B, T, I).  h0, c0: (B, H) or None.
        kernel: (I, 4H).  recurrent_kernel: (H, 4H).  bias: (4H,).
        mask, go_backwards: see module docstring.
        dropout_mask: optional (B, I) or (4, B, I).
        recurrent_dropout_mask: optional (B, H) or (4, B, H).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), c_last (B, H), cache)``.
    """
    dims = _validate_forward("lstm", x, h0, c0, kernel, recurrent_kernel, bias, mask,
                             go_backwards, dropout_mask, recurrent_dropout_mask)
    cache = _make_cache("lstm", x, kernel, recurrent_kernel, bias, mask, go_backwards, dims,
                        input_bias=bias)
    outputs, h_last, c_last = _run_forward(cache, h0, c0, _lstm_step_forward)
    return outputs, h_last, c_last, cache


def lstm_backward(cache, d_outputs, d_h_last, d_c_last):
    """Gradients of :func:`lstm_forward`.

    Per step, with ``gh`` = dL/dh_t and ``gc`` = dL/dc_t from the future::

        do  = gh * tanh(c_t)
        gc' = gc + gh * o * (1 - tanh(c_t)**2)
        di  = gc' * c~     df = gc' * c_{t-1}     dc~ = gc' * i
        dL/dc_{t-1} = gc' * f
        dz_i = di * i(1-i)  dz_f = df * f(1-f)  dz_c = dc~ * (1-c~**2)  dz_o = do * o(1-o)

    and then, as for every gate-structured cell, the weight and input
    gradients of the matmuls (see :func:`rnn_backward`), per gate g.

    Returns:
        ``(dx, dh0, dc0, d_kernel, d_recurrent_kernel, d_bias)``.
    """
    d_outputs, d_h_last, d_c_last = _validate_backward(
        "lstm", cache, [("d_outputs", d_outputs, "seq"), ("d_h_last", d_h_last, "state"),
                        ("d_c_last", d_c_last, "state")])
    dx, dh0, dc0, d_kernel, grads = _run_backward(cache, d_outputs, d_h_last, d_c_last,
                                                  _lstm_step_backward)
    return dx, dh0, dc0, d_kernel, grads["d_recurrent_kernel"], grads["d_input_bias"]


# --------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------
def _gru_step_forward(cache, zx, h_prev, _c_prev):
    H, U, rm = cache.H, cache.recurrent_kernel, cache.rm
    reset_after = cache.options["reset_after"]
    b_rec = cache.options["recurrent_bias"]           # (3H,) zeros if not reset_after
    hz, hr, hh_in = (_dropped(h_prev, rm, g) for g in range(3))
    z = _sigmoid(_gate(zx, 0, H) + hz @ _gate(U, 0, H) + _gate(b_rec, 0, H))
    r = _sigmoid(_gate(zx, 1, H) + hr @ _gate(U, 1, H) + _gate(b_rec, 1, H))
    if reset_after:
        rec_h = hh_in @ _gate(U, 2, H) + _gate(b_rec, 2, H)
        hh = np.tanh(_gate(zx, 2, H) + r * rec_h)
        extra = rec_h
    else:
        q = r * hh_in
        hh = np.tanh(_gate(zx, 2, H) + q @ _gate(U, 2, H))
        extra = q
    h = z * h_prev + (1 - z) * hh
    return h, None, (h_prev, z, r, hh, extra)


def _gru_step_backward(cache, step, dh, _dc, grads):
    h_prev, z, r, hh, extra = step
    H, U, rm = cache.H, cache.recurrent_kernel, cache.rm
    reset_after = cache.options["reset_after"]
    dU = grads["d_recurrent_kernel"]
    db_rec = grads["d_recurrent_bias"]
    dz = dh * (h_prev - hh)
    da_h = dh * (1 - z) * (1 - hh * hh)               # grad wrt the tanh argument
    dh_prev = dh * z
    hh_in = _dropped(h_prev, rm, 2)
    if reset_after:
        rec_h = extra
        dr = da_h * rec_h
        drec_h = da_h * r
        dU[:, 2 * H:] += hh_in.T @ drec_h
        db_rec[2 * H:] += drec_h.sum(axis=0)
        dh_prev += _dropped(drec_h @ _gate(U, 2, H).T, rm, 2)
    else:
        q = extra
        dU[:, 2 * H:] += q.T @ da_h
        dq = da_h @ _gate(U, 2, H).T
        dr = dq * hh_in
        dh_prev += _dropped(dq * r, rm, 2)
    dz_pre = dz * z * (1 - z)
    dr_pre = dr * r * (1 - r)
    for g, d in ((0, dz_pre), (1, dr_pre)):
        dU[:, g * H:(g + 1) * H] += _dropped(h_prev, rm, g).T @ d
        db_rec[g * H:(g + 1) * H] += d.sum(axis=0)
        dh_prev += _dropped(d @ _gate(U, g, H).T, rm, g)
    return np.concatenate([dz_pre, dr_pre, da_h], axis=-1), dh_prev, None


def gru_forward(x, h0, kernel, recurrent_kernel, bias, *, mask=None, go_backwards=False,
                reset_after=True, dropout_mask=None, recurrent_dropout_mask=None):
    """GRU over a whole sequence (Keras 3 ``GRU``, gate order z, r, h).

    With ``xg = (x_t * dm[g]) @ kernel_g + b_in_g`` and
    ``hg = (h_{t-1} * rm[g])`` (g in z, r, h)::

        z  = sigmoid(xz + hz @ U_z + b_rec_z)
        r  = sigmoid(xr + hr @ U_r + b_rec_r)
        reset_after=True :  hh = tanh(xh + r * (hh_ @ U_h + b_rec_h))
        reset_after=False:  hh = tanh(xh + (r * hh_) @ U_h)
        h_t = z * h_{t-1} + (1 - z) * hh

    where ``hh_`` is ``h_{t-1} * rm[2]`` and the final mix uses the
    un-dropped ``h_{t-1}``.  ``U_g = recurrent_kernel[:, g*H:(g+1)*H]``.
    Bias: reset_after=True -> (2, 3H), row 0 = b_in, row 1 = b_rec;
    reset_after=False -> (3H,) = b_in (no recurrent bias).

    Args:
        x: (B, T, I).  h0: (B, H) or None.
        kernel: (I, 3H).  recurrent_kernel: (H, 3H).  bias: see above.
        mask, go_backwards: see module docstring.
        dropout_mask: optional (B, I) or (3, B, I).
        recurrent_dropout_mask: optional (B, H) or (3, B, H).

    Returns:
        ``(outputs (B, T, H), h_last (B, H), cache)``.
    """
    dims = _validate_forward("gru", x, h0, None, kernel, recurrent_kernel, bias, mask,
                             go_backwards, dropout_mask, recurrent_dropout_mask,
                             reset_after=reset_after)
    H = dims[3]
    if reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, np.zeros(3 * H, x.dtype)
    cache = _make_cache("gru", x, kernel, recurrent_kernel, bias, mask, go_backwards, dims,
                        reset_after=bool(reset_after), input_bias=input_bias,
                        recurrent_bias=recurrent_bias)
    outputs, h_last, _ = _run_forward(cache, h0, None, _gru_step_forward)
    return outputs, h_last, cache


def gru_backward(cache, d_outputs, d_h_last):
    """Gradients of :func:`gru_forward`.

    Per step, with ``g`` = dL/dh_t::

        dz   = g * (h_{t-1} - hh)             dL/dh_{t-1} += g * z
        da_h = g * (1 - z) * (1 - hh**2)      (grad of the tanh argument)
        reset_after=True : dr = da_h * (hh_ @ U_h + b_rec_h),
                           d(hh_ @ U_h + b_rec_h) = da_h * r
        reset_after=False: dq = da_h @ U_h^T,  dr = dq * hh_,
                           dL/dhh_ += dq * r,  dU_h += (r * hh_)^T da_h
        dz_pre = dz * z(1-z)     dr_pre = dr * r(1-r)

    followed by the usual matmul gradients per gate.  For reset_after=True
    d_bias is (2, 3H): row 0 the input-bias gradient, row 1 the
    recurrent-bias gradient.

    Returns:
        ``(dx, dh0, d_kernel, d_recurrent_kernel, d_bias)``.
    """
    d_outputs, d_h_last = _validate_backward(
        "gru", cache, [("d_outputs", d_outputs, "seq"), ("d_h_last", d_h_last, "state")])
    dx, dh0, _, d_kernel, grads = _run_backward(cache, d_outputs, d_h_last, None,
                                                _gru_step_backward)
    if cache.options["reset_after"]:
        d_bias = np.stack([grads["d_input_bias"], grads["d_recurrent_bias"]])
    else:
        d_bias = grads["d_input_bias"]
    return dx, dh0, d_kernel, grads["d_recurrent_kernel"], d_bias
