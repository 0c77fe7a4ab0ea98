"""Keras's default weight initialisers, on NumPy.

Each takes a ``numpy.random.Generator`` so that a seeded layer is reproducible. The recipes are
Keras's (``keras.initializers``); the random streams are NumPy's, so values differ from Keras's
for the same seed while following the same distributions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def glorot_uniform(shape: Sequence[int], rng: np.random.Generator, dtype: np.dtype = np.float32) -> np.ndarray:
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)); Keras's kernel default.

    For a 2-D shape (fan_in, fan_out).
    """
    fan_in, fan_out = int(shape[0]), int(shape[-1])
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=tuple(shape)).astype(dtype)


def orthogonal(shape: Sequence[int], rng: np.random.Generator, dtype: np.dtype = np.float32,
               gain: float = 1.0) -> np.ndarray:
    """A (semi-)orthogonal matrix from the QR decomposition of a normal matrix; Keras's
    recurrent-kernel default. For (H, G*H) the rows are orthonormal."""
    rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique, as Keras does
    if rows < cols:
        q = q.T
    return np.ascontiguousarray((gain * q[:rows, :cols]).reshape(tuple(shape)), dtype=dtype)


def zeros(shape: Sequence[int], dtype: np.dtype = np.float32) -> np.ndarray:
    return np.zeros(tuple(shape), dtype)


def lstm_unit_forget_bias(units: int, dtype: np.dtype = np.float32) -> np.ndarray:
    """LSTM bias (4H,) with the forget gate's quarter set to one (Keras's unit_forget_bias)."""
    bias = np.zeros(4 * units, dtype)
    bias[units:2 * units] = 1.0
    return bias
