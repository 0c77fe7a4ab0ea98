"""fusedrnn.keras recurrent layers inside models: model.fit/predict (graph mode) give the
same losses, weights and predictions as the same model built from stock Keras layers; masks from
Embedding(mask_zero=True) and Masking; Bidirectional, TimeDistributed; functional and subclassed
models; save/load round-trips and loading a stock model into the fused layers."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("these tests run on Keras's TensorFlow backend", allow_module_level=True)

import fusedrnn.keras as fk  # noqa: E402
from fusedrnn.keras import _tf_bridge  # noqa: E402

from _keras_recurrent_helpers import (  # noqa: E402
    assert_all_close, assert_weights_after_adam_close, loss_weights, random_mask, run_with_gradients)

STOCK = keras.layers
LEARNING_RATE = 0.01  # the twins' Adam
FUSED = SimpleNamespace(LSTM=fk.LSTM, GRU=fk.GRU, SimpleRNN=fk.SimpleRNN)


def functional_model(rnn, seed):
    """Embedding(mask_zero) -> Bidirectional(SimpleRNN, dropout) -> LSTM with both dropouts ->
    Dense: the IMDB model in small, with a bidirectional layer under it."""
    ids = keras.Input((9,), dtype="int32")
    h = keras.layers.Embedding(30, 6, mask_zero=True)(ids)
    h = keras.layers.Bidirectional(rnn.SimpleRNN(4, return_sequences=True, dropout=0.25, seed=seed))(h)
    h = rnn.LSTM(5, dropout=0.2, recurrent_dropout=0.2, seed=seed + 1)(h)
    return keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(h))


class Seq2Seq(keras.Model):
    """Subclassed encoder-decoder over Masking: a GRU encoder read backwards with dropout, whose
    final state starts a GRU decoder (reset_after=False, recurrent dropout)."""

    def __init__(self, rnn, seed, **kwargs):
        super().__init__(**kwargs)
        self.masking = keras.layers.Masking(0.0)
        self.encoder = rnn.GRU(6, return_state=True, go_backwards=True, dropout=0.3, seed=seed)
        self.decoder = rnn.GRU(6, return_sequences=True, reset_after=False, recurrent_dropout=0.1, seed=seed + 1)
        self.head = keras.layers.Dense(3)

    def call(self, inputs, training=False):
        source, target = inputs
        _, h = self.encoder(self.masking(source), training=training)
        return self.head(self.decoder(target, initial_state=h, training=training))


def _data(name, rng):
    n = 16
    if name == "functional":
        x = rng.integers(1, 30, (n, 9))
        for row, pad in enumerate(rng.integers(0, 9, n)):
            x[row, :pad] = 0   # pre-padding, as the IMDB data
        return x.astype(np.int32), rng.integers(0, 2, (n, 1)).astype(np.float32)
    source = rng.standard_normal((n, 5, 4)).astype(np.float32)
    source[rng.random((n, 5)) < 0.3] = 0.0   # masked steps
    target = rng.standard_normal((n, 3, 2)).astype(np.float32)
    return (source, target), rng.standard_normal((n, 3, 3)).astype(np.float32)


MODELS = {
    "functional": (functional_model, "binary_crossentropy"),
    "subclassed": (lambda rnn, seed: Seq2Seq(rnn, seed), "mse"),
}


def _build(name, rnn, seed, x):
    build, loss = MODELS[name]
    # Keras's SimpleRNN leaves `seed` out of its config, so the copies Bidirectional makes of it
    # draw their own seeds: the global seed makes those equal in the two twins.
    keras.utils.set_random_seed(seed)
    model = build(rnn, seed % 1000)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss)
    model(x)   # builds the subclassed model
    return model


def _twin_models(name, seed, rng):
    x, y = _data(name, rng)
    fused, stock = (_build(name, rnn, seed, x) for rnn in (FUSED, STOCK))
    fused.set_weights(stock.get_weights())
    return (fused, stock), x, y


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_and_predict_match_stock_keras(name, seed, rng):
    (fused, stock), x, y = _twin_models(name, seed, rng)
    fused_layers = [layer for layer in fused._flatten_layers() if isinstance(layer, (fk.LSTM, fk.GRU, fk.SimpleRNN))]
    assert fused_layers and all(layer.fused for layer in fused_layers)
    before = _tf_bridge.cache_stats()
    histories = [m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"] for m in (fused, stock)]
    steps = 2 * 2
    after_fit = _tf_bridge.cache_stats()
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5, atol=1e-6, err_msg=f"fit losses (seed {seed})")
    assert_weights_after_adam_close(fused.get_weights(), stock.get_weights(), f"{name} weights after fit", seed,
                                    learning_rate=LEARNING_RATE, steps=steps)
    # Every forward cache of the train steps was consumed by its backward pass, none recomputed.
    assert after_fit["stored"] - before["stored"] == steps * len(fused_layers)
    assert after_fit["recomputed"] == before["recomputed"] and after_fit["live_entries"] == before["live_entries"]
    preds = [m.predict(x, batch_size=8, verbose=0) for m in (fused, stock)]
    assert_all_close([preds[0]], [preds[1]], f"{name} predict", seed)
    # Inference keeps no forward caches.
    after = _tf_bridge.cache_stats()
    assert after["stored"] == after_fit["stored"] and after["inference"] > after_fit["inference"]


def test_jit_compile_is_turned_off_and_fit_runs(seed, rng):
    x, y = _data("subclassed", rng)
    fused = _build("subclassed", FUSED, seed, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert fused.jit_compile is False
    loss = fused.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)


def test_bidirectional_and_time_distributed_gradients(seed, rng):
    B, T, I, H, N = 4, 6, 3, 5, 2
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = tf.constant(random_mask(rng, B, T))
    layers = [keras.layers.Bidirectional(rnn.LSTM(H, return_sequences=True, go_backwards=False), merge_mode="sum")
              for rnn in (FUSED, STOCK)]
    for layer in layers:
        layer.build((B, T, I))
    assert isinstance(layers[0].forward_layer, fk.LSTM) and isinstance(layers[0].backward_layer, fk.LSTM)
    assert layers[0].backward_layer.go_backwards and layers[0].backward_layer.fused
    layers[0].set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layers[1].get_weights()])
    layers[1].set_weights(layers[0].get_weights())
    weights = loss_weights(rng, [(B, T, H)])
    got, want = (run_with_gradients(layer, x, weights, mask=mask) for layer in layers)
    assert_all_close(got[0] + got[1], want[0] + want[1], "Bidirectional", seed)

    x4 = rng.standard_normal((B, N, T, I)).astype(np.float32)
    layers = [keras.layers.TimeDistributed(rnn.GRU(H, dropout=0.2, seed=seed % 1000)) for rnn in (FUSED, STOCK)]
    for layer in layers:
        layer.build((B, N, T, I))
    layers[1].set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layers[0].get_weights()])
    layers[0].set_weights(layers[1].get_weights())
    weights = loss_weights(rng, [(B, N, H)])
    got, want = (run_with_gradients(layer, x4, weights, training=True) for layer in layers)
    assert_all_close(got[0] + got[1], want[0] + want[1], "TimeDistributed", seed)


def test_save_and_load_round_trip(tmp_path, seed, rng):
    x, _ = _data("functional", rng)
    fused = _build("functional", FUSED, seed, x)
    path = tmp_path / "fused.keras"
    fused.save(path)
    loaded = keras.models.load_model(path)
    rnn = loaded.layers[2]
    assert isinstance(rnn.forward_layer, fk.SimpleRNN) and isinstance(rnn.backward_layer, fk.SimpleRNN)
    assert isinstance(loaded.layers[3], fk.LSTM) and loaded.layers[3].fused
    assert rnn.forward_layer.get_config() == fused.layers[2].forward_layer.get_config()
    assert_all_close(loaded.get_weights(), fused.get_weights(), "loaded weights", seed, rtol=0, atol=0)
    assert_all_close([loaded.predict(x, verbose=0)], [fused.predict(x, verbose=0)], "loaded predict", seed, rtol=0, atol=0)


def test_load_model_turns_stock_layers_into_fused_ones(tmp_path, seed, rng):
    stock = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(0.0),
                              keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
                              keras.layers.GRU(3, reset_after=False, go_backwards=True), keras.layers.Dense(1)])
    stock.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((5, 6, 3)).astype(np.float32)
    x[:, :2] = 0.0   # masked steps
    keras_weights = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in stock.get_weights()]
    stock.set_weights(keras_weights)
    path = tmp_path / "stock.keras"
    stock.save(path)
    saved_bytes = path.read_bytes()
    loaded = fk.load_model(path)
    assert path.read_bytes() == saved_bytes
    bidirectional, gru = loaded.layers[1], loaded.layers[2]
    assert type(bidirectional.forward_layer) is fk.LSTM and type(bidirectional.backward_layer) is fk.LSTM
    assert type(gru) is fk.GRU and gru.fused and gru.get_config() == stock.layers[2].get_config()
    assert type(loaded.optimizer) is type(stock.optimizer)
    assert_all_close(loaded.get_weights(), keras_weights, "weights", seed, rtol=0, atol=0)
    assert_all_close([loaded(x)], [stock(x)], "outputs", seed)
    with pytest.raises(ValueError, match="filepath"):
        fk.load_model(tmp_path / "model.h5")
