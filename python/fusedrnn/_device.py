"""CUDA arrays for the CUDA backend: detection, description, allocation and streams.

fusedrnn does not depend on CuPy or PyTorch. An argument is a CUDA array when it exposes
``__cuda_array_interface__`` (CuPy, Numba, PyTorch CUDA tensors, ...) or a DLPack device of type
CUDA (``__dlpack_device__``); its pointer, shape, dtype, strides and device are read from those
protocols, and CuPy or PyTorch are used only for objects that come from them (they are then
already imported). Outputs are allocated with the library of ``x``: a CuPy array in, CuPy arrays
out; a torch tensor in, torch tensors out, on the same device. Kernels run on that library's
current stream.

:func:`cuda_available` says whether the compiled CUDA backend ``fusedrnn._cuda`` is present and
sees a device; :func:`cuda_unavailable_reason` says why not.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

# DLPack device types (dlpack.h).
_KDL_CUDA = 2
_KDL_CUDA_MANAGED = 13
_CUDA_DLPACK_DEVICES = (_KDL_CUDA, _KDL_CUDA_MANAGED)

# ---------------------------------------------------------------------------------------------
# The compiled backend
# ---------------------------------------------------------------------------------------------

_cuda_state: Optional[Tuple[Any, str]] = None  # (module or None, why it is missing)


def _preload_cublas() -> None:
    """Load cuBLAS from a pip ``nvidia-cublas`` wheel, if one is installed, before ``_cuda``.

    The extension's RPATH already points at ``site-packages/nvidia/cu13/lib``; this covers the
    layouts where that relative path does not hold (source trees, editable installs).
    """
    for entry in sys.path:
        for sub, version in (("cu13", "13"), ("cublas", "12")):
            lib_dir = os.path.join(entry or ".", "nvidia", sub, "lib")
            lt = os.path.join(lib_dir, f"libcublasLt.so.{version}")
            blas = os.path.join(lib_dir, f"libcublas.so.{version}")
            if os.path.exists(blas):
                try:
                    if os.path.exists(lt):
                        ctypes.CDLL(lt, mode=ctypes.RTLD_GLOBAL)
                    ctypes.CDLL(blas, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    continue
                return


def cuda_module() -> Any:
    """The ``fusedrnn._cuda`` extension, or None when this build has no CUDA backend."""
    global _cuda_state
    if _cuda_state is None:
        try:
            _preload_cublas()
            module = importlib.import_module("fusedrnn._cuda")
            _cuda_state = (module, "")
        except ImportError as exc:
            reason = str(exc)
            if isinstance(exc, ModuleNotFoundError) and exc.name == "fusedrnn._cuda":
                reason = ("fusedrnn._cuda was not built (it needs nvcc and cuBLAS at build time; "
                          "see docs/cuda.md)")
            else:
                reason = f"fusedrnn._cuda failed to load: {reason}"
            _cuda_state = (None, reason)
    return _cuda_state[0]


def cuda_unavailable_reason() -> str:
    """Why :func:`cuda_available` is False ('' when it is True)."""
    module = cuda_module()
    if module is None:
        assert _cuda_state is not None
        return _cuda_state[1]
    try:
        module.device_count(strict=True)
    except RuntimeError as exc:
        return f"no usable CUDA device: {exc}"
    if module.device_count() == 0:
        return "no CUDA device found"
    return ""


def cuda_available() -> bool:
    """True when the CUDA backend is built and at least one CUDA device can be used."""
    module = cuda_module()
    return module is not None and int(module.device_count()) > 0


def require_backend(name: str) -> Any:
    """The ``_cuda`` module, or TypeError naming the argument that brought a CUDA array."""
    module = cuda_module()
    if module is None:
        raise TypeError(f"{name}: got a CUDA array, but this build of fusedrnn has no CUDA backend "
                        f"({cuda_unavailable_reason()}); pass NumPy arrays or rebuild with CUDA")
    if int(module.device_count()) == 0:
        raise TypeError(f"{name}: got a CUDA array, but fusedrnn's CUDA backend cannot run here: "
                        f"{cuda_unavailable_reason()}")
    return module


# ---------------------------------------------------------------------------------------------
# Detection and description
# ---------------------------------------------------------------------------------------------

def _library(obj: Any) -> str:
    """'cupy', 'torch' or 'other': the library an object comes from, by its type's module."""
    root = type(obj).__module__.split(".")[0]
    return root if root in ("cupy", "torch") else "other"


def _dlpack_device(obj: Any) -> Optional[Tuple[int, int]]:
    fn = getattr(type(obj), "__dlpack_device__", None)
    if fn is None:
        return None
    try:
        dev_type, dev_id = fn(obj)
        return int(dev_type), int(dev_id)
    except Exception:  # noqa: BLE001 - a producer that cannot say is not a CUDA array
        return None


def _has_cuda_array_interface(obj: Any) -> bool:
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:  # noqa: BLE001 - e.g. torch raises RuntimeError for tensors that require grad
        return False


def is_cuda_array(obj: Any) -> bool:
    """Whether `obj` is an array in CUDA device memory (CAI or a CUDA DLPack device)."""
    if obj is None or isinstance(obj, (np.ndarray, np.generic, int, float, bool, str)):
        return False
    if _library(obj) == "torch" and hasattr(obj, "is_cuda"):
        return bool(obj.is_cuda)
    if _has_cuda_array_interface(obj):
        return True
    dev = _dlpack_device(obj)
    return dev is not None and dev[0] in _CUDA_DLPACK_DEVICES


def any_cuda_array(*objs: Any) -> bool:
    """Whether any argument is a CUDA array (cheap for NumPy arrays and None)."""
    return any(is_cuda_array(o) for o in objs)


def describe(obj: Any) -> str:
    """A short description for error messages."""
    if isinstance(obj, np.ndarray):
        return f"NumPy array of shape {obj.shape} and dtype {obj.dtype}"
    if is_cuda_array(obj):
        try:
            info = device_array("", obj)
            lib = {"cupy": "CuPy array", "torch": "torch tensor"}.get(info.library, f"CUDA array ({type(obj).__name__})")
            dev = "?" if info.device is None else info.device
            return f"{lib} of shape {info.shape} and dtype {info.dtype} on cuda:{dev}"
        except (TypeError, ValueError):
            return f"CUDA array ({type(obj).__name__})"
    return type(obj).__name__


@dataclass(frozen=True)
class DeviceArray:
    """What the kernels need to know about a CUDA array."""

    obj: Any                       # the array as given
    library: str                   # 'cupy', 'torch' or 'other'
    ptr: int                       # address of element 0
    shape: Tuple[int, ...]
    dtype: np.dtype
    strides: Optional[Tuple[int, ...]]  # in bytes; None means C-contiguous
    device: Optional[int]          # CUDA device ordinal (None: unknown)
    stream: Optional[int] = None   # CAI v3: the producer's stream to wait on before reading
    keepalive: Any = None          # e.g. a DLPack capsule that owns a reference to the memory

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def c_contiguous(self) -> bool:
        if self.strides is None:
            return True
        expected = self.dtype.itemsize
        for dim, stride in zip(reversed(self.shape), reversed(self.strides)):
            if dim != 1 and stride != expected:
                return False
            expected *= dim
        return True


def _torch_array(obj: Any) -> DeviceArray:
    import torch  # the object is a torch tensor, so torch is already imported

    name = str(obj.dtype).replace("torch.", "")
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise TypeError(f"unsupported torch dtype {obj.dtype}") from None
    strides = tuple(int(s) * obj.element_size() for s in obj.stride())
    device = obj.device.index if obj.device.index is not None else torch.cuda.current_device()
    return DeviceArray(obj, "torch", int(obj.data_ptr()), tuple(int(d) for d in obj.shape), dtype, strides,
                       int(device))


def _cai_array(obj: Any) -> DeviceArray:
    cai = obj.__cuda_array_interface__
    shape = tuple(int(d) for d in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    ptr = int(cai["data"][0] or 0)
    strides = cai.get("strides")
    strides = None if strides is None else tuple(int(s) for s in strides)
    stream = cai.get("stream")
    library = _library(obj)
    device: Optional[int] = None
    if library == "cupy":
        device = int(obj.device.id)
    elif ptr:
        module = cuda_module()
        if module is not None:
            found = int(module.pointer_device(ptr))
            device = found if found >= 0 else None
    return DeviceArray(obj, library, ptr, shape, dtype, strides, device,
                       None if stream is None else int(stream))


# DLPack structures (dlpack.h, ABI version 0.x: the unversioned "dltensor" capsule).
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_DL_CODES = {0: "i", 1: "u", 2: "f", 6: "b"}  # kDLInt, kDLUInt, kDLFloat, kDLBool


def _capsule_pointer(capsule: Any) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get(capsule, b"dltensor") or 0)


def _dlpack_array(obj: Any, stream: Optional[int]) -> DeviceArray:
    """Reads a DLPack capsule without consuming it (the capsule keeps the memory alive)."""
    dev = _dlpack_device(obj)
    assert dev is not None
    try:
        capsule = obj.__dlpack__(stream=stream)
    except TypeError:
        capsule = obj.__dlpack__()
    address = _capsule_pointer(capsule)
    if not address:
        raise TypeError("could not read the array's DLPack capsule")
    t = _DLManagedTensor.from_address(address).dl_tensor
    code = _DL_CODES.get(int(t.dtype.code))
    if code is None or int(t.dtype.lanes) != 1:
        raise TypeError(f"unsupported DLPack dtype (code {t.dtype.code}, {t.dtype.bits} bits)")
    dtype = np.dtype("?") if code == "b" else np.dtype(f"{code}{int(t.dtype.bits) // 8}")
    ndim = int(t.ndim)
    shape = tuple(int(t.shape[k]) for k in range(ndim))
    strides = None if not t.strides else tuple(int(t.strides[k]) * dtype.itemsize for k in range(ndim))
    ptr = int(t.data or 0) + int(t.byte_offset)
    return DeviceArray(obj, _library(obj), ptr, shape, dtype, strides, dev[1], None, keepalive=capsule)


def device_array(name: str, obj: Any, stream: Optional[int] = None) -> DeviceArray:
    """Pointer, shape, dtype, strides and device of a CUDA array, or TypeError naming it.

    `stream` is the consumer's stream, handed to DLPack producers so that they order their
    pending work before it.
    """
    if _library(obj) == "torch" and hasattr(obj, "data_ptr"):
        if not getattr(obj, "is_cuda", False):
            raise TypeError(f"{name}: expected a CUDA array, got a torch tensor on {obj.device}")
        return _torch_array(obj)
    if _has_cuda_array_interface(obj):
        return _cai_array(obj)
    dev = _dlpack_device(obj)
    if dev is not None and dev[0] in _CUDA_DLPACK_DEVICES:
        return _dlpack_array(obj, stream)
    raise TypeError(f"{name}: expected a CUDA array, got {describe(obj)}")


# ---------------------------------------------------------------------------------------------
# Allocation and streams, with the library of a reference array
# ---------------------------------------------------------------------------------------------

def _check_allocating_library(name: str, like: DeviceArray) -> None:
    if like.library not in ("cupy", "torch"):
        raise TypeError(f"{name}: CUDA arrays of type {type(like.obj).__module__}.{type(like.obj).__name__} "
                        "cannot be used to allocate the results; pass a CuPy array or a torch tensor")


def empty(like: DeviceArray, shape: Tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised C-contiguous array of `like`'s library on `like`'s device."""
    dtype = np.dtype(dtype)
    if like.library == "cupy":
        import cupy

        with cupy.cuda.Device(like.device):
            return cupy.empty(shape, dtype=dtype)
    if like.library == "torch":
        import torch

        tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                  np.dtype(np.int32): torch.int32, np.dtype(np.uint8): torch.uint8,
                  np.dtype(np.bool_): torch.bool}[dtype]
        return torch.empty(shape, dtype=tdtype, device=torch.device("cuda", like.device))
    _check_allocating_library("x", like)
    raise AssertionError("unreachable")


def zeros(like: DeviceArray, shape: Tuple[int, ...], dtype: Any) -> Any:
    """A zero-filled array of `like`'s library on `like`'s device (enqueued on its current stream)."""
    out = empty(like, shape, dtype)
    if like.library == "cupy":
        out.fill(0)
    else:
        out.zero_()
    return out


def ascontiguous(info: DeviceArray, name: str) -> DeviceArray:
    """`info` itself when C-contiguous, else a contiguous copy made by its library."""
    if info.c_contiguous:
        return info
    if info.library == "cupy":
        import cupy

        with cupy.cuda.Device(info.device):
            return device_array(name, cupy.ascontiguousarray(info.obj))
    if info.library == "torch":
        return device_array(name, info.obj.contiguous())
    raise ValueError(f"{name}: must be C-contiguous, got strides {info.strides}")


def reshape(info: DeviceArray, shape: Tuple[int, ...]) -> Any:
    """A reshaped view of a contiguous array (the object itself for other libraries)."""
    if info.library in ("cupy", "torch"):
        return info.obj.reshape(shape)
    return info.obj


def to_numpy(obj: Any) -> np.ndarray:
    """Copy a CuPy array or torch tensor to the host (synchronising with its stream)."""
    if _library(obj) == "cupy":
        return obj.get()
    if _library(obj) == "torch":
        return obj.detach().cpu().numpy()
    raise TypeError(f"cannot copy {type(obj).__name__} to the host")


def current_stream(like: DeviceArray) -> int:
    """The current CUDA stream (cudaStream_t as an int) of `like`'s library on its device."""
    if like.library == "cupy":
        import cupy

        with cupy.cuda.Device(like.device):
            return int(cupy.cuda.get_current_stream().ptr)
    if like.library == "torch":
        import torch

        return int(torch.cuda.current_stream(like.device).cuda_stream)
    _check_allocating_library("x", like)
    raise AssertionError("unreachable")
