"""fusedrnn.keras.Attention / AdditiveAttention against the stock Keras 3 layers with the same weights.

Every comparison differentiates the scalar loss ``L = sum(output * Ro) + sum(scores * Rw)``
(random Ro, Rw) with ``tf.GradientTape`` and compares the output, the attention scores and the
gradients with respect to query, value, key and the ``scale`` weight. Tolerance as in
test_attention_keras_parity.py: ``max|a - b| <= rtol * size + atol`` (float32: 2e-5, 1e-6;
float64: 1e-10, 1e-12), the size of each result being that of the same result computed in
float64 from the absolute values of its terms (tests/_attention_helpers.py), or max|b| if larger:
d_scale sums B*Tq*Tv terms that largely cancel, and a query row that attends to one key has
score gradients made of rounding alone. A wrong mask rule, scale or routing gives errors of
order 1e-2..1.

Which path ran is checked through the bridge's counters (``_tf_bridge.cache_stats()``): a fused
call stores a forward cache, Keras's own implementation does not.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("fusedrnn.keras's fused attention runs on the TensorFlow backend", allow_module_level=True)

from _attention_helpers import result_sizes  # noqa: E402
from fusedrnn.keras import _tf_bridge  # noqa: E402
from fusedrnn.keras.attention import AdditiveAttention, Attention  # noqa: E402

RTOL = {"float32": 2e-5, "float64": 1e-10}
ATOL = {"float32": 1e-6, "float64": 1e-12}
NAMES = ["output", "scores", "d_query", "d_value", "d_key", "d_scale"]

#: case name -> (fusedrnn class, stock class, constructor arguments)
LAYERS = {
    "dot": (Attention, keras.layers.Attention, {}),
    "dot_scaled": (Attention, keras.layers.Attention, {"use_scale": True}),
    "additive": (AdditiveAttention, keras.layers.AdditiveAttention, {}),
    "additive_unscaled": (AdditiveAttention, keras.layers.AdditiveAttention, {"use_scale": False}),
}


def assert_close(actual, expected, dtype, what, size=0.0):
    """max|actual - expected| <= rtol * max(size, max|expected|) + atol (size: result_sizes's)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.isfinite(actual).all(), f"{what}: NaN/inf"
    err = np.max(np.abs(actual - expected), initial=0.0)
    size = max(size, np.max(np.abs(expected), initial=0.0))
    tol = RTOL[dtype] * size + ATOL[dtype]
    assert err <= tol, f"{what}: max error {err:.3g} > tolerance {tol:.3g}"


def assert_all_close(fused, stock, dtype, problem):
    """Compare run()'s six arrays; problem = (layer, inputs, mask, causal, r_out, r_scores): each
    array is held to rtol times its size from absolute values (_attention_helpers.result_sizes)."""
    assert len(fused) == len(stock)
    sizes = sizes_of(*problem)
    for name, a, b in zip(NAMES, fused, stock):
        if b is None:
            assert a is None, f"{name}: fusedrnn has a gradient where Keras has none"
            continue
        assert_close(a, b, dtype, name, size=sizes[name])


def sizes_of(layer, inputs, mask, causal, r_out, r_scores):
    """result_sizes for a call of `layer` (fusedrnn's or Keras's) on these inputs."""
    additive = isinstance(layer, (AdditiveAttention, keras.layers.AdditiveAttention))  # subclasses of Attention
    query_mask, value_mask = (None, None) if mask is None else mask
    weights = layer.get_weights()
    return result_sizes("additive" if additive else "dot", inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else None,
                        weights[0] if weights else None, query_mask, value_mask, causal, r_out, r_scores)


def make_pair(case, rng, dtype="float32", dim=6, **extra):
    """(fusedrnn layer, stock layer) with the same random weights."""
    ours, theirs, kwargs = LAYERS[case]
    kwargs = {**kwargs, **extra, "dtype": dtype}
    fused, stock = ours(**kwargs), theirs(**kwargs)
    shapes = [(None, None, dim), (None, None, dim)]
    fused.build(shapes)
    stock.build(shapes)
    weights = [np.asarray(rng.uniform(0.5, 1.5, np.shape(w)), w.dtype) for w in stock.get_weights()]
    stock.set_weights(weights)
    fused.set_weights(weights)
    return fused, stock


def make_inputs(rng, B=3, Tq=4, Tv=5, D=6, Dv=None, dtype="float32", key=True):
    Dv = D if Dv is None and not key else (Dv or 7)
    q = rng.standard_normal((B, Tq, D)).astype(dtype)
    v = rng.standard_normal((B, Tv, Dv)).astype(dtype)
    inputs = [q, v]
    if key:
        inputs.append(rng.standard_normal((B, Tv, D)).astype(dtype))
    return inputs


def random_masks(rng, B, Tq, Tv, keep_first_key=True):
    """[query_mask (B, Tq), value_mask (B, Tv)]; key 0 kept when keep_first_key, so that no
    query row is fully masked (causal or not)."""
    qm = rng.random((B, Tq)) > 0.3
    vm = rng.random((B, Tv)) > 0.4
    if keep_first_key:
        vm[:, 0] = True
    return [qm, vm]


def run(layer, inputs, mask, causal, r_out, r_scores, function=False):
    """[output, scores, d_query, d_value, d_key or None, d_scale or None] as NumPy arrays."""
    tensors = [tf.constant(a) for a in inputs]

    def forward_backward(*xs):
        with tf.GradientTape() as tape:
            tape.watch(list(xs))
            out, scores = layer(list(xs), mask=mask, return_attention_scores=True, use_causal_mask=causal)
            loss = tf.reduce_sum(out * r_out) + tf.reduce_sum(scores * r_scores)
        grads = tape.gradient(loss, list(xs) + list(layer.trainable_weights))
        return [out, scores] + grads

    results = (tf.function(forward_backward) if function else forward_backward)(*tensors)
    results = [None if r is None else np.asarray(r) for r in results]
    out, scores, grads = results[0], results[1], results[2:]
    d_query, d_value = grads[0], grads[1]
    d_key = grads[2] if len(inputs) == 3 else None
    d_scale = grads[len(inputs)] if layer.trainable_weights else None
    return [out, scores, d_query, d_value, d_key, d_scale]


def upstream(rng, inputs, dtype):
    B, Tq, Tv, Dv = inputs[0].shape[0], inputs[0].shape[1], inputs[1].shape[1], inputs[1].shape[2]
    return rng.standard_normal((B, Tq, Dv)).astype(dtype), rng.standard_normal((B, Tq, Tv)).astype(dtype)


def stored():
    return _tf_bridge.cache_stats()["stored"]


# -- parity --------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "masks"])
@pytest.mark.parametrize("key", [False, True], ids=["nokey", "key"])
@pytest.mark.parametrize("case", list(LAYERS))
def test_eager_matches_keras(case, key, masked, causal, rng):
    fused, stock = make_pair(case, rng)
    inputs = make_inputs(rng, key=key)
    mask = random_masks(rng, 3, 4, 5) if masked else None
    r_out, r_scores = upstream(rng, inputs, "float32")
    before = stored()
    ours = run(fused, inputs, mask, causal, r_out, r_scores)
    assert stored() == before + 1, "the fused kernels did not run"
    assert_all_close(ours, run(stock, inputs, mask, causal, r_out, r_scores), "float32",
                     (stock, inputs, mask, causal, r_out, r_scores))


@pytest.mark.parametrize("case", ["dot_scaled", "additive"])
def test_float64_and_one_query_step(case, rng):
    fused, stock = make_pair(case, rng, dtype="float64", dim=5)
    inputs = make_inputs(rng, B=2, Tq=1, Tv=7, D=5, dtype="float64")
    mask = random_masks(rng, 2, 1, 7)
    r_out, r_scores = upstream(rng, inputs, "float64")
    ours = run(fused, inputs, mask, True, r_out, r_scores)
    assert ours[0].dtype == np.float64
    assert_all_close(ours, run(stock, inputs, mask, True, r_out, r_scores), "float64",
                     (stock, inputs, mask, True, r_out, r_scores))


@pytest.mark.parametrize("case", ["dot_scaled", "additive_unscaled"])
def test_more_queries_than_keys_causal(case, rng):
    """Tq > Tv: Keras's causal mask is aligned top-left (row i sees keys j <= i)."""
    fused, stock = make_pair(case, rng)
    inputs = make_inputs(rng, B=2, Tq=7, Tv=3)
    mask = random_masks(rng, 2, 7, 3)
    r_out, r_scores = upstream(rng, inputs, "float32")
    assert_all_close(run(fused, inputs, mask, True, r_out, r_scores), run(stock, inputs, mask, True, r_out, r_scores),
                     "float32", (stock, inputs, mask, True, r_out, r_scores))


@pytest.mark.parametrize("case", ["dot_scaled", "additive"])
def test_graph_mode_matches_keras(case, rng):
    """Inside tf.function (as in model.fit), with masks: the fused op behind tf.cond."""
    fused, stock = make_pair(case, rng)
    inputs = make_inputs(rng)
    mask = random_masks(rng, 3, 4, 5)
    r_out, r_scores = upstream(rng, inputs, "float32")
    assert_all_close(run(fused, inputs, mask, True, r_out, r_scores, function=True),
                     run(stock, inputs, mask, True, r_out, r_scores), "float32", (stock, inputs, mask, True, r_out, r_scores))


# -- fully masked rows: Keras's numbers, through Keras's implementation --------------------------
@pytest.mark.parametrize("function", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", ["dot_scaled", "additive"])
def test_fully_masked_rows_match_keras(case, causal, function, rng):
    fused, stock = make_pair(case, rng)
    inputs = make_inputs(rng)
    qm, vm = random_masks(rng, 3, 4, 5)
    if causal:
        vm[1, 0] = False          # query row 0 of item 1 sees key 0 only: fully masked
    else:
        vm[1, :] = False          # item 1 has no key at all
    r_out, r_scores = upstream(rng, inputs, "float32")
    before = stored()
    ours = run(fused, inputs, [qm, vm], causal, r_out, r_scores, function=function)
    if not function:
        assert stored() == before, "a batch with a fully masked row must run Keras's implementation"
    theirs = run(stock, inputs, [qm, vm], causal, r_out, r_scores)
    assert np.abs(theirs[1][1, 0]).sum() > 0.5, "Keras gives the fully masked row non-zero weights"
    assert_all_close(ours, theirs, "float32", (stock, inputs, [qm, vm], causal, r_out, r_scores))


# -- configuration, weights, serialization ------------------------------------------------------
@pytest.mark.parametrize("case", list(LAYERS))
def test_config_weights_and_registration(case, rng):
    ours, theirs, kwargs = LAYERS[case]
    fused, stock = ours(**kwargs, name="a"), theirs(**kwargs, name="a")
    assert fused.get_config() == stock.get_config()
    assert type(ours.from_config(fused.get_config())) is ours
    assert keras.saving.get_registered_name(ours) == f"fusedrnn>{ours.__name__}"
    assert keras.saving.get_registered_object(f"fusedrnn>{ours.__name__}") is ours
    assert fused.fused and fused.fused_reason is None and fused.supports_jit is False
    assert isinstance(fused, theirs)
    fused.build([(None, 4, 6), (None, 5, 6)])
    stock.build([(None, 4, 6), (None, 5, 6)])
    assert [(w.name, tuple(w.shape)) for w in fused.weights] == [(w.name, tuple(w.shape)) for w in stock.weights]
    weights = [rng.standard_normal(np.shape(w)).astype("float32") for w in stock.get_weights()]
    stock.set_weights(weights)
    fused.set_weights(stock.get_weights())            # stock -> fusedrnn
    stock.set_weights([w * 0 for w in weights])
    stock.set_weights(fused.get_weights())            # fusedrnn -> stock
    for a, b in zip(stock.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AttributeError):
        fused.fused = False


def test_defaults_are_keras_defaults():
    assert Attention().get_config() | {"name": ""} == keras.layers.Attention().get_config() | {"name": ""}
    layer = AdditiveAttention()
    assert layer.use_scale is True and layer.dropout == 0.0
    assert "score_mode" not in layer.get_config()


def self_attention_model(cls, seed):
    """ids (B, 12) -> Embedding(mask_zero) -> attention over itself (masks from the Embedding)
    -> masked average -> Dense(1)."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((12,), dtype="int32")
    x = keras.layers.Embedding(50, 8, mask_zero=True)(ids)
    x = cls(**({"use_scale": True} if cls.__name__ == "Attention" else {}))([x, x])
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(ids, keras.layers.Dense(1)(x))


def padded_ids(rng, n):
    ids = rng.integers(1, 50, (n, 12)).astype("int32")
    for row, pad in enumerate(rng.integers(0, 11, n)):
        ids[row, :pad] = 0        # pre-padding, at least one real word per row
    return ids


@pytest.mark.parametrize("pair", [(Attention, keras.layers.Attention),
                                  (AdditiveAttention, keras.layers.AdditiveAttention)], ids=["dot", "additive"])
def test_model_fit_matches_stock(pair, rng, seed):
    """A few model.fit steps (graph mode, masks from Embedding(mask_zero=True)) give the same
    losses and weights as stock Keras, and run the fused ops (caches stored and consumed)."""
    ours, theirs = pair
    x, y = padded_ids(rng, 32), rng.standard_normal((32, 1)).astype("float32")
    models = [self_attention_model(cls, seed % 2**31) for cls in (ours, theirs)]
    models[0].set_weights(models[1].get_weights())
    losses = []
    before = _tf_bridge.cache_stats()
    for model in models:
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        losses.append(history.history["loss"])
    after = _tf_bridge.cache_stats()
    assert after["consumed"] - before["consumed"] >= 8, "model.fit did not run the fused attention"
    assert after["recomputed"] == before["recomputed"], "the forward caches were not kept for the backward pass"
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_and_load_round_trip(tmp_path, rng, seed):
    model = self_attention_model(Attention, seed % 2**31)
    x = padded_ids(rng, 4)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert any(type(layer) is Attention for layer in loaded.layers)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)


def test_stock_model_loads_into_fusedrnn_layers(tmp_path, rng, seed):
    import fusedrnn.keras as fk

    if not hasattr(fk, "Attention"):
        pytest.skip("fusedrnn.keras does not export Attention yet")
    model = self_attention_model(keras.layers.AdditiveAttention, seed % 2**31)
    x = padded_ids(rng, 4)
    path = tmp_path / "stock.keras"
    model.save(path)
    loaded = fk.load_model(path)
    assert any(type(layer) is AdditiveAttention for layer in loaded.layers)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# -- what runs Keras's own implementation -------------------------------------------------------
def test_concat_score_mode_and_dropout_run_keras(rng):
    inputs = make_inputs(rng, key=False)
    concat, stock = Attention(score_mode="concat", use_scale=True), keras.layers.Attention(score_mode="concat",
                                                                                           use_scale=True)
    assert not concat.fused and "score_mode='concat'" in concat.fused_reason
    concat.build([a.shape for a in inputs])
    stock.build([a.shape for a in inputs])
    concat.set_weights([np.float32(rng.uniform(0.5, 2)) for _ in stock.get_weights()])
    stock.set_weights(concat.get_weights())
    np.testing.assert_allclose(concat(inputs), stock(inputs), rtol=1e-6)

    dropped = AdditiveAttention(dropout=0.5, seed=3)
    assert not dropped.fused and "dropout" in dropped.fused_reason
    dropped.build([a.shape for a in inputs])
    reference = keras.layers.AdditiveAttention(dropout=0.5, seed=3)
    reference.build([a.shape for a in inputs])
    reference.set_weights(dropped.get_weights())
    before = stored()
    np.testing.assert_allclose(dropped(inputs, training=False), reference(inputs, training=False), rtol=1e-6)
    assert stored() == before


def test_other_backends_are_named(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    layer = Attention()
    assert not layer.fused and "'tensorflow'" in layer.fused_reason and "'jax'" in layer.fused_reason


def test_mixed_precision(rng):
    fused, stock = make_pair("additive", rng, dtype="mixed_float16")
    inputs = make_inputs(rng)
    mask = random_masks(rng, 3, 4, 5)
    ours, theirs = (layer(inputs, mask=mask, return_attention_scores=True) for layer in (fused, stock))
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype == tf.float16
        np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=2e-2, atol=2e-2)


def test_empty_batch_in_graph_mode(rng):
    layer = Attention(use_scale=True)
    fn = tf.function(lambda q, v: layer([q, v], return_attention_scores=True),
                     input_signature=[tf.TensorSpec((None, 4, 6)), tf.TensorSpec((None, 5, 6))])
    out, scores = fn(np.zeros((0, 4, 6), "float32"), np.zeros((0, 5, 6), "float32"))
    assert out.shape == (0, 4, 6) and scores.shape == (0, 4, 5)


def test_non_finite_input_is_an_error_naming_it(rng):
    inputs = make_inputs(rng)
    inputs[0][1, 2, 3] = np.nan
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="query"):
        Attention()(inputs)
