"""``gate_major=True`` backward: the weight gradients in torch.nn's layout, (G*H, I) and (G*H, H).

The kernels compute the same products either way and only write them out differently, so the
gate-major gradients must equal the transposes of the default ones exactly, on every path that
writes weight gradients: a batch split with per-thread partial sums, a split of the units, one or
two threads, dropout masks (shared and per gate), masks, one-hot ids and the GRU's two bias forms.
The default layout itself is checked against Keras and float64 references elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn import ops

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# (B, T, I, H): a batch split (B >= 8, small weights), a split of the units (B < 8), one step
SHAPES = [(12, 5, 7, 9), (3, 6, 10, 70), (5, 1, 4, 6)]


def _problem(rng, cell, shape, dtype, dropout, ids, reset_after):
    B, T, I, H = shape
    G = GATES[cell]
    x = rng.integers(0, I, (B, T)) if ids else rng.standard_normal((B, T, I)).astype(dtype)
    kernel = (0.5 * rng.standard_normal((I, G * H))).astype(dtype)
    recurrent = (0.3 * rng.standard_normal((H, G * H))).astype(dtype)
    bias_shape = (2, G * H) if cell == "gru" and reset_after else (G * H,)
    bias = rng.standard_normal(bias_shape).astype(dtype)
    options = dict(mask=rng.random((B, T)) > 0.2)
    if dropout:
        lead = (G,) if dropout == "per_gate" else ()
        options["dropout_mask"] = ((rng.random(lead + (B, I)) > 0.3) / 0.7).astype(dtype)
        options["recurrent_dropout_mask"] = ((rng.random(lead + (B, H)) > 0.3) / 0.7).astype(dtype)
    if cell == "gru":
        options["reset_after"] = reset_after
    return x, kernel, recurrent, bias, options


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("dropout", [None, "shared", "per_gate"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,reset_after", [("rnn", True), ("lstm", True), ("gru", True), ("gru", False)])
def test_gate_major_gradients_are_the_transposes(rng, seed, one_or_two_threads, cell, reset_after, dtype, dropout,
                                                 shape):
    ids = dropout is None and shape[0] == 5  # one-hot ids on one of the shapes
    x, kernel, recurrent, bias, options = _problem(rng, cell, shape, dtype, dropout, ids, reset_after)
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    B, H = shape[0], shape[3]
    states = [rng.standard_normal((B, H)).astype(dtype) for _ in range(2 if cell == "lstm" else 1)]
    results = forward(x, *states, kernel, recurrent, bias, **options)
    d_out = rng.standard_normal(results[0].shape).astype(dtype)
    d_last = [rng.standard_normal(results[1].shape).astype(dtype) for _ in states]
    keras_layout = backward(results[-1], d_out, *d_last)
    torch_layout = backward(results[-1], d_out, *d_last, gate_major=True)
    dk, drk = keras_layout[-3], keras_layout[-2]
    dk_t, drk_t = torch_layout[-3], torch_layout[-2]
    assert dk_t.shape == dk.shape[::-1] and drk_t.shape == drk.shape[::-1], f"seed {seed}"
    assert dk_t.flags.c_contiguous and drk_t.flags.c_contiguous
    assert np.abs(dk).max() > 0 and np.abs(drk).max() > 0, f"seed {seed}: a gradient is all zeros"
    np.testing.assert_array_equal(dk_t, dk.T, err_msg=f"d_kernel, seed {seed}")
    np.testing.assert_array_equal(drk_t, drk.T, err_msg=f"d_recurrent_kernel, seed {seed}")
    for name, a, b in zip(("dx", "dh0", "dc0", "d_bias"), keras_layout[:-3] + keras_layout[-1:],
                          torch_layout[:-3] + torch_layout[-1:]):
        if a is None:
            assert b is None, f"{name}, seed {seed}"
        else:
            np.testing.assert_array_equal(b, a, err_msg=f"{name}, seed {seed}")


def test_gate_major_must_be_a_flag(rng):
    x, kernel, recurrent, bias, _ = _problem(rng, "lstm", (2, 3, 4, 5), "float32", None, False, True)
    cache = ops.lstm_forward(x, None, None, kernel, recurrent, bias)[-1]
    with pytest.raises(TypeError, match="gate_major"):
        ops.lstm_backward(cache, None, np.ones((2, 5), np.float32), None, gate_major="yes")
