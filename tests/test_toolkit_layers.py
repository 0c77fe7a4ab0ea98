"""Embedding, Dense, Dropout and Bidirectional against Keras, finite differences and bad input.

Keras comparisons copy the weights (``set_weights(keras_layer.get_weights())``) and compare the
forward values and the gradients of ``L = sum(y * dy)`` (``tf.GradientTape``) with our
``backward(dy)``. Tolerances (relative to the largest magnitude of Keras's result):

* Embedding forward is a gather: exact. Its gradient sums at most B*T float32 rows in a
  different order: 1e-6.
* Dense: one float32 GEMM over D <= 40 terms plus an activation; a different summation order
  and exp implementation give a few ulp: 1e-5.
* Bidirectional: two float32 recurrences over T <= 9 steps, as tests/test_layers.py: 1e-5.

Finite differences run in float64 with eps = 1e-6: the central difference's truncation error
(~eps^2) and rounding error (~1e-16 / eps) are both ~1e-10, far below the 1e-6 we assert.
TensorFlow is imported lazily (on the first Keras test) so that collection stays fast.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _finite_differences import central_difference, fd_close

import fusedrnn
from fusedrnn.layers.core import Dense, Dropout, Embedding, segment_sums
from fusedrnn.layers.wrappers import Bidirectional

# float32 parity: max|ours - keras| <= RTOL32 * max|keras| + ATOL32. The absolute part, as in
# test_recurrent_parity.py, covers gradients that are small sums of larger terms (a 1-unit
# SimpleRNN's recurrent gradient of 0.04 from terms near 1 differs by ~6e-7 in float32).
RTOL32 = 1e-5
ATOL32 = 1e-6


@pytest.fixture(scope="module")
def tfk():
    pytest.importorskip("tensorflow")
    from _keras_oracle import _tf
    return _tf()


def close(ours, theirs, what, seed, rtol=RTOL32, atol=ATOL32):
    theirs = np.asarray(theirs, np.float64)
    ours = np.asarray(ours, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape} (seed {seed})"
    scale = float(np.max(np.abs(theirs), initial=0.0))
    err = float(np.max(np.abs(ours - theirs), initial=0.0))
    assert err <= rtol * scale + atol, f"{what}: max error {err:.3g} vs scale {scale:.3g} (seed {seed})"


def keras_grads(tf, layer, inputs, d_out, mask=None, training=None):
    """Keras output, d/d inputs (None for ids) and d/d layer.weights of sum(y * d_out)."""
    x = tf.constant(inputs)
    float_input = inputs.dtype.kind == "f"
    kwargs = {} if mask is None else {"mask": tf.constant(mask)}
    with tf.GradientTape() as tape:
        if float_input:
            tape.watch(x)
        y = layer(x, **kwargs)
        loss = tf.reduce_sum(y * tf.constant(d_out))
    sources = ([x] if float_input else []) + [w.value for w in layer.weights]
    g = [np.asarray(tf.convert_to_tensor(v)) for v in tape.gradient(loss, sources)]
    dx = g.pop(0) if float_input else None
    return np.asarray(y), dx, g


# -- Embedding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("id_dtype", [np.uint8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("ndim", [1, 2])
def test_embedding_matches_keras(tfk, id_dtype, ndim, rng, seed):
    tf, keras = tfk
    V, D = int(rng.integers(2, 90)), int(rng.integers(1, 33))
    shape = (int(rng.integers(1, 7)),) if ndim == 1 else (int(rng.integers(1, 7)), int(rng.integers(1, 13)))
    ids = rng.integers(0, V, shape).astype(id_dtype)
    k = keras.layers.Embedding(V, D, mask_zero=True)
    k.build(shape)
    ours = Embedding(V, D, mask_zero=True)
    ours.set_weights(k.get_weights())
    d_out = rng.standard_normal(shape + (D,)).astype(np.float32)
    y_k, _, (g_k,) = keras_grads(tf, k, ids, d_out)
    y = ours(ids)
    np.testing.assert_array_equal(y, y_k, err_msg=f"seed {seed}")
    assert ours.backward(d_out) is None
    close(ours.grads[0], g_k, "d_embeddings", seed, rtol=1e-6, atol=1e-9)  # sums of a few rows: near exact
    np.testing.assert_array_equal(ours.touched_rows, np.unique(ids))
    np.testing.assert_array_equal(ours.compute_mask(ids, None), np.asarray(k.compute_mask(tf.constant(ids))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vocab", [3, 40, 5000])
def test_embedding_gradient_equals_add_at(dtype, vocab, rng, seed):
    """The sorted segment sums against np.add.at, incl. long runs of one id (padding)."""
    B, T, D = int(rng.integers(1, 40)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
    ids = rng.integers(0, vocab, (B, T))
    ids[rng.random((B, T)) < 0.5] = 0  # long runs of id 0: exercises the reduceat branch
    layer = Embedding(vocab, D, dtype=dtype, seed=seed)
    layer(ids)
    d = rng.standard_normal((B, T, D)).astype(dtype)
    layer.backward(d)
    expected = np.zeros((vocab, D))
    np.add.at(expected, ids.ravel(), d.reshape(-1, D).astype(np.float64))
    assert layer.grads[0].dtype == dtype and layer.grads[0].shape == (vocab, D)
    rtol, atol = (1e-12, 1e-15) if dtype == np.float64 else (1e-5, 1e-8)
    close(layer.grads[0], expected, "d_embeddings", seed, rtol=rtol, atol=atol)
    untouched = np.setdiff1d(np.arange(vocab), ids)
    assert not layer.grads[0][untouched].any(), f"rows of absent ids must be zero (seed {seed})"


def test_segment_sums_empty_and_single():
    ids = np.zeros(0, np.int64)
    touched, sums = segment_sums(ids, np.zeros((0, 3), np.float32))
    assert touched.shape == (0,) and sums.shape == (0, 3)
    touched, sums = segment_sums(np.array([4, 4, 4]), np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(touched, [4])
    np.testing.assert_array_equal(sums, [[6.0, 9.0]])


def test_embedding_defaults_and_contract(rng, seed):
    layer = Embedding(300, 40, seed=seed)
    w = layer.get_weights()[0]
    assert w.dtype == np.float32 and np.all(np.abs(w) <= 0.05)
    assert abs(w.std() - 0.05 / np.sqrt(3)) < 0.002, f"uniform(-0.05, 0.05) std (seed {seed})"
    assert layer.params[0] is layer.embeddings
    mask = rng.random((2, 3)) < 0.5
    assert layer.compute_mask(np.ones((2, 3), np.int32), mask) is mask  # passed on without mask_zero
    again = Embedding(**json.loads(json.dumps(layer.get_config())))
    assert again.get_config() == layer.get_config()


def test_embedding_bad_input():
    layer = Embedding(10, 4)
    with pytest.raises(TypeError, match="x"):
        layer(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="x"):
        layer([[1, 2]])
    with pytest.raises(ValueError, match=r"x: ids must lie in \[0, 10\)"):
        layer(np.array([[1, 10]]))
    with pytest.raises(ValueError, match="x"):
        layer(np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="x"):
        layer(np.zeros((2, 3, 4), np.int32))
    with pytest.raises(RuntimeError):
        layer.backward(np.zeros((2, 4), np.float32))
    layer(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((1, 3, 5), np.float32))
    with pytest.raises(TypeError, match="d_output"):
        layer.backward(np.zeros((1, 3, 4), np.float64))
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 4)
    with pytest.raises(ValueError, match="weights"):
        layer.set_weights([np.zeros((10, 5))])


# -- Dense -------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # U == 1 is a valid edge case
@pytest.mark.parametrize("activation", [None, "sigmoid", "tanh", "relu", "softmax"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_dense_matches_keras(tfk, activation, ndim, rng, seed):
    tf, keras = tfk
    use_bias = bool(rng.integers(0, 2))
    D, U = int(rng.integers(1, 40)), int(rng.integers(1, 17))
    lead = (int(rng.integers(1, 6)),) + ((int(rng.integers(1, 9)),) if ndim == 3 else ())
    k = keras.layers.Dense(U, activation=activation, use_bias=use_bias)
    k.build(lead + (D,))
    k.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in k.get_weights()])
    ours = Dense(U, activation=activation, use_bias=use_bias)
    ours.set_weights(k.get_weights())
    x = rng.standard_normal(lead + (D,)).astype(np.float32)
    d_out = rng.standard_normal(lead + (U,)).astype(np.float32)
    y_k, dx_k, g_k = keras_grads(tf, k, x, d_out)
    ctx = f"{activation} use_bias={use_bias} x{x.shape} U={U}"
    close(ours(x), y_k, f"output {ctx}", seed)
    dx = ours.backward(d_out)
    assert len(ours.grads) == len(g_k) == (2 if use_bias else 1)
    if activation == "softmax" and U == 1:
        # A softmax over one unit is the constant 1: every gradient is exactly zero. Keras's float32
        # arithmetic leaves rounding noise of the size of its sums there, which no fixed absolute
        # tolerance bounds, so ours is checked against the exact answer instead.
        for a, what in zip([dx] + ours.grads, ["dx", "d_kernel", "d_bias"]):
            assert not np.any(a), f"{what} {ctx}: expected exact zeros (seed {seed})"
        return
    close(dx, dx_k, f"dx {ctx}", seed)
    for a, b, what in zip(ours.grads, g_k, ["d_kernel", "d_bias"]):
        close(a, b, f"{what} {ctx}", seed)


@pytest.mark.parametrize("activation", [None, "sigmoid", "tanh", "relu", "softmax"])
def test_dense_gradcheck_float64(activation, rng, seed):
    B, T, D, U = 2, 3, 4, 5
    layer = Dense(U, activation=activation, dtype="float64", seed=seed)
    x = rng.standard_normal((B, T, D))
    layer(x)
    layer.bias[:] = rng.standard_normal(U)  # exercise the bias path away from zero
    r = rng.standard_normal((B, T, U))

    def f():
        return float(np.sum(layer(x) * r))

    f()
    dx = layer.backward(r)
    d_kernel, d_bias = layer.grads
    fd_close(dx, central_difference(f, x), f"dx {activation}", seed)
    fd_close(d_kernel, central_difference(f, layer.kernel), f"d_kernel {activation}", seed)
    fd_close(d_bias, central_difference(f, layer.bias), f"d_bias {activation}", seed)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax", "tanh"])
def test_dense_backward_from_logits_skips_activation(activation, rng, seed):
    layer = Dense(3, activation=activation, dtype="float64", seed=seed)
    linear = Dense(3, dtype="float64")
    x = rng.standard_normal((4, 6))
    y = layer(x)
    linear.set_weights(layer.get_weights())
    np.testing.assert_allclose(linear(x), layer.logits, rtol=1e-14, err_msg=f"seed {seed}")
    assert y.shape == layer.logits.shape
    g = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.backward(g, from_logits=True), linear.backward(g), rtol=1e-14)
    for a, b in zip(layer.grads, linear.grads):
        np.testing.assert_allclose(a, b, rtol=1e-14, err_msg=f"seed {seed}")


def test_dense_contract_and_bad_input(rng):
    layer = Dense(3)
    with pytest.raises(RuntimeError):
        layer.params
    mask = rng.random((2, 4)) < 0.5
    y = layer(rng.standard_normal((2, 4, 5)).astype(np.float32), mask=mask)
    assert y.shape == (2, 4, 3) and y.dtype == np.float32
    assert layer.compute_mask(None, mask) is mask
    assert [p.shape for p in layer.params] == [(5, 3), (3,)] and not layer.bias.any()
    limit = np.sqrt(6 / (5 + 3))
    assert np.all(np.abs(layer.kernel) <= limit)
    assert Dense(**json.loads(json.dumps(layer.get_config()))).get_config() == layer.get_config()
    with pytest.raises(TypeError, match="x"):
        layer(np.zeros((2, 5), np.int32))
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="x: expected 5 features"):
        layer(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="x"):
        layer(np.zeros(5, np.float32))
    layer(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="gelu")
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(TypeError, match="dtype"):
        Dense(3, dtype="int32")
    with pytest.raises(ValueError, match="weights"):
        layer.set_weights([np.zeros((5, 3))])
    nobias = Dense(2, use_bias=False)
    nobias(np.ones((1, 3), np.float32))
    assert len(nobias.params) == 1 and len(nobias.get_weights()) == 1


# -- Dropout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_statistics_and_gradient(dtype, rng, seed):
    rate = float(rng.uniform(0.1, 0.7))
    layer = Dropout(rate, seed=seed)
    assert layer.params == [] and layer.get_weights() == []
    x = (rng.random((400, 500)) + 0.5).astype(dtype)  # strictly positive: zeros mean dropped
    assert layer(x) is x and layer(x, training=False) is x  # identity at inference
    d = rng.standard_normal(x.shape).astype(dtype)
    assert layer.backward(d) is d
    y = layer(x, training=True)
    assert y.dtype == dtype and y.shape == x.shape
    dropped = y == 0
    n = x.size
    # the dropped fraction is Binomial(n, rate)/n: 6 standard deviations
    assert abs(dropped.mean() - rate) <= 6 * np.sqrt(rate * (1 - rate) / n), f"rate {rate} (seed {seed})"
    kept = ~dropped
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6 if dtype == np.float32 else 1e-14)
    dx = layer.backward(d)
    np.testing.assert_array_equal(dx == 0, dropped | (d == 0))
    np.testing.assert_allclose(dx[kept], d[kept] / (1 - rate), rtol=1e-6 if dtype == np.float32 else 1e-14)
    mask = rng.random((2, 3)) < 0.5
    assert layer.compute_mask(x, mask) is mask
    assert Dropout(0.0)(x, training=True) is x


def test_dropout_seeded_and_bad_input(rng, seed):
    x = rng.standard_normal((20, 30))
    a, b = Dropout(0.5, seed=seed), Dropout(0.5, seed=seed)
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))
    for bad in (-0.1, 1.0, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="rate"):
            Dropout(bad)
    with pytest.raises(TypeError, match="x"):
        Dropout(0.5)(np.ones((2, 2), np.int64), training=True)
    layer = Dropout(0.5)
    layer(x, training=True)
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.ones((2, 2)))


# -- Bidirectional -----------------------------------------------------------------------------
CELLS = {"SimpleRNN": fusedrnn.SimpleRNN, "LSTM": fusedrnn.LSTM, "GRU": fusedrnn.GRU}


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_matches_keras(tfk, merge_mode, return_sequences, rng, seed):
    tf, keras = tfk
    cell = str(rng.choice(sorted(CELLS)))
    B, T, I, H = int(rng.integers(1, 6)), int(rng.integers(1, 10)), int(rng.integers(1, 8)), int(rng.integers(1, 12))
    k = keras.layers.Bidirectional(getattr(keras.layers, cell)(H, return_sequences=return_sequences),
                                   merge_mode=merge_mode)
    k.build((B, T, I))
    k.set_weights([w + 0.2 * rng.standard_normal(w.shape).astype(np.float32) for w in k.get_weights()])
    ours = Bidirectional(CELLS[cell](H, return_sequences=return_sequences), merge_mode=merge_mode)
    ours.set_weights(k.get_weights())
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = rng.random((B, T)) < 0.7 if rng.random() < 0.7 else None
    width = 2 * H if merge_mode == "concat" else H
    d_out = rng.standard_normal((B, T, width) if return_sequences else (B, width)).astype(np.float32)
    y_k, dx_k, g_k = keras_grads(tf, k, x, d_out, mask=mask)
    ctx = f"{cell} {merge_mode} return_sequences={return_sequences} x{x.shape} H={H} mask={mask is not None}"
    close(ours(x, mask=mask), y_k, f"output {ctx}", seed)
    close(ours.backward(d_out), dx_k, f"dx {ctx}", seed)
    assert len(ours.grads) == len(g_k) == 6
    names = ["fw_kernel", "fw_recurrent", "fw_bias", "bw_kernel", "bw_recurrent", "bw_bias"]
    for a, b, what in zip(ours.grads, g_k, names):
        close(a, b, f"{what} {ctx}", seed)
    expected_mask = mask if return_sequences else None
    assert ours.compute_mask(x, mask) is expected_mask


@pytest.mark.parametrize("merge_mode", ["concat", "mul", "ave"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_bidirectional_gradcheck_float64(cell, merge_mode, rng, seed):
    B, T, I, H = 2, 4, 3, 2
    return_sequences = merge_mode != "ave"
    layer = Bidirectional(CELLS[cell](H, return_sequences=return_sequences, dtype="float64", seed=seed),
                          merge_mode=merge_mode)
    layer.build(I)
    layer.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    x = rng.standard_normal((B, T, I))
    mask = np.array([[True, False, True, True], [False, True, True, False]])
    y = layer(x, mask=mask)
    r = rng.standard_normal(y.shape)

    def f():
        return float(np.sum(layer(x, mask=mask) * r))

    f()
    dx = layer.backward(r)
    grads = [g.copy() for g in layer.grads]
    fd_close(dx, central_difference(f, x), f"dx {cell} {merge_mode}", seed)
    for k, (p, g) in enumerate(zip(layer.params, grads)):
        fd_close(g, central_difference(f, p), f"grads[{k}] {cell} {merge_mode}", seed)


def test_bidirectional_masked_steps_are_zero_and_ids_input(rng, seed):
    V, H = 7, 3
    layer = Bidirectional(fusedrnn.GRU(H, return_sequences=True, seed=seed))
    layer.build(V)
    ids = rng.integers(0, V, (3, 5))
    mask = rng.random((3, 5)) < 0.6
    y = layer(ids, mask=mask)
    assert y.shape == (3, 5, 2 * H)
    assert not y[~mask].any(), f"masked steps must be zero (seed {seed})"
    one_hot = np.eye(V, dtype=np.float32)[ids]
    np.testing.assert_allclose(layer(one_hot, mask=mask), y, rtol=1e-6, atol=1e-7)
    layer(ids, mask=mask)
    assert layer.backward(rng.standard_normal(y.shape).astype(np.float32)) is None


def test_bidirectional_contract_and_bad_input(rng, seed):
    inner = fusedrnn.LSTM(4, return_sequences=True, name="enc", seed=seed)
    layer = Bidirectional(inner, merge_mode="sum")
    assert layer.forward_layer.name == "forward_enc" and layer.backward_layer.name == "backward_enc"
    assert not layer.forward_layer.go_backwards and layer.backward_layer.go_backwards
    y = layer(rng.standard_normal((2, 3, 5)).astype(np.float32))
    assert y.shape == (2, 3, 4)
    assert [w.shape for w in layer.get_weights()] == [(5, 16), (4, 16), (16,)] * 2
    assert len(layer.params) == 6 and layer.params[0] is layer.forward_layer.kernel
    config = json.loads(json.dumps(layer.get_config()))
    again = Bidirectional(**config)
    assert again.get_config() == layer.get_config()
    assert again.backward_layer.go_backwards
    a = Bidirectional(fusedrnn.GRU(3, seed=seed))
    b = Bidirectional(fusedrnn.GRU(3, seed=seed))
    a.build(2)
    b.build(2)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb, err_msg="a seeded layer gives reproducible copies")
    with pytest.raises(ValueError, match="return_state"):
        Bidirectional(fusedrnn.LSTM(4, return_state=True))
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(fusedrnn.LSTM(4), merge_mode=None)
    with pytest.raises(TypeError, match="layer"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="backward_layer"):
        Bidirectional(fusedrnn.LSTM(4), backward_layer=fusedrnn.LSTM(4))
    with pytest.raises(ValueError, match="backward_layer"):
        Bidirectional(fusedrnn.LSTM(4), backward_layer=fusedrnn.LSTM(5, go_backwards=True))
    with pytest.raises(ValueError, match="weights"):
        layer.set_weights(layer.get_weights()[:3])
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(RuntimeError):
        Bidirectional(fusedrnn.LSTM(4)).backward(np.zeros((1, 4), np.float32))
