"""fusedrnn.keras.SimpleRNN/LSTM/GRU against the stock Keras layers with the same weights, eagerly:
outputs, final states and the gradients (tf.GradientTape) of a random loss with respect to the
inputs, the initial states and the weights, for the layer options and their combinations."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("these tests run on Keras's TensorFlow backend", allow_module_level=True)

from _keras_recurrent_helpers import (  # noqa: E402
    CELLS,
    NUM_STATES,
    as_list,
    assert_all_close,
    loss_weights,
    random_mask,
    run_with_gradients,
    twin_layers,
)

#: option set name -> (constructor arguments, call options)
OPTIONS = {
    "plain": ({}, {}),
    "mask_initial_state": ({}, {"mask": True, "initial_state": True}),
    "backwards_mask_zero_output": ({"go_backwards": True, "zero_output_for_mask": True}, {"mask": True}),
    "no_bias_last_output": ({"use_bias": False, "return_sequences": False}, {"initial_state": True}),
    "dropouts_training": ({"dropout": 0.3, "recurrent_dropout": 0.25}, {"training": True, "mask": True}),
    "dropout_backwards_training": ({"dropout": 0.4, "go_backwards": True}, {"training": True, "initial_state": True}),
    "dropouts_inference": ({"dropout": 0.3, "recurrent_dropout": 0.3}, {"training": False}),
    "unroll_mask_no_bias": ({"unroll": True, "use_bias": False}, {"mask": True, "training": True}),
}

#: every option set for the LSTM and the GRU; four for each other cell, so that every option
#: set meets at least three cells
CASES = [(cell, option) for cell in ("lstm", "gru") for option in sorted(OPTIONS)] + [
    ("gru_reset_before", o) for o in ("dropouts_training", "backwards_mask_zero_output", "no_bias_last_output",
                                      "dropouts_inference")] + [
    ("rnn_tanh", o) for o in ("plain", "dropouts_training", "backwards_mask_zero_output", "mask_initial_state")] + [
    ("rnn_relu", o) for o in ("dropout_backwards_training", "unroll_mask_no_bias", "no_bias_last_output",
                              "mask_initial_state")]


@pytest.mark.parametrize("cell,option", CASES)
def test_matches_stock_keras(cell, option, seed, rng):
    B, T, I, H = 4, 6, 5, 7
    ctor, call = OPTIONS[option]
    ctor = {"return_sequences": True, "return_state": True, **ctor, "seed": seed % 1000}
    fused, stock = twin_layers(cell, H, (B, T, I), rng, **ctor)
    assert fused.fused, fused.fused_reason
    x = (rng.standard_normal((B, T, I))).astype(np.float32)
    n_states = NUM_STATES[CELLS[cell][0]]
    states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(n_states)]
    kwargs = {"training": call.get("training", False)}
    if call.get("mask"):
        kwargs["mask"] = tf.constant(random_mask(rng, B, T))
    if call.get("initial_state"):
        kwargs["initial_state"] = True
    out_shapes = [(B, T, H) if ctor["return_sequences"] else (B, H)] + [(B, H)] * n_states
    weights = loss_weights(rng, out_shapes)
    watch = states if call.get("initial_state") else []
    got_out, got_grads = run_with_gradients(fused, x, weights, watch, **kwargs)
    want_out, want_grads = run_with_gradients(stock, x, weights, watch, **kwargs)
    assert_all_close(got_out, want_out, f"{cell}/{option} outputs", seed)
    assert_all_close(got_grads, want_grads, f"{cell}/{option} gradients", seed)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stateful_and_reset_state(cell, seed, rng):
    B, T, I, H = 3, 4, 2, 5
    fused, stock = twin_layers(cell, H, (B, T, I), rng, stateful=True, return_sequences=True)
    assert fused.fused, fused.fused_reason
    for _ in range(2):  # the second call starts from the states the first one left
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        assert_all_close([fused(x)], [stock(x)], f"{cell} stateful outputs", seed)
        assert_all_close([s.numpy() for s in fused.states], [s.numpy() for s in stock.states], "states", seed)
    fused.reset_state()
    assert all(not np.any(s.numpy()) for s in fused.states)
    stock.reset_state()
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    assert_all_close([fused(x)], [stock(x)], f"{cell} outputs after reset_state", seed)


@pytest.mark.parametrize("cell,kwargs,reason", [
    ("lstm", {"activation": "softsign"}, "activation"),
    ("gru", {"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
    ("rnn_tanh", {"activation": lambda v: v * 0.5}, "activation"),
    ("lstm", {"dropout": 1.0}, "dropout"),
])
def test_unfused_configurations_run_keras_and_match(cell, kwargs, reason, seed, rng):
    B, T, I, H = 3, 5, 4, 6
    fused, stock = twin_layers(cell, H, (B, T, I), rng, return_sequences=True, **kwargs)
    assert not fused.fused
    assert reason in fused.fused_reason
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    weights = loss_weights(rng, [(B, T, H)])
    got = run_with_gradients(fused, x, weights, training=True)
    want = run_with_gradients(stock, x, weights, training=True)
    assert_all_close(got[0] + got[1], want[0] + want[1], f"{cell} Keras path", seed, rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
def test_one_hot_input_without_input_gradient_runs_as_ids(cell, seed, rng, monkeypatch):
    """A tape that watches the weights but not the one-hot input (a character model under
    model.fit): the forward runs on integer ids; the weight gradients are Keras's."""
    from fusedrnn.keras import _tf_recurrent

    seen = []
    real = _tf_recurrent._one_hot_ids
    monkeypatch.setattr(_tf_recurrent, "_one_hot_ids", lambda x: seen.append(real(x)) or seen[-1])
    B, T, I, H = 4, 6, 5, 3
    fused, stock = twin_layers(cell, H, (B, T, I), rng, return_sequences=True, dropout=0.3, seed=seed % 1000)
    x = tf.constant(np.eye(I, dtype=np.float32)[rng.integers(0, I, (B, T))])
    weights = tf.constant(loss_weights(rng, [(B, T, H)])[0])
    grads = []
    for layer in (fused, stock):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * weights)
        grads.append(tape.gradient(loss, layer.trainable_weights))
    assert len(seen) == 1 and seen[0].dtype == np.int32 and seen[0].shape == (B, T)
    assert_all_close(grads[0], grads[1], f"{cell} weight gradients from one-hot ids", seed)
    x_not_one_hot = x.numpy()
    x_not_one_hot[0, 0] = 0.0   # an all-zero row: the dense path
    assert real(x_not_one_hot) is x_not_one_hot


def test_fused_is_read_only():
    import fusedrnn.keras as fk

    layer = fk.LSTM(3)
    assert layer.fused and layer.fused_reason is None
    assert not layer.supports_jit
    with pytest.raises(AttributeError):
        layer.fused = False


@pytest.mark.parametrize("cell", ["lstm", "gru_reset_before", "rnn_relu"])
def test_float64_layers_compute_in_float64(cell, seed, rng):
    B, T, I, H = 2, 5, 3, 4
    fused, stock = twin_layers(cell, H, (B, T, I), rng, return_sequences=True, dtype="float64")
    x = rng.standard_normal((B, T, I))
    weights = [w.astype(np.float64) for w in loss_weights(rng, [(B, T, H)])]
    got, want = run_with_gradients(fused, x, weights), run_with_gradients(stock, x, weights)
    assert got[0][0].dtype == np.float64
    assert_all_close(got[0] + got[1], want[0] + want[1], f"{cell} float64", seed, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_in_float32_inside(policy, seed, rng):
    B, T, I, H = 3, 6, 4, 5
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        fused, stock = twin_layers("lstm", H, (B, T, I), rng, return_sequences=True, dropout=0.2, seed=seed % 1000)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        weights = loss_weights(rng, [(B, T, H)])
        got = run_with_gradients(fused, x, weights, training=True)
        want = run_with_gradients(stock, x, weights, training=True)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    compute = keras.mixed_precision.Policy(policy).compute_dtype
    assert str(got[0][0].dtype) == compute
    # Keras computes in half precision, the fused layer in float32: agreement to half precision.
    assert_all_close(got[0] + got[1], want[0] + want[1], f"lstm {policy}", seed, rtol=5e-2, atol=5e-2)


def test_empty_batch(rng):
    import fusedrnn.keras as fk

    layer = fk.GRU(4, return_sequences=True, return_state=True)
    out = as_list(layer(np.zeros((0, 3, 2), np.float32)))
    assert [tuple(o.shape) for o in out] == [(0, 3, 4), (0, 4)]


def test_non_finite_input_names_the_argument(rng):
    import fusedrnn.keras as fk

    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x[1, 2, 3] = np.nan
    with pytest.raises(Exception, match="x: contains NaN or inf"):
        fk.LSTM(3)(x)
