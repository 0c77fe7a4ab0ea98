"""``layer.packed_calls()``: inference calls inside the block run on weights packed once."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import no_grad

LAYERS = {"rnn": fusedrnn.SimpleRNN, "lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU}


@pytest.mark.parametrize("ids", [False, True], ids=["floats", "one_hot_ids"])
@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_packed_calls_equal_plain_calls_and_pack_once(rng, seed, cell, ids):
    B, T, I, H = (int(v) for v in rng.integers(1, 7, 4))
    layer = LAYERS[cell](H + 3, return_sequences=True, seed=seed)
    layer.build(I + 2)
    I += 2

    def draw():
        if ids:
            return rng.integers(0, I, (B, T))
        return rng.standard_normal((B, T, I)).astype(np.float32)

    inputs = [draw() for _ in range(3)]
    with no_grad():
        plain = [layer(x) for x in inputs]
        with layer.packed_calls():
            packed_copy = layer._calls_packed
            in_block = [layer(x) for x in inputs]
        assert layer._calls_packed is None, "the block did not put the layer back"
    assert packed_copy.packs == 1, f"packed {packed_copy.packs} times for 3 calls, seed {seed}"
    for a, b in zip(plain, in_block):
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6, err_msg=f"seed {seed}")


def test_packed_calls_follow_set_weights_and_skip_training_calls(rng, seed):
    layer = fusedrnn.LSTM(5, return_sequences=True, dropout=0.3, seed=seed)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    layer.build(3)
    new_weights = [w + rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) for w in layer.get_weights()]
    with no_grad(), layer.packed_calls():
        before = layer(x)
        layer.set_weights(new_weights)
        after = layer(x)
        training = layer(x, training=True)  # dropout: not on the packed copy
        packs = layer._calls_packed.packs
    with no_grad():
        want_after = layer(x)
    assert not np.allclose(before, after), f"seed {seed}: the new weights changed nothing"
    np.testing.assert_allclose(after, want_after, rtol=2e-6, atol=2e-6, err_msg=f"seed {seed}")
    assert packs == 2, f"seed {seed}: expected a repack after set_weights, got {packs} packs"
    assert training.shape == after.shape
    # with gradients on, calls keep their cache and backward works inside the block too
    with layer.packed_calls():
        y = layer(x)
        dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and layer._calls_packed is None


@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_kept_packed_calls_pack_once_across_blocks_and_follow_weight_changes(rng, seed, cell):
    """packed_calls(keep=True): one packed copy across blocks, shared with step(), packed again
    after set_weights (also of the same arrays, edited in place), an optimizer step or
    weights_changed, whether the change comes inside or between blocks."""
    from fusedrnn.optimizers import SGD

    B, T, I, H = (int(v) for v in rng.integers(1, 6, 4))
    layer = LAYERS[cell](H, return_sequences=True, seed=seed)  # unbuilt: the first call builds it
    xs = [rng.standard_normal((B, T, I)).astype(np.float32) for _ in range(2)]

    def plain(x):
        fresh = LAYERS[cell](H, return_sequences=True)
        fresh.set_weights(layer.get_weights())
        with no_grad():
            return fresh(x)

    def in_blocks():
        out = []
        for x in xs:  # one block per input, as one per translated sentence
            with no_grad(), layer.packed_calls(keep=True):
                out.append(layer(x))
        for got, x in zip(out, xs):
            np.testing.assert_allclose(got, plain(x), rtol=2e-6, atol=2e-6, err_msg=f"seed {seed}")
        return layer._step_packed.packs

    assert in_blocks() == 1, f"seed {seed}: two blocks on the same weights packed twice"
    layer.step(np.ascontiguousarray(xs[0][:, 0]), [np.zeros((B, H), np.float32)] * layer._n_states)
    assert layer._step_packed.packs == 1, f"seed {seed}: step() did not share the kept copy"
    ws = layer.get_weights()
    layer.set_weights(ws)
    assert in_blocks() == 2, f"seed {seed}"
    for w in ws:
        w *= -1.5
    layer.set_weights(ws)  # the same arrays, edited: they must be packed again
    assert in_blocks() == 3, f"seed {seed}"
    SGD(learning_rate=0.3).apply(layer.params, [rng.standard_normal(p.shape).astype(p.dtype) for p in layer.params])
    assert in_blocks() == 4, f"seed {seed}"
    layer.kernel[...] *= 0.5
    layer.weights_changed()
    assert in_blocks() == 5, f"seed {seed}"
    assert layer._calls_packed is None
