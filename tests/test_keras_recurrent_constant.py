"""Constant-initialised fusedrnn.keras layers (as Keras's own layer tests pin them) against outputs
derived independently here: with every weight a constant, all units of a layer hold the same
value, so each batch row follows a scalar recurrence, computed below in float64 from the cell
equations written out."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
if keras.backend.backend() != "tensorflow":
    pytest.skip("these tests run on Keras's TensorFlow backend", allow_module_level=True)

import fusedrnn.keras as fk  # noqa: E402

K, R, BIAS = 0.07, -0.05, 0.03   # kernel, recurrent kernel and bias constants


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def scalar_step(cell, s, c, xs, units):
    """One step of a layer whose weights are all constant, for a row whose input features sum to
    ``xs`` and whose units all hold ``s`` (and cell state ``c``): returns the new (s, c)."""
    a = K * xs + BIAS          # the input projection of every gate, bias included
    rec = R * units * s        # h_{t-1} @ recurrent_kernel: every entry is R * sum_j s
    if cell == "rnn_tanh":
        return np.tanh(a + rec), None
    if cell == "rnn_relu":
        return max(a + rec, 0.0), None
    if cell == "lstm":
        i, o = sigmoid(a + rec), sigmoid(a + rec)
        f = sigmoid(K * xs + 1.0 + rec)    # unit_forget_bias: the forget bias starts at exactly 1
        c = f * c + i * np.tanh(a + rec)
        return o * np.tanh(c), c
    rec_b = rec + BIAS                   # reset_after: the recurrent bias adds inside
    if cell == "gru":
        z, r = sigmoid(a + rec_b), sigmoid(a + rec_b)
        hh = np.tanh(a + r * rec_b)
    else:                                # reset_before: (r * h) @ U_h
        z, r = sigmoid(a + rec), sigmoid(a + rec)
        hh = np.tanh(a + R * units * r * s)
    return z * s + (1 - z) * hh, None


def expected(cell, x, units, mask=None, go_backwards=False):
    """(outputs (B, T, units), final h (B, units)) in float64, Keras's masking semantics."""
    B, T, _ = x.shape
    outputs = np.zeros((B, T, units))
    final = np.zeros((B, units))
    for b in range(B):
        s, c, out = 0.0, 0.0, 0.0
        for step in range(T):
            t = T - 1 - step if go_backwards else step
            if mask is None or mask[b, t]:
                s, c = scalar_step(cell, s, c, float(x[b, t].sum()), units)
                out = s
            outputs[b, step] = out
        final[b] = s
    return outputs, final


LAYERS = {
    "rnn_tanh": (fk.SimpleRNN, {}),
    "rnn_relu": (fk.SimpleRNN, {"activation": "relu"}),
    "lstm": (fk.LSTM, {}),
    "gru": (fk.GRU, {}),
    "gru_reset_before": (fk.GRU, {"reset_after": False}),
}


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked_backwards"])
@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_constant_weights_give_the_scalar_recurrence(cell, masked):
    cls, kwargs = LAYERS[cell]
    units, B, T, I = 3, 3, 5, 4
    layer = cls(units, kernel_initializer=keras.initializers.Constant(K),
                recurrent_initializer=keras.initializers.Constant(R),
                bias_initializer=keras.initializers.Constant(BIAS), return_sequences=True, return_state=True,
                go_backwards=masked, **kwargs)
    assert layer.fused
    x = (np.arange(B * T * I, dtype=np.float64).reshape(B, T, I) - 20.0) / 10.0
    mask = None
    if masked:
        mask = np.ones((B, T), bool)
        mask[0, 3:] = False     # post-padding: read backwards, the first steps are skipped
        mask[1, :2] = False
        mask[2, :] = False      # a row with nothing to read: zeros throughout
    result = layer(x.astype(np.float32), mask=mask)
    outputs, h = np.asarray(result[0]), np.asarray(result[1])
    want_outputs, want_h = expected(cell, x, units, mask, go_backwards=masked)
    np.testing.assert_allclose(outputs, want_outputs, rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(h, want_h, rtol=2e-6, atol=2e-7)
    assert np.abs(want_outputs).max() > 0.1   # the case is not degenerate


def test_constant_simple_rnn_first_steps_written_out():
    """The first two steps of a SimpleRNN with constant weights, by hand."""
    layer = fk.SimpleRNN(2, kernel_initializer=keras.initializers.Constant(0.5),
                         recurrent_initializer=keras.initializers.Constant(0.25),
                         bias_initializer=keras.initializers.Constant(0.1), return_sequences=True)
    x = np.array([[[1.0, -2.0, 0.5], [0.25, 0.0, 1.0]]], np.float32)
    h1 = np.tanh(0.5 * (1.0 - 2.0 + 0.5) + 0.1)                 # tanh(-0.15)
    h2 = np.tanh(0.5 * (0.25 + 0.0 + 1.0) + 0.25 * 2 * h1 + 0.1)  # both units feed back
    np.testing.assert_allclose(np.asarray(layer(x))[0], [[h1, h1], [h2, h2]], rtol=1e-6)
