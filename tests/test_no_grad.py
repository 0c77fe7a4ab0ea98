"""``fusedrnn.no_grad()``: layers called for inference keep no cache and give the same outputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fusedrnn
from fusedrnn import GRU, LSTM, Bidirectional, Dense, SimpleRNN, no_grad
from fusedrnn.training import Sequential

LAYERS = {
    "rnn": lambda: SimpleRNN(7, return_sequences=True, return_state=True),
    "lstm": lambda: LSTM(7, return_sequences=True, return_state=True),
    "gru": lambda: GRU(7, return_state=True),
    "gru_reset_before": lambda: GRU(7, reset_after=False, go_backwards=True),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_outputs_equal_and_backward_refuses(name, rng):
    layer = LAYERS[name]()
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    mask = rng.random((4, 6)) < 0.8
    trained = layer(x, mask=mask)
    with no_grad():
        assert not fusedrnn.is_grad_enabled()
        inferred = layer(x, mask=mask)
    assert fusedrnn.is_grad_enabled()
    for a, b in zip(trained if isinstance(trained, list) else [trained],
                    inferred if isinstance(inferred, list) else [inferred]):
        np.testing.assert_array_equal(b, a)
    out = inferred[0] if isinstance(inferred, list) else inferred
    with pytest.raises(RuntimeError, match="no_grad"):
        layer.backward(np.ones_like(out))
    # Called again outside, the layer takes gradients as usual.
    layer(x, mask=mask)
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))


def test_state_is_restored_after_an_error_and_nests():
    with pytest.raises(KeyError):
        with no_grad():
            with no_grad():
                assert not fusedrnn.is_grad_enabled()
            assert not fusedrnn.is_grad_enabled()
            raise KeyError("x")
    assert fusedrnn.is_grad_enabled()
    same = no_grad()  # one instance entered twice
    with same:
        with same:
            assert not fusedrnn.is_grad_enabled()
        assert not fusedrnn.is_grad_enabled()
    assert fusedrnn.is_grad_enabled()


def test_decorator_and_other_threads(rng):
    seen = {}

    @no_grad()
    def inside():
        seen["inside"] = fusedrnn.is_grad_enabled()
        worker = threading.Thread(target=lambda: seen.setdefault("other thread", fusedrnn.is_grad_enabled()))
        worker.start()
        worker.join()

    inside()
    assert seen == {"inside": False, "other thread": True}
    assert fusedrnn.is_grad_enabled()


def test_predict_runs_without_cache_and_matches_the_call(rng):
    model = Sequential([LSTM(8, return_sequences=True), Bidirectional(GRU(5)), Dense(3)])
    x = rng.standard_normal((10, 7, 4)).astype(np.float32)
    expected = model(x)
    np.testing.assert_array_equal(model.predict(x, batch_size=4), np.concatenate(
        [model(x[i:i + 4]) for i in range(0, 10, 4)]))
    np.testing.assert_array_equal(model.predict(x, batch_size=10), expected)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones((10, 3), np.float32))
