"""One-hot input given as integer ids: the same numbers as the one-hot float input."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import ops

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _problem(rng, cell, dtype, dropout):
    B, T, V, H = (int(v) for v in rng.integers(1, 9, 4))
    V += 1
    G = GATES[cell]
    ids = rng.integers(0, V, (B, T))
    kernel = rng.standard_normal((V, G * H)).astype(dtype)
    recurrent = (0.3 * rng.standard_normal((H, G * H))).astype(dtype)
    bias = rng.standard_normal((2, G * H) if cell == "gru" else (G * H,)).astype(dtype)
    mask = rng.random((B, T)) > 0.2
    dmask = None
    if dropout == "shared":
        dmask = ((rng.random((B, V)) > 0.3) / 0.7).astype(dtype)
    elif dropout == "per_gate":
        dmask = ((rng.random((G, B, V)) > 0.3) / 0.7).astype(dtype)
    return ids, kernel, recurrent, bias, mask, dmask


@pytest.mark.parametrize("dropout", [None, "shared", "per_gate"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_ids_match_one_hot_floats(rng, seed, cell, dtype, dropout):
    ids, kernel, recurrent, bias, mask, dmask = _problem(rng, cell, dtype, dropout)
    x = np.eye(kernel.shape[0], dtype=dtype)[ids]
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    states = (None, None) if cell == "lstm" else (None,)
    dense = forward(x, *states, kernel, recurrent, bias, mask=mask, dropout_mask=dmask)
    onehot = forward(ids, *states, kernel, recurrent, bias, mask=mask, dropout_mask=dmask)
    tol = 1e-5 if dtype == "float32" else 1e-12  # only the summation order of d_kernel differs
    for a, b in zip(dense[:-1], onehot[:-1]):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=f"seed {seed}")
    d_out = rng.standard_normal(dense[0].shape).astype(dtype)
    d_last = [rng.standard_normal(dense[1].shape).astype(dtype) for _ in states]
    g_dense = backward(dense[-1], d_out, *d_last)
    g_onehot = backward(onehot[-1], d_out, *d_last)
    assert g_onehot[0] is None
    for a, b in zip(g_dense[1:], g_onehot[1:]):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=f"seed {seed}")


def test_layer_accepts_ids_after_build(rng, seed):
    layer = fusedrnn.LSTM(7, return_sequences=True, seed=seed)
    layer.build(10)
    ids = rng.integers(0, 10, (3, 5))
    y_ids = layer(ids)
    dx = layer.backward(np.ones_like(y_ids))
    grads_ids = [g.copy() for g in layer.grads]
    y_float = layer(np.eye(10, dtype=np.float32)[ids])
    layer.backward(np.ones_like(y_float))
    assert dx is None
    np.testing.assert_allclose(y_ids, y_float, rtol=1e-6, atol=1e-6, err_msg=f"seed {seed}")
    for a, b in zip(grads_ids, layer.grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"seed {seed}")


def test_bad_ids(rng):
    kernel = rng.standard_normal((4, 8)).astype(np.float32)
    recurrent = rng.standard_normal((2, 8)).astype(np.float32)
    bias = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match=r"x: ids must lie in \[0, 4\)"):
        ops.lstm_forward(np.array([[0, 4]]), None, None, kernel, recurrent, bias)
    with pytest.raises(ValueError, match="x: ids must lie"):
        ops.lstm_forward(np.array([[-1, 0]]), None, None, kernel, recurrent, bias)
    with pytest.raises(ValueError, match=r"x: expected integer ids of shape \(batch, time\)"):
        ops.lstm_forward(np.array([0, 1]), None, None, kernel, recurrent, bias)
    layer = fusedrnn.GRU(3)
    with pytest.raises(RuntimeError, match="build"):
        layer(np.array([[0, 1]]))
