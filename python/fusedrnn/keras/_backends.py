"""Which Keras backend runs and on which device: the checks every fused layer of this package makes.

The fused kernels run on host (CPU) memory. A layer runs them when the Keras backend is one its
family has a fused path for (the recurrent layers: TensorFlow and PyTorch; the attention layers:
TensorFlow) and that backend computes on the CPU; otherwise it runs Keras's own implementation
(cuDNN and the like on a GPU).
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Optional

import keras

__all__ = ["backend_reason", "on_gpu"]


@functools.lru_cache(maxsize=None)
def _tensorflow_sees_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _torch_device() -> str:
    """The device Keras's PyTorch backend creates its tensors and variables on ("cpu", "cuda", ...)."""
    try:
        from keras.src.backend.torch.core import get_device
    except ImportError:   # a Keras without that helper: its default is CUDA whenever PyTorch sees one
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(get_device())


def backend_reason(fused_backends: Iterable[str]) -> Optional[str]:
    """Why a layer with a fused path on ``fused_backends`` (Keras backend names) runs Keras's own
    implementation under the current backend and device; None when the fused path can run."""
    fused_backends = sorted(fused_backends)
    backend = keras.backend.backend()
    if backend not in fused_backends:
        return (f"the Keras backend is {backend!r}; this layer runs the fused kernels on the "
                f"{', '.join(repr(b) for b in fused_backends)} backend, Keras's own implementation runs here")
    if backend == "tensorflow" and _tensorflow_sees_gpu():
        return "TensorFlow sees a GPU: Keras's own implementation (cuDNN) runs there"
    if backend == "torch":
        device = _torch_device()
        if not device.lower().startswith("cpu"):
            return (f"Keras's PyTorch backend computes on {device!r}: Keras's own implementation runs there "
                    "(the fused kernels take CPU tensors)")
    return None


def on_gpu(tensor: Any) -> bool:
    """True when ``tensor`` (a TensorFlow or PyTorch tensor) sits on a device other than the CPU."""
    device = getattr(tensor, "device", None)
    if isinstance(device, str):     # TensorFlow: ".../device:GPU:0"; an empty string before placement
        return "GPU" in device.upper()
    device_type = getattr(device, "type", None)   # torch.device
    return isinstance(device_type, str) and device_type != "cpu"
