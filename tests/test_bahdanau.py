"""fusedrnn.BahdanauAttention against the same computation written in TensorFlow.

* One decoder step against the TensorFlow NMT tutorial's layer, built from Keras Dense layers:
  ``score = V(tanh(W1(query[:, None]) + W2(values)))``, softmax over the source axis,
  ``context = sum(weights * values)``. Ours merges the two Dense biases into one (b = b1 + b2)
  and drops V's bias (a constant shift of every score cancels in the softmax).
* A whole target sequence with source and target masks against the equations in raw TF ops
  (masking as Keras's attention layers do it: 1e9 subtracted from masked scores).
* float64 finite differences of every weight and input; decoding step by step with projected
  keys equals one call on the whole sequence.

Tolerances as in test_attention_keras_parity.py: max|a - b| <= 2e-5 max|b| + 1e-6 (float32).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fusedrnn

RTOL32, ATOL32 = 2e-5, 1e-6


def assert_close(a, b, what, ctx, rtol=RTOL32, atol=ATOL32):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}. {ctx}"
    err = np.max(np.abs(a - b), initial=0.0)
    tol = rtol * np.max(np.abs(b), initial=0.0) + atol
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g}. {ctx}"


def tf_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf
    return tf, keras


def test_one_step_matches_tf_tutorial_layer(rng, seed):
    tf, keras = tf_keras()
    B, Tv, Dq, Dv, U = 4, 7, 9, 6, 11
    ctx = f"seed={seed}"
    W1, W2, V = keras.layers.Dense(U), keras.layers.Dense(U), keras.layers.Dense(1)
    W1.build((None, Dq))
    W2.build((None, Dv))
    V.build((None, U))
    for d in (W1, W2, V):  # non-zero biases, so that merging them is exercised
        d.set_weights([d.get_weights()[0], rng.uniform(-0.5, 0.5, d.get_weights()[1].shape).astype(np.float32)])
    query = rng.standard_normal((B, Dq)).astype(np.float32)
    values = rng.standard_normal((B, Tv, Dv)).astype(np.float32)
    rc = rng.standard_normal((B, Dv)).astype(np.float32)
    rw = rng.standard_normal((B, Tv)).astype(np.float32)

    q_t, v_t = tf.constant(query), tf.constant(values)
    with tf.GradientTape() as tape:
        tape.watch([q_t, v_t])
        score = V(tf.nn.tanh(W1(tf.expand_dims(q_t, 1)) + W2(v_t)))  # (B, Tv, 1)
        weights = tf.nn.softmax(score, axis=1)
        context = tf.reduce_sum(weights * v_t, axis=1)
        weights = weights[:, :, 0]
        loss = tf.reduce_sum(context * rc) + tf.reduce_sum(weights * rw)
    variables = [W1.kernel, W1.bias, W2.kernel, W2.bias, V.kernel]
    g = tape.gradient(loss, [q_t, v_t] + variables)

    layer = fusedrnn.BahdanauAttention(U, use_bias=True)
    b = W1.get_weights()[1] + W2.get_weights()[1]
    layer.set_weights([W1.get_weights()[0], W2.get_weights()[0], V.get_weights()[0][:, 0], b])
    c, w = layer(query, values)
    assert c.shape == (B, Dv) and w.shape == (B, Tv), ctx
    assert_close(c, context.numpy(), "context", ctx)
    assert_close(w, weights.numpy(), "weights", ctx)
    d_query, d_values = layer.backward(rc, rw)
    dW1, dW2, dv, db = layer.grads
    assert_close(d_query, g[0], "d_query", ctx)
    assert_close(d_values, g[1], "d_values", ctx)
    assert_close(dW1, g[2], "dW1", ctx)
    assert_close(db, g[3], "db (= d b1)", ctx)
    assert_close(dW2, g[4], "dW2", ctx)
    assert_close(db, g[5], "db (= d b2)", ctx)
    assert_close(dv, g[6].numpy()[:, 0], "dv", ctx)


@pytest.mark.parametrize("use_bias", [False, True])
def test_sequence_with_masks_matches_tf(use_bias, rng, seed):
    tf, _ = tf_keras()
    B, Tq, Tv, Dq, Dv, U = 3, 5, 8, 7, 10, 13
    ctx = f"use_bias={use_bias} seed={seed}"
    layer = fusedrnn.BahdanauAttention(U, use_bias=use_bias, seed=seed)
    layer.build(Dq, Dv)
    if use_bias:
        layer.b = rng.uniform(-0.5, 0.5, U).astype(np.float32)
    query = rng.standard_normal((B, Tq, Dq)).astype(np.float32)
    values = rng.standard_normal((B, Tv, Dv)).astype(np.float32)
    vm = rng.random((B, Tv)) < 0.7
    vm[:, 0] = True  # every row has a source position (fully masked rows are zeros here, see ops)
    qm = rng.random((B, Tq)) < 0.8
    rc = rng.standard_normal((B, Tq, Dv)).astype(np.float32)
    rw = rng.standard_normal((B, Tq, Tv)).astype(np.float32)

    weights_tf = [tf.constant(w) for w in layer.get_weights()]
    q_t, v_t = tf.constant(query), tf.constant(values)
    with tf.GradientTape() as tape:
        tape.watch([q_t, v_t] + weights_tf)
        W1, W2, v = weights_tf[:3]
        pq = tf.matmul(q_t, W1) + (weights_tf[3] if use_bias else 0.0)   # (B, Tq, U)
        pk = tf.matmul(v_t, W2)                                          # (B, Tv, U)
        scores = tf.reduce_sum(v * tf.tanh(pq[:, :, None, :] + pk[:, None, :, :]), axis=-1)
        scores = tf.where(vm[:, None, :], scores, scores - 1e9)
        weights = tf.nn.softmax(scores, axis=-1)
        context = tf.matmul(weights, v_t) * qm[:, :, None].astype(np.float32)
        loss = tf.reduce_sum(context * rc) + tf.reduce_sum(weights * rw)
    g = tape.gradient(loss, [q_t, v_t] + weights_tf)

    c, w = layer(query, values, vm, qm)
    assert_close(c, context.numpy(), "context", ctx)
    assert_close(w, weights.numpy(), "weights", ctx)
    d_query, d_values = layer.backward(rc, rw)
    assert_close(d_query, g[0], "d_query", ctx)
    assert_close(d_values, g[1], "d_values", ctx)
    names = ["dW1", "dW2", "dv", "db"]
    assert len(layer.grads) == len(layer.get_weights()), ctx
    for name, a, b in zip(names, layer.grads, g[2:]):
        assert_close(a, b, name, ctx)


def test_finite_differences_float64(rng, seed):
    B, Tq, Tv, Dq, Dv, U = 2, 3, 4, 5, 3, 6
    layer = fusedrnn.BahdanauAttention(U, use_bias=True, dtype="float64", seed=seed)
    layer.build(Dq, Dv)
    layer.b = rng.uniform(-0.5, 0.5, U)
    query = rng.standard_normal((B, Tq, Dq))
    values = rng.standard_normal((B, Tv, Dv))
    vm = rng.random((B, Tv)) < 0.7
    rc = rng.standard_normal((B, Tq, Dv))
    rw = rng.standard_normal((B, Tq, Tv))
    layer(query, values, vm)
    d_query, d_values = layer.backward(rc, rw)
    analytic = {"query": d_query, "values": d_values, **dict(zip(["W1", "W2", "v", "b"], layer.grads))}

    def loss():
        c, w = layer(query, values, vm)
        return float(np.sum(c * rc) + np.sum(w * rw))

    eps = 1e-6
    targets = {"query": query, "values": values, "W1": layer.W1, "W2": layer.W2, "v": layer.v, "b": layer.b}
    for name, x in targets.items():
        flat = x.reshape(-1)  # a view: perturbs the array the layer reads
        for i in rng.choice(flat.size, size=min(5, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            a = analytic[name].reshape(-1)[i]
            tol = 1e-6 * np.max(np.abs(analytic[name])) + 1e-8
            assert abs(numeric - a) <= tol, f"d_{name}[{i}]: {numeric:.10g} vs {a:.10g}. seed={seed}"


def test_step_by_step_decoding_matches_sequence(rng, seed):
    B, Tq, Tv, Dq, Dv, U = 3, 4, 6, 5, 7, 8
    layer = fusedrnn.BahdanauAttention(U, seed=seed)
    query = rng.standard_normal((B, Tq, Dq)).astype(np.float32)
    values = rng.standard_normal((B, Tv, Dv)).astype(np.float32)
    vm = rng.random((B, Tv)) < 0.7
    vm[:, -1] = True
    c_all, w_all = layer(query, values, vm)
    keys = layer.project_keys(values)
    assert keys.shape == (B, Tv, U), seed
    for t in range(Tq):
        q_t = np.ascontiguousarray(query[:, t])
        c, w = layer(q_t, values, vm, projected_keys=keys)
        c2, w2 = layer(q_t, values, vm)
        np.testing.assert_allclose(c, c_all[:, t], rtol=1e-5, atol=1e-6, err_msg=f"step {t}. seed={seed}")
        np.testing.assert_allclose(w, w_all[:, t], rtol=1e-5, atol=1e-6, err_msg=f"step {t}. seed={seed}")
        np.testing.assert_array_equal(c, c2, err_msg=f"projected keys vs recomputed. seed={seed}")
        np.testing.assert_array_equal(w, w2, err_msg=f"projected keys vs recomputed. seed={seed}")
        assert np.all(w[~vm] == 0), seed


def test_strided_query_and_values_equal_their_contiguous_copies(rng, seed):
    """A layer takes arrays of any strides (a query column of a sequence, values read every other
    step), forward and backward, with the results of C-ordered copies."""
    B, Tq, Tv, Dq, Dv, U = 3, 4, 10, 5, 7, 8
    layer = fusedrnn.BahdanauAttention(U, seed=seed)
    queries = rng.standard_normal((B, Tq, Dq)).astype(np.float32)
    values_all = rng.standard_normal((B, Tv, Dv)).astype(np.float32)
    for query, values in ((queries[:, 1], values_all[:, ::2]), (queries[:, ::-1], values_all.transpose(0, 1, 2)[:, 1::2])):
        assert not (query.flags.c_contiguous and values.flags.c_contiguous)
        d_context = rng.standard_normal(query.shape[:-1] + (Dv,)).astype(np.float32)
        got = layer(query, values)
        got_grads = layer.backward(d_context)
        want = layer(np.ascontiguousarray(query), np.ascontiguousarray(values))
        want_grads = layer.backward(d_context)
        for a, b in zip(list(got) + list(got_grads), list(want) + list(want_grads)):
            np.testing.assert_array_equal(a, b, err_msg=f"seed={seed}")


def test_weights_round_trip(rng, seed):
    layer = fusedrnn.BahdanauAttention(5, use_bias=True, seed=seed)
    layer.build(3, 4)
    weights = layer.get_weights()
    assert [w.shape for w in weights] == [(3, 5), (4, 5), (5,), (5,)], seed
    assert np.all(weights[3] == 0), "bias starts at zero"
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in weights]
    other = fusedrnn.BahdanauAttention(5, use_bias=True)
    other.set_weights(new)
    for a, b in zip(other.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    q = rng.standard_normal((2, 3)).astype(np.float32)
    vals = rng.standard_normal((2, 6, 4)).astype(np.float32)
    layer.set_weights(new)
    for a, b in zip(layer(q, vals), other(q, vals)):
        np.testing.assert_array_equal(a, b)
