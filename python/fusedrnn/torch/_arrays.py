"""Tensors in and out of fusedrnn's NumPy ops: argument checks, zero-copy views, device dispatch.

A contiguous CPU tensor reaches the kernels as a NumPy view of its memory (``Tensor.numpy()``
shares it); a non-contiguous one is copied once. The kernels' NumPy results come back as
tensors over the same memory (``torch.from_numpy``). CUDA tensors are handed to
:mod:`fusedrnn.ops` as they are (its CUDA path takes torch tensors and returns torch tensors) when
the CUDA backend ``fusedrnn._cuda`` is built; otherwise :func:`check_device` raises.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch

from fusedrnn import _device

FLOAT_DTYPES = (torch.float32, torch.float64)
_NUMPY_DTYPES = FLOAT_DTYPES + (torch.bool, torch.int32, torch.int64, torch.uint8, torch.int8, torch.int16)


def require_tensor(name: str, t: Any, optional: bool = False) -> None:
    """TypeError naming `name` unless `t` is a tensor (or None when `optional`)."""
    if t is None and optional:
        return
    if not isinstance(t, torch.Tensor):
        what = "a tensor or None" if optional else "a tensor"
        raise TypeError(f"{name}: expected {what}, got {type(t).__name__}")


def require_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 tensor, got {t.dtype}")


def all_on_cpu(tensors: Sequence[Any]) -> bool:
    """Whether every tensor (None skipped) is a CPU tensor or a NumPy array: the cheap test that
    spares the common case the naming and checks of :func:`check_device`."""
    for t in tensors:
        if t is not None and not isinstance(t, np.ndarray) and not t.is_cpu:
            return False
    return True


def check_device(named: Sequence[Tuple[str, Optional[torch.Tensor]]]) -> bool:
    """Checks that every tensor sits on the first one's device and that fusedrnn can run there.

    Returns True for CUDA tensors (then the CUDA backend is built and sees a device), False for
    CPU tensors; raises ValueError naming the first tensor on another device, or RuntimeError
    when the tensors are on CUDA and this build of fusedrnn has no CUDA backend.
    """
    first_name, first = named[0]
    assert first is not None
    device = first.device
    for name, t in named[1:]:
        if t is not None and t.device != device:
            raise ValueError(f"{name}: expected a tensor on {device} (the device of {first_name}), got one on {t.device}")
    if device.type == "cpu":
        return False
    if device.type == "cuda":
        if _device.cuda_module() is None or not _device.cuda_available():
            raise RuntimeError(f"{first_name}: is a CUDA tensor, but fusedrnn's CUDA backend cannot run it "
                               f"({_device.cuda_unavailable_reason()}); move the tensors to the CPU or build "
                               "fusedrnn with CUDA (docs/cuda.md)")
        return True
    raise ValueError(f"{first_name}: expected a CPU or CUDA tensor, got one on {device}")


def to_host(name: str, t: Any) -> Optional[np.ndarray]:
    """A NumPy array over the memory of a CPU tensor (one copy if it is not contiguous); a NumPy
    array (weights the modules keep as host views) as it is."""
    if t is None or isinstance(t, np.ndarray):
        return t
    if t.dtype not in _NUMPY_DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 tensor, got {t.dtype}")
    if t.requires_grad:
        t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


def on_device(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A CUDA tensor as the CUDA ops read it: detached, contiguous (one copy if it is not)."""
    if t is None:
        return None
    t = t.detach()
    return t if t.is_contiguous() else t.contiguous()


def none_if_empty(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The inverse of the (0,) placeholder that custom ops return where the NumPy op returns None."""
    if t is None or (t.dim() == 1 and t.shape[0] == 0):
        return None
    return t


def empty_for_none(like: torch.Tensor, results: Sequence[Optional[torch.Tensor]]) -> Tuple[torch.Tensor, ...]:
    """An operator's results: an empty (0,) tensor stands for None (custom ops return tensors);
    :func:`none_if_empty` reads it back."""
    return tuple(like.new_empty((0,)) if r is None else r for r in results)
