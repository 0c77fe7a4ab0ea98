"""The layers (fusedrnn.SimpleRNN / LSTM / GRU) against the Keras layers.

Forward values and gradients are compared after `set_weights(keras_layer.get_weights())`.
Tolerance: float32 results of the same equations computed in a different order (fused GEMMs,
our own exp/tanh) differ by a few ulp per operation; over T <= 12 steps and O(1) values the
differences stay below 1e-5 relative to the largest magnitude, which is what we assert.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fusedrnn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

RTOL = 1e-5

LAYERS = {
    "SimpleRNN": (fusedrnn.SimpleRNN, lambda **kw: keras.layers.SimpleRNN(**kw), {}),
    "SimpleRNN_relu": (fusedrnn.SimpleRNN, lambda **kw: keras.layers.SimpleRNN(**kw), {"activation": "relu"}),
    "LSTM": (fusedrnn.LSTM, lambda **kw: keras.layers.LSTM(**kw), {}),
    "GRU": (fusedrnn.GRU, lambda **kw: keras.layers.GRU(**kw), {}),
    "GRU_reset_before": (fusedrnn.GRU, lambda **kw: keras.layers.GRU(**kw), {"reset_after": False}),
}


def close(ours, theirs, what, seed):
    theirs = np.asarray(theirs)
    scale = max(float(np.max(np.abs(theirs))), 1e-3)
    err = float(np.max(np.abs(np.asarray(ours) - theirs)))
    assert err <= RTOL * scale, f"{what}: max error {err:.3g} vs scale {scale:.3g} (seed {seed})"


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_keras(name, return_sequences, with_state, rng, seed):
    ours_cls, keras_factory, extra = LAYERS[name]
    B, T, I, H = int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(1, 9)), int(rng.integers(1, 20))
    go_backwards = bool(rng.integers(0, 2))
    kwargs = dict(units=H, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, **extra)
    k = keras_factory(**kwargs)
    k.build((B, T, I))
    # Perturb Keras's zero biases so that the bias paths are exercised too.
    k.set_weights([w + 0.2 * rng.standard_normal(w.shape).astype(np.float32) for w in k.get_weights()])
    ours = ours_cls(**kwargs)
    ours.set_weights(k.get_weights())

    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = rng.random((B, T)) > 0.3
    n_states = 2 if ours_cls is fusedrnn.LSTM else 1
    states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(n_states)] if with_state else None

    xt = tf.constant(x)
    st = [tf.constant(s) for s in states] if with_state else None
    out_shape = (B, T, H) if return_sequences else (B, H)
    d_out = rng.standard_normal(out_shape).astype(np.float32)
    d_states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(n_states)]
    with tf.GradientTape() as tape:
        tape.watch(xt)
        if st:
            for s in st:
                tape.watch(s)
        res = k(xt, mask=tf.constant(mask), initial_state=st)
        loss = tf.reduce_sum(res[0] * d_out) + sum(tf.reduce_sum(r * d) for r, d in zip(res[1:], d_states))
    wrt = [xt] + (st or []) + k.trainable_weights
    g = tape.gradient(loss, wrt)

    got = ours(x, mask=mask, initial_state=states)
    assert len(got) == 1 + n_states
    for a, b, what in zip(got, res, ["output", "h", "c"]):
        assert a.shape == tuple(b.shape)
        close(a, b, what, seed)
    back = ours.backward(d_out, d_states)
    dx_and_states = list(back) if with_state else [back]
    assert len(dx_and_states) == (1 + n_states if with_state else 1)
    names = ["dx", "dh0", "dc0"][: len(dx_and_states)] + ["dkernel", "drecurrent", "dbias"]
    for a, b, what in zip(dx_and_states + ours.grads, g, names):
        close(a, b, what, seed)


@pytest.mark.parametrize("cls", [fusedrnn.SimpleRNN, fusedrnn.LSTM, fusedrnn.GRU])
def test_default_initialisers(cls, rng):
    layer = cls(16, seed=int(rng.integers(1 << 30)))
    y = layer(rng.standard_normal((3, 5, 7)).astype(np.float32))
    assert y.shape == (3, 16)
    kernel, recurrent, bias = layer.get_weights()
    G = recurrent.shape[1] // 16
    limit = np.sqrt(6.0 / (7 + G * 16))
    assert np.all(np.abs(kernel) <= limit) and kernel.std() > limit / 4  # glorot uniform
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(16), atol=1e-5)  # orthogonal rows
    if cls is fusedrnn.LSTM:
        np.testing.assert_array_equal(bias, np.r_[np.zeros(16), np.ones(16), np.zeros(32)])
    else:
        assert not bias.any()


def test_lstm_matches_keras_training_with_recurrent_dropout_masks(rng, seed, monkeypatch):
    """training=True with dropout: the layer's masks, replayed in Keras, give the same numbers."""
    B, T, I, H = 4, 6, 5, 7
    ours = fusedrnn.LSTM(H, return_sequences=True, dropout=0.3, recurrent_dropout=0.4, seed=seed)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    drawn = {}
    original = ours._dropout_masks

    def recording(*args):
        masks = original(*args)
        drawn["masks"] = masks
        return masks

    monkeypatch.setattr(ours, "_dropout_masks", recording)
    y = ours(x, training=True)
    dmask, rmask = drawn["masks"]
    assert dmask.shape == (4, B, I) and rmask.shape == (4, B, H)  # one mask per gate
    assert set(np.unique(dmask)) <= {0.0, np.float32(1 / 0.7)}
    assert 0 < (dmask == 0).mean() < 1

    k = keras.layers.LSTM(H, return_sequences=True, dropout=0.3, recurrent_dropout=0.4)
    k.build((B, T, I))
    k.set_weights(ours.get_weights())
    cell = k.cell
    monkeypatch.setattr(cell, "get_dropout_mask", lambda _: [tf.constant(m) for m in dmask])
    monkeypatch.setattr(cell, "get_recurrent_dropout_mask", lambda _: [tf.constant(m) for m in rmask])
    close(y, k(tf.constant(x), training=True), "output with dropout", seed)


@pytest.mark.parametrize("cls,keras_cls", [(fusedrnn.LSTM, "LSTM"), (fusedrnn.GRU, "GRU"), (fusedrnn.SimpleRNN, "SimpleRNN")])
def test_input_dropout_only_matches_keras(cls, keras_cls, rng, seed, monkeypatch):
    """dropout without recurrent_dropout: one (B, I) mask, Keras's default implementation."""
    B, T, I, H = 3, 5, 6, 4
    ours = cls(H, return_sequences=True, dropout=0.25, seed=seed)
    captured = {}
    original = ours._dropout_masks

    def recording(*args):
        captured["masks"] = original(*args)
        return captured["masks"]

    monkeypatch.setattr(ours, "_dropout_masks", recording)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = ours(x, training=True)
    dmask, rmask = captured["masks"]
    assert dmask.shape == (B, I) and rmask is None
    k = getattr(keras.layers, keras_cls)(H, return_sequences=True, dropout=0.25)
    k.build((B, T, I))
    k.set_weights(ours.get_weights())
    monkeypatch.setattr(k.cell, "get_dropout_mask", lambda _: tf.constant(dmask))
    close(y, k(tf.constant(x), training=True), "output with input dropout", seed)
    dx = ours.backward(np.ones_like(y))
    assert np.all(np.isfinite(dx)) and np.all(dx[:, :, dmask[0] == 0][0] == 0)


def test_dropout_only_in_training(rng):
    layer = fusedrnn.GRU(6, return_sequences=True, dropout=0.5, recurrent_dropout=0.5, seed=1)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), layer(x))  # inference: deterministic, no masks
    a, b = layer(x, training=True), layer(x, training=True)
    assert not np.allclose(a, b)  # a new mask per call
    assert np.all(np.isfinite(a))


def test_backward_of_last_output_only_reaches_last_step_output(rng):
    """return_sequences=False: the gradient enters at the last output only."""
    layer = fusedrnn.LSTM(5)
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    seq = fusedrnn.LSTM(5, return_sequences=True)
    seq.set_weights(layer.get_weights())
    ys = seq(x)
    d = np.zeros_like(ys)
    d[:, -1] = 1.0
    np.testing.assert_allclose(dx, seq.backward(d), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y, ys[:, -1])


def test_layer_errors(rng):
    with pytest.raises(ValueError, match="units"):
        fusedrnn.LSTM(0)
    with pytest.raises(ValueError, match="dropout"):
        fusedrnn.GRU(4, dropout=1.5)
    with pytest.raises(ValueError, match="activation"):
        fusedrnn.SimpleRNN(4, activation="sigmoid")
    layer = fusedrnn.LSTM(4)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.zeros((1, 4), np.float32))
    with pytest.raises(RuntimeError, match="weights"):
        layer.get_weights()
    with pytest.raises(ValueError, match="x"):
        layer(rng.standard_normal((3, 4)).astype(np.float32))
    with pytest.raises(TypeError, match="x"):
        layer(rng.standard_normal((3, 4, 2)))  # float64 into a float32 layer
    layer(rng.standard_normal((3, 4, 2)).astype(np.float32))
    with pytest.raises(ValueError, match="weights"):
        layer.set_weights(layer.get_weights()[:2])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        k, r, b = layer.get_weights()
        layer.set_weights([k, r[:, :8], b])
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="initial_state"):
        layer(rng.standard_normal((3, 4, 2)).astype(np.float32), initial_state=[np.zeros((3, 4), np.float32)])
    with pytest.raises(ValueError, match="weights"):
        fusedrnn.GRU(4, reset_after=True).set_weights([np.zeros((2, 12)), np.zeros((4, 12)), np.zeros(12)])


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="n"):
        fusedrnn.set_num_threads(0)
    old = fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(1)
    assert fusedrnn.get_num_threads() == 1
    fusedrnn.set_num_threads(old)
