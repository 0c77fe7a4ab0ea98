"""fusedrnn: fused C++ kernels for SimpleRNN, LSTM and GRU, numerically identical to Keras.

Quick start::

    import numpy as np, fusedrnn
    layer = fusedrnn.LSTM(64, return_sequences=True)
    y = layer(np.random.rand(8, 20, 32).astype(np.float32))    # (8, 20, 64)
    dx = layer.backward(np.ones_like(y))                       # fills layer.grads

For inference, ``with fusedrnn.no_grad():`` makes the recurrent layers keep no cache for
backward (faster, O(batch * units) memory). Functional ops (forward/backward with explicit
caches) live in :mod:`fusedrnn.ops`; the
training toolkit (``Sequential``, ``fit``, checkpoints) in :mod:`fusedrnn.training`, losses in
:mod:`fusedrnn.losses`, optimizers in :mod:`fusedrnn.optimizers`, the reference tasks in
:mod:`fusedrnn.tasks`.
"""

from __future__ import annotations

from fusedrnn._blas import blas_core, preload_openblas

preload_openblas()

from fusedrnn import _C  # noqa: E402
from fusedrnn import ops  # noqa: E402
from fusedrnn.grad_mode import is_grad_enabled, no_grad  # noqa: E402
from fusedrnn.layers import (GRU, LSTM, AdditiveAttention, Attention, BahdanauAttention, Bidirectional,  # noqa: E402
                             Dense, Dropout, Embedding, SimpleRNN)

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Set how many threads the CPU kernels use (default: ``OMP_NUM_THREADS`` or all cores)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """How many threads the CPU kernels use."""
    return int(_C.get_num_threads())


__all__ = ["AdditiveAttention", "Attention", "BahdanauAttention", "Bidirectional", "Dense", "Dropout", "Embedding",
           "GRU", "LSTM", "SimpleRNN", "blas_core", "get_num_threads", "is_grad_enabled", "no_grad", "ops", "set_num_threads",
           "__version__"]
