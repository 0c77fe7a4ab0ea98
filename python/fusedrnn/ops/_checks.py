"""Argument checks shared by the ops: every failure names the argument and what was expected."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fusedrnn import _C

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def instance_of(name: str, a: Any, cls: type) -> Any:
    """`a` itself; TypeError naming `name` unless it is a fusedrnn.ops.<cls> (the handles the ops take:
    PackedWeights, PackedDense, CheckedWeights)."""
    if not isinstance(a, cls):
        raise TypeError(f"{name}: expected a fusedrnn.ops.{cls.__name__}, got {describe(a)}")
    return a


def as_array(name: str, a: Any) -> np.ndarray:
    """The argument as a NumPy array, or TypeError naming it (CUDA arrays are rejected here)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "__cuda_array_interface__") or hasattr(a, "__dlpack_device__") and not hasattr(a, "__array__"):
        raise TypeError(f"{name}: got a GPU array, but this build of fusedrnn has only the CPU backend; "
                        "pass a NumPy array")
    raise TypeError(f"{name}: expected a NumPy array, got {describe(a)}")


def check_float(name: str, a: Any, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """A float32/float64 array matching `dtype` when given."""
    a = as_array(name, a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of x), got {a.dtype}")
    return a


def check_flag(name: str, a: Any) -> bool:
    """A True/False argument (Python or NumPy bool)."""
    if not isinstance(a, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {a!r}")
    return bool(a)


def check_shape(name: str, a: np.ndarray, shape: Sequence[int], what: str = "") -> None:
    """Exact shape match; `what` explains the expected axes, e.g. '(batch, units)'."""
    if tuple(a.shape) != tuple(shape):
        hint = f" {what}" if what else ""
        raise ValueError(f"{name}: expected shape {tuple(shape)}{hint}, got {tuple(a.shape)}")


def check_contiguous(name: str, a: np.ndarray) -> None:
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous (use np.ascontiguousarray), got strides {a.strides}")


def check_finite(name: str, a: np.ndarray) -> None:
    """ValueError naming `name` if `a` holds NaN or inf. A C-contiguous float32/float64 array is
    checked by the compiled kernels (one vectorised pass, on the kernels' threads when large);
    any other array through NumPy."""
    if isinstance(a, np.ndarray) and a.dtype in FLOAT_DTYPES and a.flags.c_contiguous:
        finite = _C.all_finite(a)
    else:
        finite = bool(np.isfinite(a).all())
    if not finite:
        raise ValueError(f"{name}: contains NaN or inf")


def float_input(name: str, a: Any, dtype: np.dtype, shape: Sequence[int], what: str = "", finite: bool = True
                ) -> np.ndarray:
    """All checks for a float input the kernels read: dtype, shape, contiguity, finiteness (unless
    `finite` is False: weights checked when they were packed, fusedrnn.ops.packed)."""
    a = check_float(name, a, dtype)
    check_shape(name, a, shape, what)
    check_contiguous(name, a)
    if finite:
        check_finite(name, a)
    return a


def optional_float_input(name: str, a: Any, dtype: np.dtype, shape: Sequence[int], what: str = "") -> Optional[np.ndarray]:
    return None if a is None else float_input(name, a, dtype, shape, what)


def bool_mask(name: str, a: Any, shape: Sequence[int]) -> Optional[np.ndarray]:
    """A (batch, time) boolean mask as the uint8 array the kernels read."""
    if a is None:
        return None
    a = as_array(name, a)
    if a.dtype != np.bool_:
        raise TypeError(f"{name}: expected a boolean array, got {a.dtype}")
    check_shape(name, a, shape, "(batch, time)")
    return np.ascontiguousarray(a).view(np.uint8)


def dropout_mask(name: str, a: Any, dtype: np.dtype, gates: int, batch: int, width: int, what: str) -> Optional[np.ndarray]:
    """A dropout mask of shape (batch, width) or (gates, batch, width), as (n, batch, width)."""
    if a is None:
        return None
    a = check_float(name, a, dtype)
    if a.shape == (batch, width):
        a = a.reshape(1, batch, width)
    elif a.shape != (gates, batch, width):
        raise ValueError(
            f"{name}: expected shape ({batch}, {width}) or ({gates}, {batch}, {width}) "
            f"(batch, {what}) or (gates, batch, {what}), got {tuple(a.shape)}")
    check_contiguous(name, a)
    check_finite(name, a)
    return a


def token_ids(name: str, a: Any, vocab: int) -> np.ndarray:
    """Integer ids (batch, time) in [0, vocab), as the contiguous int32 array the kernels read."""
    a = as_array(name, a)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected integer ids of shape (batch, time), got shape {a.shape}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >= vocab):
        raise ValueError(f"{name}: ids must lie in [0, {vocab}) (the kernel's rows), got values in "
                         f"[{int(a.min())}, {int(a.max())}]")
    return np.ascontiguousarray(a, dtype=np.int32)
