"""The CUDA path of the recurrent ops (SimpleRNN, LSTM, GRU): same signatures, checks, results and
cache contents as the CPU ops in :mod:`fusedrnn.ops.recurrent`, for CUDA arrays.

``x`` must be a CuPy array or a torch tensor in device memory: the results are allocated with
that library on x's device, and the kernels run on that library's current stream (CuPy's
``cupy.cuda.get_current_stream()``, torch's ``torch.cuda.current_stream()``), so they are ordered
with the caller's other work like any CuPy/torch operation: nothing here synchronises with the
host except the NaN/inf check of the inputs (one small device-to-host copy per call). The other
arrays may be any CUDA arrays (``__cuda_array_interface__`` or DLPack) on the same device.

:func:`set_allow_tf32` lets float32 GEMMs use TF32 tensor cores (off by default: Keras's
numbers need full float32 GEMMs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fusedrnn import _device
from fusedrnn._device import DeviceArray
from fusedrnn.ops._recurrent_cache import GATES, RecurrentCache, bias_spec, units_from_kernel
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

_check_finite = True


def set_allow_tf32(on: bool) -> None:
    """Let float32 GEMMs of the CUDA ops run on TF32 tensor cores (about 1e-3 relative error)."""
    _device.require_backend("set_allow_tf32").set_allow_tf32(bool(on))


def set_check_finite(on: bool) -> None:
    """Turn the NaN/inf check of CUDA inputs on (default) or off. Off saves one device-to-host
    synchronisation per call; NaN or inf in the inputs then propagate instead of raising."""
    global _check_finite
    _check_finite = bool(on)


# ---------------------------------------------------------------------------------------------
# Argument checks (the CPU ops' messages, for CUDA arrays)
# ---------------------------------------------------------------------------------------------

class _Call:
    """The device, library and stream of one call, fixed by x, and the checks of its arrays."""

    def __init__(self, x_name: str, x: Any, others: Sequence[Tuple[str, Any]]):
        if not _device.is_cuda_array(x):
            # x is on the host but another argument is not: name the odd one out.
            for name, value in others:
                if _device.is_cuda_array(value):
                    raise TypeError(f"{name}: got a CUDA array, but {x_name} is a {_device.describe(x)}; all "
                                    "arrays of one call must be on the same device")
            raise TypeError(f"{x_name}: expected a CUDA array, got {_device.describe(x)}")
        self.module = _device.require_backend(x_name)
        self.x = _device.device_array(x_name, x)
        if self.x.library not in ("cupy", "torch"):
            raise TypeError(f"{x_name}: the CUDA ops allocate their results with the library of {x_name}, "
                            f"which must be CuPy or PyTorch, got {type(x).__module__}.{type(x).__name__}")
        if self.x.device is None:
            raise ValueError(f"{x_name}: could not tell which CUDA device holds it")
        self.device = self.x.device
        self.stream = _device.current_stream(self.x)
        self.x_name = x_name
        self._finite: List[Tuple[str, DeviceArray]] = []

    # -- single arrays --------------------------------------------------------------------------
    def array(self, name: str, a: Any) -> DeviceArray:
        """A CUDA array on the call's device (TypeError/ValueError naming it otherwise)."""
        if not _device.is_cuda_array(a):
            raise TypeError(f"{name}: expected a CUDA array on cuda:{self.device} like {self.x_name}, got "
                            f"{_device.describe(a)}; all arrays of one call must be on the same device")
        info = _device.device_array(name, a, self.stream)
        if info.device is not None and info.device != self.device:
            raise ValueError(f"{name}: is on cuda:{info.device} but {self.x_name} is on cuda:{self.device}; "
                             "all arrays of one call must be on the same device")
        if info.stream is not None and not _same_stream(info.stream, self.stream):
            self.module.stream_wait(self.stream, info.stream, self.device)
        return info

    def float_array(self, name: str, a: Any, dtype: Optional[np.dtype] = None) -> DeviceArray:
        info = self.array(name, a)
        if info.dtype not in _FLOATS:
            raise TypeError(f"{name}: expected float32 or float64, got {info.dtype}")
        if dtype is not None and info.dtype != dtype:
            raise TypeError(f"{name}: expected dtype {dtype} (the dtype of x), got {info.dtype}")
        return info

    def float_input(self, name: str, a: Any, dtype: np.dtype, shape: Sequence[int], what: str = "") -> DeviceArray:
        info = self.float_array(name, a, dtype)
        _check_shape(name, info, shape, what)
        self.contiguous(name, info)
        self._finite.append((name, info))
        return info

    def optional_float_input(self, name: str, a: Any, dtype: np.dtype, shape: Sequence[int],
                             what: str = "") -> Optional[DeviceArray]:
        return None if a is None else self.float_input(name, a, dtype, shape, what)

    @staticmethod
    def contiguous(name: str, info: DeviceArray) -> None:
        if not info.c_contiguous:
            raise ValueError(f"{name}: must be C-contiguous, got strides {info.strides}")

    def bool_mask(self, name: str, a: Any, shape: Sequence[int]) -> Optional[DeviceArray]:
        if a is None:
            return None
        info = self.array(name, a)
        if info.dtype != np.bool_:
            raise TypeError(f"{name}: expected a boolean array, got {info.dtype}")
        _check_shape(name, info, shape, "(batch, time)")
        return _device.ascontiguous(info, name)

    def dropout_mask(self, name: str, a: Any, dtype: np.dtype, gates: int, batch: int, width: int,
                     what: str, from_cache: bool = False) -> Optional[Tuple[DeviceArray, int]]:
        """(the mask, how many masks it holds) for a (batch, width) or (gates, batch, width) mask;
        a cache also holds (1, batch, width)."""
        if a is None:
            return None
        info = self.float_array(name, a, dtype)
        if info.shape == (batch, width) or (from_cache and info.shape == (1, batch, width)):
            n = 1
        elif info.shape == (gates, batch, width):
            n = gates
        else:
            raise ValueError(
                f"{name}: expected shape ({batch}, {width}) or ({gates}, {batch}, {width}) "
                f"(batch, {what}) or (gates, batch, {what}), got {tuple(info.shape)}")
        self.contiguous(name, info)
        self._finite.append((name, info))
        return info, n

    # -- whole call -----------------------------------------------------------------------------
    def check_finite(self) -> None:
        """One NaN/inf check over every float input (one kernel each, one copy to the host)."""
        if not _check_finite or not self._finite:
            return
        flags = _device.empty(self.x, (len(self._finite),), np.int32)
        flags_info = _device.device_array("flags", flags)
        self.module.nonfinite_flags([(i.ptr, i.size, i.dtype == np.float64) for _, i in self._finite],
                                    flags_info.ptr, self.device, self.stream)
        bad = _device.to_numpy(flags)
        for (name, _), flag in zip(self._finite, bad):
            if flag:
                raise ValueError(f"{name}: contains NaN or inf")

    def empty(self, shape: Tuple[int, ...], dtype: np.dtype) -> Tuple[Any, int]:
        out = _device.empty(self.x, shape, dtype)
        return out, _device.device_array("output", out).ptr

    def zeros(self, name: str, shape: Tuple[int, ...], dtype: np.dtype) -> DeviceArray:
        return _device.device_array(name, _device.zeros(self.x, shape, dtype))

    def workspace(self, nbytes: int) -> Tuple[Any, int]:
        ws = _device.empty(self.x, (max(int(nbytes), 1),), np.uint8)
        return ws, _device.device_array("workspace", ws).ptr


def _same_stream(a: int, b: int) -> bool:
    # 0 and 1 (cudaStreamLegacy) both name the legacy default stream.
    return a == b or (a in (0, 1) and b in (0, 1))


def _check_shape(name: str, info: DeviceArray, shape: Sequence[int], what: str = "") -> None:
    if tuple(info.shape) != tuple(shape):
        hint = f" {what}" if what else ""
        raise ValueError(f"{name}: expected shape {tuple(shape)}{hint}, got {tuple(info.shape)}")


def _ptr(info: Optional[DeviceArray]) -> int:
    return 0 if info is None else info.ptr


# ---------------------------------------------------------------------------------------------
# forward / backward
# ---------------------------------------------------------------------------------------------

def forward(cell: str, x: Any, h0: Any, c0: Any, kernel: Any, recurrent_kernel: Any, bias: Any, *,
            mask: Any, go_backwards: bool, activation: str, reset_after: bool, dropout_mask: Any,
            recurrent_dropout_mask: Any) -> Tuple[Any, Any, Optional[Any], Any]:
    """The CUDA counterpart of ``_cpu_recurrent.forward``: (outputs, h_last, c_last, cache); the CUDA
    kernels save every step, so the caller drops the cache for ``keep_cache=False``."""
    gates = GATES[cell]
    others = [("h0", h0), ("c0", c0), ("kernel", kernel), ("recurrent_kernel", recurrent_kernel), ("bias", bias),
              ("mask", mask), ("dropout_mask", dropout_mask), ("recurrent_dropout_mask", recurrent_dropout_mask)]
    call = _Call("x", x, others)
    xi = call.float_array("x", x)
    if xi.ndim != 3:
        raise ValueError(f"x: expected a 3-D array (batch, time, features), got shape {xi.shape}")
    B, T, I = xi.shape
    if B == 0 or T == 0 or I == 0:
        raise ValueError(f"x: batch, time and feature sizes must be at least 1, got shape {xi.shape}")
    dtype = xi.dtype
    call.contiguous("x", xi)
    call._finite.append(("x", xi))
    ki = call.float_array("kernel", kernel, dtype)
    H = units_from_kernel(cell, ki.shape, I)
    ki = call.float_input("kernel", kernel, dtype, (I, gates * H))
    ri = call.float_input("recurrent_kernel", recurrent_kernel, dtype, (H, gates * H), "(units, gates*units)")
    bi = call.float_input("bias", bias, dtype, *bias_spec(cell, reset_after, H))
    h0i = call.zeros("h0", (B, H), dtype) if h0 is None else call.float_input("h0", h0, dtype, (B, H), "(batch, units)")
    c0i = None
    if cell == "lstm":
        c0i = call.zeros("c0", (B, H), dtype) if c0 is None else call.float_input("c0", c0, dtype, (B, H), "(batch, units)")
    mi = call.bool_mask("mask", mask, (B, T))
    dm = call.dropout_mask("dropout_mask", dropout_mask, dtype, gates, B, I, "features")
    rm = call.dropout_mask("recurrent_dropout_mask", recurrent_dropout_mask, dtype, gates, B, H, "units")
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation: expected 'tanh' or 'relu', got {activation!r}")
    go_backwards = bool(go_backwards)
    call.check_finite()

    outputs, p_out = call.empty((B, T, H), dtype)
    h_last, p_h = call.empty((B, H), dtype)
    c_last, p_c = call.empty((B, H), dtype) if cell == "lstm" else (None, 0)
    saved_gates, p_g = call.empty((B, T, gates * H), dtype)
    hprev, p_hp = call.empty((B, T, H), dtype)
    aux, p_aux = call.empty((B, T, H), dtype) if cell != "rnn" else (None, 0)

    args: Dict[str, Any] = _problem_args(cell, activation, reset_after, go_backwards, dtype, B, T, I, H, xi, h0i,
                                         c0i, ki, ri, bi, mi, dm, rm, call)
    args.update(outputs=p_out, h_last=p_h, c_last=p_c, gates=p_g, hprev=p_hp, aux=p_aux)
    nbytes = int(call.module.forward_workspace_bytes(args))
    workspace, p_ws = call.workspace(nbytes)
    args.update(workspace=p_ws, workspace_bytes=nbytes)
    call.module.recurrent_forward(args)
    del workspace  # the caching allocators order its reuse after this stream's work

    cache = RecurrentCache(cell, activation, bool(reset_after), go_backwards, xi.obj, h0i.obj,
                           None if c0i is None else c0i.obj, ki.obj, ri.obj, bi.obj,
                           None if mi is None else mi.obj, _mask_3d(dm, B), _mask_3d(rm, B),
                           saved_gates, hprev, aux)
    return outputs, h_last, c_last, cache


def backward(cell: str, cache: Any, d_outputs: Any, d_h_last: Any, d_c_last: Any) -> Tuple[Any, ...]:
    """The CUDA counterpart of ``_cpu_recurrent.backward``: (dx, dh0, dc0, d_kernel, d_recurrent_kernel,
    d_bias). The caller (``fusedrnn.ops.recurrent``) has checked that `cache` is a RecurrentCache of `cell`."""
    others = [("d_outputs", d_outputs), ("d_h_last", d_h_last), ("d_c_last", d_c_last)]
    call = _Call("cache.x", cache.x, others)
    gates = GATES[cell]
    xi = call.float_array("cache.x", cache.x)
    B, T, I = xi.shape
    H = int(cache.h0.shape[1])
    dtype = xi.dtype
    GH = gates * H
    h0i = call.float_array("cache.h0", cache.h0, dtype)
    c0i = call.float_array("cache.c0", cache.c0, dtype) if cell == "lstm" else None
    ki = call.float_array("cache.kernel", cache.kernel, dtype)
    ri = call.float_array("cache.recurrent_kernel", cache.recurrent_kernel, dtype)
    bi = call.float_array("cache.bias", cache.bias, dtype)
    mi = None if cache.mask is None else call.array("cache.mask", cache.mask)
    dm = call.dropout_mask("cache.dropout_mask", cache.dropout_mask, dtype, gates, B, I, "features", True)
    rm = call.dropout_mask("cache.recurrent_dropout_mask", cache.recurrent_dropout_mask, dtype, gates, B, H, "units",
                           True)
    gi = call.float_array("cache.gates", cache.gates, dtype)
    _check_shape("cache.gates", gi, (B, T, GH))
    hpi = call.float_array("cache.hprev", cache.hprev, dtype)
    _check_shape("cache.hprev", hpi, (B, T, H))
    auxi = None
    if cell != "rnn":
        auxi = call.float_array("cache.aux", cache.aux, dtype)
        _check_shape("cache.aux", auxi, (B, T, H))
    call._finite = []  # the cache was checked (or computed) by the forward op
    do = call.optional_float_input("d_outputs", d_outputs, dtype, (B, T, H), "(batch, time, units)")
    dhl = call.optional_float_input("d_h_last", d_h_last, dtype, (B, H), "(batch, units)")
    dcl = call.optional_float_input("d_c_last", d_c_last, dtype, (B, H), "(batch, units)") if cell == "lstm" else None
    call.check_finite()

    two_biases = cell == "gru" and cache.reset_after
    dx, p_dx = call.empty((B, T, I), dtype)
    dh0, p_dh0 = call.empty((B, H), dtype)
    dc0, p_dc0 = call.empty((B, H), dtype) if cell == "lstm" else (None, 0)
    dk, p_dk = call.empty((I, GH), dtype)
    drk, p_drk = call.empty((H, GH), dtype)
    db, p_db = call.empty((2, GH) if two_biases else (GH,), dtype)

    args = _problem_args(cell, cache.activation, cache.reset_after, cache.go_backwards, dtype, B, T, I, H, xi, h0i,
                         c0i, ki, ri, bi, mi, dm, rm, call)
    args.update(gates=gi.ptr, hprev=hpi.ptr, aux=_ptr(auxi), d_outputs=_ptr(do), d_h_last=_ptr(dhl),
                d_c_last=_ptr(dcl), dx=p_dx, dh0=p_dh0, dc0=p_dc0, d_kernel=p_dk, d_recurrent_kernel=p_drk,
                d_bias=p_db)
    nbytes = int(call.module.backward_workspace_bytes(args))
    workspace, p_ws = call.workspace(nbytes)
    args.update(workspace=p_ws, workspace_bytes=nbytes)
    call.module.recurrent_backward(args)
    del workspace
    return dx, dh0, dc0, dk, drk, db


def _problem_args(cell: str, activation: str, reset_after: bool, go_backwards: bool, dtype: np.dtype, B: int,
                  T: int, I: int, H: int, xi: DeviceArray, h0i: DeviceArray, c0i: Optional[DeviceArray],
                  ki: DeviceArray, ri: DeviceArray, bi: DeviceArray, mi: Optional[DeviceArray],
                  dm: Optional[Tuple[DeviceArray, int]], rm: Optional[Tuple[DeviceArray, int]],
                  call: _Call) -> Dict[str, Any]:
    return dict(
        cell=cell, activation=activation, reset_after=bool(reset_after), go_backwards=bool(go_backwards),
        dtype=str(dtype), batch=int(B), steps=int(T), input_size=int(I), units=int(H),
        x=xi.ptr, h0=h0i.ptr, c0=_ptr(c0i), kernel=ki.ptr, recurrent_kernel=ri.ptr, bias=bi.ptr, mask=_ptr(mi),
        dropout_mask=0 if dm is None else dm[0].ptr, n_dropout=0 if dm is None else dm[1],
        recurrent_dropout_mask=0 if rm is None else rm[0].ptr, n_recurrent_dropout=0 if rm is None else rm[1],
        device=call.device, stream=call.stream)


def _mask_3d(m: Optional[Tuple[DeviceArray, int]], batch: int) -> Any:
    """The dropout mask as the CPU cache keeps it: (n, B, width)."""
    if m is None:
        return None
    info, n = m
    if info.ndim == 3:
        return info.obj
    return _device.reshape(info, (1,) + tuple(info.shape))
