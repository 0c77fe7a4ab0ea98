"""ops.CheckedWeights: dense_forward checks its weights for NaN/inf once per version (and again
after any change), its input on every call; every layer's set_weights bumps the versions."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import ops
from fusedrnn.layers.attention import BahdanauAttention
from fusedrnn.optimizers import SGD
from fusedrnn.weight_versions import version, weights_changed


def _dense(rng, dtype):
    N, I, U = (int(v) for v in rng.integers(1, 9, 3))
    x = rng.standard_normal((N, I)).astype(dtype)
    kernel = rng.standard_normal((I, U)).astype(dtype)
    bias = rng.standard_normal(U).astype(dtype)
    return x, kernel, bias


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_equal_unchecked_calls_and_weights_are_scanned_once_per_version(rng, seed, dtype):
    x, kernel, bias = _dense(rng, dtype)
    checked = ops.CheckedWeights()
    for _ in range(3):
        np.testing.assert_array_equal(ops.dense_forward(x, kernel, bias, checked=checked),
                                      ops.dense_forward(x, kernel, bias), err_msg=f"seed {seed}")
    assert checked.checks == 2, f"seed {seed}: kernel and bias once each, got {checked.checks} scans"
    weights_changed(kernel)
    ops.dense_forward(x, kernel, bias, checked=checked)
    assert checked.checks == 3, f"seed {seed}: a new version of the kernel is scanned again"
    other = kernel.copy()
    ops.dense_forward(x, other, None, checked=checked)
    assert checked.checks == 4, f"seed {seed}: another array in the kernel's place is scanned"
    SGD(learning_rate=0.1).apply([other], [np.ones_like(other)])
    ops.dense_forward(x, other, None, checked=checked)
    assert checked.checks == 5, f"seed {seed}: an optimizer step makes a new version"
    checked.clear()
    ops.dense_forward(x, other, None, checked=checked)
    assert checked.checks == 6


def test_nan_and_inf_are_refused_in_weights_and_always_in_the_input(rng, seed):
    x, kernel, bias = _dense(rng, np.float32)
    checked = ops.CheckedWeights()
    ops.dense_forward(x, kernel, bias, checked=checked)
    kernel[0, -1] = np.nan  # announced in-place edit
    weights_changed(kernel)
    for _ in range(2):  # a failed scan vouches for nothing: refused again
        with pytest.raises(ValueError, match="kernel: contains NaN or inf"):
            ops.dense_forward(x, kernel, bias, checked=checked)
    kernel[0, -1] = 0.0
    weights_changed(kernel)
    bad_bias = bias.copy()
    bad_bias[-1] = -np.inf
    with pytest.raises(ValueError, match="bias: contains NaN or inf"):
        ops.dense_forward(x, kernel, bad_bias, checked=checked)
    ops.dense_forward(x, kernel, bias, checked=checked)
    bad_x = x.copy()
    bad_x[-1, 0] = np.inf
    for _ in range(2):  # the input is data: checked on every call
        with pytest.raises(ValueError, match="x: contains NaN or inf"):
            ops.dense_forward(bad_x, kernel, bias, checked=checked)
    with pytest.raises(TypeError, match="checked: expected a fusedrnn.ops.CheckedWeights"):
        ops.dense_forward(x, kernel, bias, checked="yes")


def _layers(rng):
    gru = fusedrnn.GRU(4, seed=1)
    gru.build(3)
    lstm = fusedrnn.LSTM(3, use_bias=False, seed=2)
    lstm.build(2)
    dense = fusedrnn.Dense(5, seed=3)
    dense.build(4)
    attention = BahdanauAttention(3, use_bias=True, seed=4)
    attention.build(2, 4)
    return [gru, lstm, dense, fusedrnn.Embedding(7, 3, seed=5), attention]


def test_every_layers_set_weights_bumps_the_versions_even_of_the_same_arrays(rng, seed):
    for layer in _layers(rng):
        ws = [w + rng.uniform(-0.1, 0.1, w.shape).astype(w.dtype) for w in layer.get_weights()]
        layer.set_weights(ws)
        first = [version(p) for p in layer.params]
        assert all(v > 0 for v in first), f"{layer!r}: set_weights left a version at 0"
        assert all(p is w for p, w in zip(layer.params, ws)), f"{layer!r}: the arrays given are not bound"
        layer.set_weights(ws)  # the same arrays again (edited in place, say): a change all the same
        assert all(version(p) > v for p, v in zip(layer.params, first)), f"{layer!r}"


@pytest.mark.parametrize("variant", ["rnn", "lstm", "gru"])
def test_recurrent_forward_checks_its_weights_once_per_version(variant, rng, seed):
    B, T, I, H = (int(v) for v in rng.integers(1, 6, 4))
    G = {"rnn": 1, "lstm": 4, "gru": 3}[variant]
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    weights = [rng.standard_normal(s).astype(np.float32) for s in ((I, G * H), (H, G * H), ((2, G * H) if variant == "gru"
                                                                                           else (G * H,)))]
    forward = getattr(ops, f"{variant}_forward")
    run = (lambda **kw: forward(x, h0, None, *weights, **kw)) if variant == "lstm" else \
        (lambda **kw: forward(x, h0, *weights, **kw))
    checked = ops.CheckedWeights()
    for _ in range(3):
        for a, b in zip(run(checked=checked)[:-1], run()[:-1]):
            np.testing.assert_array_equal(a, b, err_msg=f"seed {seed}")
    assert checked.checks == 3, f"seed {seed}: kernel, recurrent kernel and bias once each, got {checked.checks}"
    weights[1][0, -1] = np.nan
    run(checked=checked)  # an unannounced in-place edit goes unchecked (as documented)
    weights_changed(weights[1])
    with pytest.raises(ValueError, match="recurrent_kernel: contains NaN or inf"):
        run(checked=checked)
    weights[1][0, -1] = 0.0
    weights_changed(weights[1])
    run(checked=checked)
    bad_x = x.copy()
    bad_x[0, -1, 0] = np.inf
    with pytest.raises(ValueError, match="x: contains NaN or inf"):  # data: checked on every call
        forward(bad_x, h0, None, *weights, checked=checked) if variant == "lstm" else \
            forward(bad_x, h0, *weights, checked=checked)
    with pytest.raises(TypeError, match="checked: expected a fusedrnn.ops.CheckedWeights"):
        run(checked=object())


def test_translation_training_checks_the_decoder_weights_after_each_change(rng, seed):
    from fusedrnn.tasks.seq2seq import AttentionSeq2Seq

    model = AttentionSeq2Seq(9, 8, 4, 6, seed=int(rng.integers(1 << 30)))
    source = rng.integers(1, 9, (3, 5))
    target = rng.integers(1, 8, (3, 4))
    model((source, target), training=True)
    kernel = model.decoder.kernel
    kernel[0, 0] = np.nan
    weights_changed(kernel)
    with pytest.raises(ValueError, match="kernel: contains NaN or inf"):
        model((source, target), training=True)
