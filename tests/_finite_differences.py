"""Central finite differences for the float64 gradient checks of the layer tests."""

from __future__ import annotations

from typing import Callable

import numpy as np

EPS = 1e-6
FD_RTOL = 1e-6


def central_difference(f: Callable[[], float], array: np.ndarray, eps: float = EPS) -> np.ndarray:
    """d f / d array by central differences (array is perturbed in place and restored)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def fd_close(analytic: np.ndarray, numeric: np.ndarray, what: str, seed: int) -> None:
    """Asserts the analytic gradient within FD_RTOL of the finite-difference one (relative to its scale)."""
    err = float(np.max(np.abs(analytic - numeric), initial=0.0))
    scale = float(np.max(np.abs(numeric), initial=0.0))
    assert err <= FD_RTOL * scale + 1e-9, f"{what}: |analytic - fd| = {err:.3g} vs scale {scale:.3g} (seed {seed})"
