"""Bad arguments to the attention ops and layers raise clear errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _C
from fusedrnn import ops

B, TQ, TV, D, DV = 2, 3, 4, 5, 6


@pytest.fixture
def arrays(rng):
    q = rng.standard_normal((B, TQ, D)).astype(np.float32)
    k = rng.standard_normal((B, TV, D)).astype(np.float32)
    v = rng.standard_normal((B, TV, DV)).astype(np.float32)
    return q, k, v


FORWARDS = {"dot": ops.dot_attention_forward, "additive": ops.additive_attention_forward}
BACKWARDS = {"dot": ops.dot_attention_backward, "additive": ops.additive_attention_backward}


def raises(exc, match, f, *args, **kwargs):
    with pytest.raises(exc, match=match):
        f(*args, **kwargs)


@pytest.mark.parametrize("kind", list(FORWARDS))
def test_shape_errors(kind, arrays, seed):
    f = FORWARDS[kind]
    q, k, v = arrays
    # key and value lengths differ
    raises(ValueError, r"key: its length 5 does not match the value's length Tv=4", f, q, v,
           np.zeros((B, TV + 1, D), np.float32))
    raises(ValueError, r"key: its last axis 4 does not match the query's dim 5", f, q, v,
           np.zeros((B, TV, D - 1), np.float32))
    raises(ValueError, r"key: batch size 3", f, q, v, np.zeros((B + 1, TV, D), np.float32))
    raises(ValueError, r"value: batch size 1 does not match the query's 2", f, q, v[:1].copy(), k)
    raises(ValueError, r"value: without a key, value is the key", f, q, v)
    raises(ValueError, r"query: expected a 3-D array", f, q[0].copy(), k)
    raises(ValueError, r"value: expected a 3-D array", f, q, k[0].copy())
    raises(ValueError, r"query: every dimension must be at least 1", f, np.zeros((B, 0, D), np.float32), k)
    # masks
    raises(ValueError, r"value_mask: expected shape \(2, 4\) \(batch, Tv\), got \(2, 3\)", f, q, v, k,
           value_mask=np.ones((B, TV - 1), bool))
    raises(ValueError, r"query_mask: expected shape \(2, 3\) \(batch, Tq\), got \(2, 4\)", f, q, v, k,
           query_mask=np.ones((B, TV), bool))
    raises(TypeError, r"value_mask: expected a boolean array, got int64", f, q, v, k,
           value_mask=np.ones((B, TV), np.int64))
    raises(TypeError, r"query_mask: expected a NumPy array", f, q, v, k, query_mask=[[True] * TQ] * B)


@pytest.mark.parametrize("kind", list(FORWARDS))
def test_dtype_errors(kind, arrays, seed):
    f = FORWARDS[kind]
    q, k, v = arrays
    raises(TypeError, r"value: expected dtype float32 \(the query's dtype\), got float64", f, q, v.astype(np.float64), k)
    raises(TypeError, r"key: expected dtype float32 \(the query's dtype\), got float64", f, q, v, k.astype(np.float64))
    raises(TypeError, r"query: expected float32 or float64, got int64", f, q.astype(np.int64), v, k)
    raises(TypeError, r"query: expected float32 or float64, got float16", f, q.astype(np.float16), v, k)
    raises(TypeError, r"query: expected a NumPy array, got list", f, q.tolist(), v, k)
    raises(TypeError, r"scale: expected dtype float32", f, q, v, k,
           scale=np.ones(() if kind == "dot" else (D,), np.float64))


def test_scale_errors(arrays, seed):
    q, k, v = arrays
    raises(ValueError, r"scale: expected a scalar \(shape \(\)\), got shape \(1,\)", ops.dot_attention_forward, q, v, k,
           scale=np.ones(1, np.float32))
    raises(TypeError, r"scale: expected a float or a 0-d array, got str", ops.dot_attention_forward, q, v, k, scale="2")
    raises(ValueError, r"scale: contains NaN or inf", ops.dot_attention_forward, q, v, k, scale=float("nan"))
    raises(ValueError, r"scale: expected shape \(5,\) \(dim,\)", ops.additive_attention_forward, q, v, k,
           scale=np.ones(D + 1, np.float32))
    raises(ValueError, r"scale: contains NaN or inf", ops.additive_attention_forward, q, v, k,
           scale=np.full(D, np.inf, np.float32))
    # plain Python and NumPy scalars are fine for the dot form
    for s in (2, 0.5, np.float32(1.5), np.array(1.5, np.float32)):
        ops.dot_attention_forward(q, v, k, scale=s)


@pytest.mark.parametrize("kind", list(FORWARDS))
@pytest.mark.parametrize("name", ["query", "key", "value"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(kind, name, bad, arrays, rng, seed):
    q, k, v = (a.copy() for a in arrays)
    target = {"query": q, "key": k, "value": v}[name]
    target.reshape(-1)[rng.integers(target.size)] = bad
    raises(ValueError, rf"{name}: contains NaN or inf", FORWARDS[kind], q, v, k)


@pytest.mark.parametrize("kind", list(FORWARDS))
def test_non_finite_found_everywhere(kind, rng, seed):
    """NaN/inf is reported even where it could not change the result (a masked key, a row the
    causal mask hides) and whatever the split of the work between threads."""
    saved = fusedrnn.get_num_threads()
    try:
        for threads, batch in ((1, 2), (4, 1)):
            fusedrnn.set_num_threads(threads)
            q = rng.standard_normal((batch, TQ, D)).astype(np.float32)
            k = rng.standard_normal((batch, TV, D)).astype(np.float32)
            v = rng.standard_normal((batch, TV, DV)).astype(np.float32)
            vm = np.ones((batch, TV), bool)
            vm[-1, -1] = False
            k[-1, -1, 0] = np.nan
            raises(ValueError, "key: contains NaN or inf", FORWARDS[kind], q, v, k, value_mask=vm, causal=True)
            k[-1, -1, 0] = 0.0
            q[-1, -1, -1] = -np.inf
            raises(ValueError, "query: contains NaN or inf", FORWARDS[kind], q, v, k)
            q[-1, -1, -1] = 0.0
            c, w, cache = FORWARDS[kind](q, v, k)
            dw = np.zeros_like(w)
            dw[-1, -1, -1] = np.nan
            raises(ValueError, "d_weights: contains NaN or inf", BACKWARDS[kind], cache, None, dw)
            dc = np.zeros_like(c)
            dc[-1, -1, -1] = np.inf
            raises(ValueError, "d_context: contains NaN or inf", BACKWARDS[kind], cache, dc, None)
    finally:
        fusedrnn.set_num_threads(saved)


def test_large_finite_inputs_are_accepted(seed):
    """Huge but finite inputs are not mistaken for inf (the check must not overflow)."""
    q = np.full((1, 2, 3), 3e38, np.float32)
    v = np.full((1, 2, 3), -3e38, np.float32)
    c, w, _ = ops.additive_attention_forward(q, v)
    assert np.isfinite(c).all() and np.isfinite(w).all()


@pytest.mark.parametrize("kind", list(FORWARDS))
def test_non_contiguous(kind, arrays, seed):
    f = FORWARDS[kind]
    q, k, v = arrays
    qt = np.asfortranarray(q)
    raises(ValueError, r"query: must be C-contiguous", f, qt, v, k)
    raises(ValueError, r"key: must be C-contiguous", f, q, v, np.zeros((B, TV, 2 * D), np.float32)[:, :, ::2])
    raises(ValueError, r"value: must be C-contiguous", f, q, np.zeros((B, 2 * TV, DV), np.float32)[:, ::2], k)


@pytest.mark.parametrize("kind", list(FORWARDS))
def test_backward_errors(kind, arrays, seed):
    q, k, v = arrays
    c, w, cache = FORWARDS[kind](q, v, k)
    bwd = BACKWARDS[kind]
    raises(ValueError, r"d_context: expected shape \(2, 3, 6\) \(batch, Tq, value_dim\), got \(2, 3, 5\)", bwd,
           cache, np.zeros((B, TQ, D), np.float32))
    raises(ValueError, r"d_weights: expected shape \(2, 3, 4\) \(batch, Tq, Tv\)", bwd, cache, c,
           np.zeros((B, TQ, TV + 1), np.float32))
    raises(TypeError, r"d_context: expected dtype float32", bwd, cache, c.astype(np.float64))
    bad = c.copy()
    bad[0, 0, 0] = np.nan
    raises(ValueError, r"d_context: contains NaN or inf", bwd, cache, bad)
    raises(ValueError, r"d_context: must be C-contiguous", bwd, cache, np.asfortranarray(c))
    raises(TypeError, r"cache: expected the cache returned by", bwd, (c, w), c)
    other = "additive" if kind == "dot" else "dot"
    raises(ValueError, rf"cache: comes from {kind}_attention_forward, not {other}_attention_forward",
           BACKWARDS[other], cache, c)


def test_binding_safety_net(arrays, seed):
    """The compiled module checks what reaches it even when the Python checks are bypassed."""
    q, k, v = arrays
    with pytest.raises(ValueError, match="key: wrong shape"):
        _C.attention_forward("dot", q, np.zeros((B, TV + 1, D), np.float32), v, None, None, None, False)
    with pytest.raises(TypeError, match="value: wrong dtype"):
        _C.attention_forward("dot", q, k, v.astype(np.float64), None, None, None, False)
    with pytest.raises(ValueError, match="kind: expected 'dot' or 'additive'"):
        _C.attention_forward("concat", q, k, v, None, None, None, False)
    with pytest.raises(ValueError, match="query: must be C-contiguous"):
        _C.attention_forward("dot", np.asfortranarray(q), k, v, None, None, None, False)


def test_layer_errors(arrays, rng, seed):
    q, k, v = arrays
    raises(ValueError, r"score_mode: only 'dot' is supported", fusedrnn.Attention, score_mode="concat")
    raises(ValueError, r"dropout: attention dropout is not supported", fusedrnn.Attention, dropout=0.1)
    raises(ValueError, r"dropout: attention dropout is not supported", fusedrnn.AdditiveAttention, dropout=0.5)
    raises(TypeError, r"dtype: expected float32 or float64", fusedrnn.Attention, dtype="int32")
    layer = fusedrnn.Attention(use_scale=True)
    raises(ValueError, r"inputs: expected a list \[query, value\]", layer, q)
    raises(ValueError, r"inputs: expected a list .* of length 1", layer, [q])
    raises(ValueError, r"mask: expected a list \[query_mask, value_mask\]", layer, [q, v, k], mask=np.ones((B, TV), bool))
    raises(TypeError, r"inputs\[0\] \(query\): expected dtype float32 \(the layer's dtype\)", layer,
           [q.astype(np.float64), v, k])
    raises(RuntimeError, r"backward\(\) called before the layer was called", layer.backward, np.zeros((B, TQ, DV)))
    raises(ValueError, r"weights: expected 1 array\(s\) \[scale\], got 2", layer.set_weights, [1.0, 2.0])
    raises(ValueError, r"weights\[0\] \(scale\): expected shape \(\), got \(3,\)", layer.set_weights, [np.ones(3)])
    add = fusedrnn.AdditiveAttention()
    raises(RuntimeError, r"no weights yet", add.get_weights)
    raises(ValueError, r"weights\[0\] \(scale\): expected shape \(dim,\)", add.set_weights, [np.ones((2, 2))])
    add.set_weights([np.ones(D + 1, np.float32)])
    raises(ValueError, r"scale: expected shape \(5,\)", add, [q, v, k])


def test_bahdanau_errors(rng, seed):
    layer = fusedrnn.BahdanauAttention(8)
    q = rng.standard_normal((B, D)).astype(np.float32)
    values = rng.standard_normal((B, TV, DV)).astype(np.float32)
    raises(ValueError, r"units: expected a positive integer", fusedrnn.BahdanauAttention, 0)
    raises(ValueError, r"query: expected \(batch, query_dim\) or \(batch, Tq, query_dim\)", layer, q[0], values)
    raises(ValueError, r"values: expected a 3-D array", layer, q, values[0])
    raises(ValueError, r"values: batch size 1 does not match the query's 2", layer, q, values[:1])
    raises(TypeError, r"query: expected dtype float32 \(the layer's dtype\)", layer, q.astype(np.float64), values)
    raises(RuntimeError, r"backward\(\) called before", layer.backward, np.zeros((B, DV), np.float32))
    layer(q, values)
    raises(ValueError, r"query: expected 5 features", layer, np.zeros((B, D + 1), np.float32), values)
    raises(ValueError, r"value_mask: expected shape \(2, 4\)", layer, q, values, np.ones((B, TV + 1), bool))
    raises(ValueError, r"query_mask: only for a 3-D query", layer, q, values, None, np.ones((B, 1), bool))
    raises(ValueError, r"d_context: expected shape \(2, 6\) \(batch, value_dim\)", layer.backward,
           np.zeros((B, TV), np.float32))
    raises(ValueError, r"weights: expected 3 arrays \[W1, W2, v\]", layer.set_weights, layer.get_weights()[:2])
    raises(ValueError, r"weights\[2\] \(v\): expected shape \(8,\)", layer.set_weights,
           layer.get_weights()[:2] + [np.ones(7)])
    keys = layer.project_keys(values)
    raises(ValueError, r"projected_keys: expected shape \(2, 4, 8\)", layer, q, values, projected_keys=keys[:, :2].copy())
    layer(q, values, projected_keys=keys)
    raises(RuntimeError, r"not available after a call with projected_keys", layer.backward,
           np.zeros((B, DV), np.float32))
