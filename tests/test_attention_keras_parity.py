"""fusedrnn's attention ops and layers against Keras 3 (keras.layers.Attention with
score_mode="dot", keras.layers.AdditiveAttention), forward and gradients (tf.GradientTape).

Keras is differentiated on the scalar loss

    L = sum(context * Rc * valid) + sum(weights * Rw * valid)

where ``valid[b, i]`` marks query rows with at least one allowed key: Keras gives a fully
masked row uniform weights (float32) where fusedrnn gives zeros (a documented deviation), so
those rows are compared separately (fusedrnn: exactly zero) and kept out of the loss. With that
loss the Keras gradients equal ``*_attention_backward(cache, Rc * valid, Rw * valid)``.

Tolerance: both sides round every operation (float32: u = 6e-8) in different orders
(blocked matmuls, tree reductions, different exp/tanh); scores are sums over D <= 40 terms and
the gradients sums over Tq*Tv <= 100 terms, so errors stay ~1e-6 relative. We assert
max|a - b| <= 2e-5 * size + 1e-6 per array in float32 (observed: up to 1.4e-6 relative over
15 seeds of every case), 1e-10 in float64, where size is the larger of max|b| and the same
result computed in float64 from the absolute values of its terms (tests/_attention_helpers.py):
d_scale sums B*Tq*Tv terms that largely cancel (every softmax row's score gradients sum to
zero), and a row that attends to one key has score gradients made of rounding alone.
A wrong mask rule, scale or equation gives errors of order 1e-2..1.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _attention_helpers import result_sizes

RTOL = {np.float32: 2e-5, np.float64: 1e-10}
ATOL = {np.float32: 1e-6, np.float64: 1e-12}


def assert_close(actual, expected, *, dtype, what, ctx, size=0.0):
    """max|actual - expected| <= rtol * max(size, max|expected|) + atol (size: result_sizes's)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}. {ctx}"
    assert np.isfinite(actual).all(), f"{what}: NaN/inf. {ctx}"
    err = np.max(np.abs(actual - expected), initial=0.0)
    size = max(size, np.max(np.abs(expected), initial=0.0))
    tol = RTOL[dtype] * size + ATOL[dtype]
    assert err <= tol, f"{what}: max error {err:.3g} > tolerance {tol:.3g}. {ctx}"


_TF = None


def tf_keras():
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf
        _TF = (tf, keras)
    return _TF


def valid_rows(B, Tq, Tv, value_mask, causal):
    """(B, Tq): does query row i have at least one allowed key?"""
    allowed = np.ones((B, Tq, Tv), bool)
    if value_mask is not None:
        allowed &= value_mask[:, None, :]
    if causal:
        allowed &= np.arange(Tv)[None, :] <= np.arange(Tq)[:, None]
    return allowed.any(axis=-1)


def keras_attention(kind, dtype, query, value, key, scale, query_mask, value_mask, causal, r_context, r_weights):
    """Keras's context, weights and gradients [d_query, d_value, (d_key), (d_scale)]."""
    tf, keras = tf_keras()
    use_scale = scale is not None
    if kind == "dot":
        layer = keras.layers.Attention(use_scale=use_scale, dtype=np.dtype(dtype).name)
    else:
        layer = keras.layers.AdditiveAttention(use_scale=use_scale, dtype=np.dtype(dtype).name)
    inputs = [query, value] + ([key] if key is not None else [])
    layer.build([x.shape for x in inputs])
    if use_scale:
        layer.set_weights([np.asarray(scale)])
    tensors = [tf.constant(x) for x in inputs]
    mask = None
    if query_mask is not None or value_mask is not None:
        mask = [None if query_mask is None else tf.constant(query_mask),
                None if value_mask is None else tf.constant(value_mask)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        context, weights = layer(tensors, mask=mask, return_attention_scores=True, use_causal_mask=causal)
        loss = tf.reduce_sum(context * r_context) + tf.reduce_sum(weights * r_weights)
    grads = tape.gradient(loss, tensors + list(layer.trainable_weights))
    return context.numpy(), weights.numpy(), [g.numpy() for g in grads], layer


def random_problem(rng, B, Tq, Tv, D, Dv, dtype, *, separate_key, scale, kind, query_mask, value_mask):
    query = rng.standard_normal((B, Tq, D)).astype(dtype)
    value = rng.standard_normal((B, Tv, Dv if separate_key else D)).astype(dtype)
    key = rng.standard_normal((B, Tv, D)).astype(dtype) if separate_key else None
    if kind == "dot":
        query *= dtype(1.0 / np.sqrt(D))  # keep the softmax away from saturation
        s = dtype(rng.uniform(0.5, 1.5)) if scale else None
    else:
        s = rng.uniform(-1.0, 1.0, D).astype(dtype) if scale else None
    qm = rng.random((B, Tq)) < 0.7 if query_mask else None
    vm = None
    if value_mask:
        vm = rng.random((B, Tv)) < 0.6
        vm[0] = False           # one fully masked batch item
        vm[-1, 0] = True        # and one that the causal mask leaves keys for
    return query, value, key, s, qm, vm


# name -> (kind, B, Tq, Tv, D, Dv, separate_key, scale, query_mask, value_mask, causal)
CASES = {
    "dot_plain": ("dot", 3, 5, 7, 8, None, False, False, False, False, False),
    "dot_scale": ("dot", 2, 4, 6, 5, None, False, True, False, False, False),
    "dot_key_odd": ("dot", 3, 7, 9, 13, 11, True, True, False, False, False),
    "dot_masks": ("dot", 4, 5, 6, 7, None, False, True, True, True, False),
    "dot_causal": ("dot", 3, 6, 6, 5, None, False, False, False, False, True),
    "dot_causal_masks_rect": ("dot", 3, 4, 7, 6, 5, True, True, True, True, True),
    "dot_tq1": ("dot", 5, 1, 9, 17, None, False, True, False, True, False),
    "dot_tq1_key_causal": ("dot", 4, 1, 5, 6, 3, True, False, True, False, True),
    "add_plain": ("additive", 3, 5, 7, 8, None, False, False, False, False, False),
    "add_scale": ("additive", 2, 4, 6, 5, None, False, True, False, False, False),
    "add_key_odd": ("additive", 3, 7, 9, 13, 11, True, True, False, False, False),
    "add_masks": ("additive", 4, 5, 6, 7, None, False, True, True, True, False),
    "add_causal_masks": ("additive", 3, 6, 6, 5, 4, True, True, True, True, True),
    "add_tq1": ("additive", 5, 1, 9, 17, None, False, True, False, True, False),
    "add_tq1_noscale": ("additive", 4, 1, 5, 33, 3, True, False, True, False, False),
}


# every case in float32, a few in float64 (Keras layers built with dtype="float64")
PARAMS = [pytest.param(c, np.float32, id=f"{c}-f32") for c in CASES] + [
    pytest.param(c, np.float64, id=f"{c}-f64") for c in ("dot_masks", "dot_tq1", "add_key_odd", "add_causal_masks")]


@pytest.mark.parametrize("case,dtype", PARAMS)
def test_ops_match_keras(case, dtype, rng, seed):
    from fusedrnn import ops

    kind, B, Tq, Tv, D, Dv, separate_key, scale, qmask, vmask, causal = CASES[case]
    ctx = f"case={case} dtype={np.dtype(dtype).name} seed={seed}"
    q, v, k, s, qm, vm = random_problem(rng, B, Tq, Tv, D, Dv, dtype, separate_key=separate_key, scale=scale,
                                        kind=kind, query_mask=qmask, value_mask=vmask)
    valid = valid_rows(B, Tq, Tv, vm, causal)
    rc = (rng.standard_normal((B, Tq, v.shape[2])) * valid[:, :, None]).astype(dtype)
    rw = (rng.standard_normal((B, Tq, Tv)) * valid[:, :, None]).astype(dtype)

    forward = ops.dot_attention_forward if kind == "dot" else ops.additive_attention_forward
    backward = ops.dot_attention_backward if kind == "dot" else ops.additive_attention_backward
    context, weights, cache = forward(q, v, k, scale=s, query_mask=qm, value_mask=vm, causal=causal)
    d_query, d_key, d_value, d_scale = backward(cache, rc, rw)
    kc, kw, kg, _ = keras_attention(kind, dtype, q, v, k, s, qm, vm, causal, rc, rw)

    for name, a in [("context", context), ("weights", weights), ("d_query", d_query), ("d_value", d_value)]:
        assert a.dtype == dtype, f"{name}: dtype {a.dtype}. {ctx}"
    sel = valid[:, :, None]
    sizes = result_sizes(kind, q, v, k, s, qm, vm, causal, rc, rw)
    assert_close(np.where(sel, context, 0), np.where(sel, kc, 0), dtype=dtype, what="context", ctx=ctx,
                 size=sizes["output"])
    assert_close(np.where(sel, weights, 0), np.where(sel, kw, 0), dtype=dtype, what="weights", ctx=ctx)
    # Rows without any allowed key: zeros (Keras: uniform weights), never NaN.
    assert np.all(weights[~valid] == 0) and np.all(context[~valid] == 0), f"fully masked rows not zero. {ctx}"
    if qm is not None:
        assert np.all(context[~qm] == 0), f"query-masked rows not zero. {ctx}"
    assert_close(d_query, kg[0], dtype=dtype, what="d_query", ctx=ctx, size=sizes["d_query"])
    assert_close(d_value, kg[1], dtype=dtype, what="d_value", ctx=ctx, size=sizes["d_value"])
    if k is not None:
        assert_close(d_key, kg[2], dtype=dtype, what="d_key", ctx=ctx, size=sizes["d_key"])
    else:
        assert d_key is None, ctx
    if s is not None:
        assert_close(d_scale, kg[-1], dtype=dtype, what="d_scale", ctx=ctx, size=sizes["d_scale"])
        assert np.shape(d_scale) == np.shape(s), ctx
    else:
        assert d_scale is None, ctx


@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_layers_match_keras(kind, rng, seed):
    """fusedrnn.Attention / AdditiveAttention with a Keras layer's weights, Keras's call API."""
    import fusedrnn

    dtype = np.float32
    B, Tq, Tv, D = 3, 4, 6, 10
    ctx = f"kind={kind} seed={seed}"
    q, v, k, s, qm, vm = random_problem(rng, B, Tq, Tv, D, 7, dtype, separate_key=True, scale=True, kind=kind,
                                        query_mask=True, value_mask=True)
    vm[:, 0] = True  # with the causal mask every row then has an allowed key: all rows compare
    rc = rng.standard_normal((B, Tq, 7)).astype(dtype)
    rw = rng.standard_normal((B, Tq, Tv)).astype(dtype)
    kc, kw, kg, klayer = keras_attention(kind, dtype, q, v, k, s, qm, vm, True, rc, rw)
    # Keras's own initial scale when use_scale: a fresh Keras layer's weights load into ours.
    layer = fusedrnn.Attention(use_scale=True) if kind == "dot" else fusedrnn.AdditiveAttention()
    layer.set_weights(klayer.get_weights())
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in klayer.get_weights()], ctx
    context, weights = layer([q, v, k], mask=[qm, vm], return_attention_scores=True, use_causal_mask=True)
    sizes = result_sizes(kind, q, v, k, s, qm, vm, True, rc, rw)
    assert_close(context, kc, dtype=dtype, what="context", ctx=ctx, size=sizes["output"])
    assert_close(weights, kw, dtype=dtype, what="weights", ctx=ctx)
    d_query, d_value, d_key = layer.backward(rc, rw)
    for name, a, b in [("d_query", d_query, kg[0]), ("d_value", d_value, kg[1]), ("d_key", d_key, kg[2]),
                       ("d_scale", layer.grads[0], kg[3])]:
        assert_close(a, b, dtype=dtype, what=name, ctx=ctx, size=sizes[name])
    # Two inputs [query, value]: the value is also the key, and its gradient includes both uses.
    rc2 = rng.standard_normal((B, Tq, D)).astype(dtype)
    kc2, _, kg2, _ = keras_attention(kind, dtype, q, k, None, s, None, None, False, rc2, np.zeros_like(rw))
    out = layer([q, k])
    sizes2 = result_sizes(kind, q, k, None, s, None, None, False, rc2, None)
    assert_close(out, kc2, dtype=dtype, what="context (2 inputs)", ctx=ctx, size=sizes2["output"])
    d_query2, d_value2 = layer.backward(rc2)
    assert_close(d_query2, kg2[0], dtype=dtype, what="d_query (2 inputs)", ctx=ctx, size=sizes2["d_query"])
    assert_close(d_value2, kg2[1], dtype=dtype, what="d_value (2 inputs)", ctx=ctx, size=sizes2["d_value"])
    assert_close(layer.grads[0], kg2[2], dtype=dtype, what="d_scale (2 inputs)", ctx=ctx, size=sizes2["d_scale"])


def test_layer_default_weights_follow_keras(seed):
    """Shapes and initial values of the scale weights, as Keras builds them."""
    import fusedrnn

    tf, keras = tf_keras()
    D = 12
    for ours, theirs in [(fusedrnn.Attention(), keras.layers.Attention()),
                         (fusedrnn.Attention(use_scale=True), keras.layers.Attention(use_scale=True)),
                         (fusedrnn.AdditiveAttention(seed=seed), keras.layers.AdditiveAttention()),
                         (fusedrnn.AdditiveAttention(use_scale=False), keras.layers.AdditiveAttention(use_scale=False))]:
        ours.build(D)
        theirs.build([(2, 3, D), (2, 4, D)])
        kw, fw = theirs.get_weights(), ours.get_weights()
        assert [w.shape for w in fw] == [w.shape for w in kw], (type(ours).__name__, seed)
        if isinstance(ours, fusedrnn.AdditiveAttention) and ours.use_scale:
            limit = np.sqrt(6.0 / (2 * D))  # glorot_uniform with fan_in = fan_out = D
            assert np.all(np.abs(fw[0]) <= limit) and np.all(np.abs(kw[0]) <= limit), seed
        elif fw:
            assert fw[0] == 1.0 and kw[0] == 1.0
