"""float64 checks of the attention ops: central finite differences of the loss against the
backward ops, the ops against the NumPy reference, thread-count independence and edge cases.

Finite differences: L = sum(context * Rc) + sum(weights * Rw) with random R's, so the analytic
gradient is ``*_attention_backward(cache, Rc, Rw)``. For each differentiable input (query, key,
value, scale) a random subset of coordinates is perturbed by +-eps. Central differences have
truncation error O(eps^2 |L'''|) ~ 1e-12 and rounding error ~ 1e-16 |L| / eps ~ 1e-10 for
eps = 1e-6, so we require |fd - analytic| <= 1e-6 * max|analytic| + 1e-8 (a wrong term is
typically off by > 1e-2 relative). Masks only select which terms exist, so L stays smooth.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _C
from fusedrnn import ops
from fusedrnn import reference_attention as ref

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8
N_COORDS = 6

IMPLS = {"ops": ops, "reference": ref}


def problem(rng, kind, B, Tq, Tv, D, Dv, *, separate_key, scale, query_mask, value_mask, dtype=np.float64):
    q = rng.standard_normal((B, Tq, D)).astype(dtype)
    v = rng.standard_normal((B, Tv, Dv if separate_key else D)).astype(dtype)
    k = rng.standard_normal((B, Tv, D)).astype(dtype) if separate_key else None
    if kind == "dot":
        s = dtype(rng.uniform(0.3, 1.2)) if scale else None
    else:
        s = rng.uniform(-1, 1, D).astype(dtype) if scale else None
    qm = rng.random((B, Tq)) < 0.7 if query_mask else None
    vm = None
    if value_mask:
        vm = rng.random((B, Tv)) < 0.6
        vm[0] = False
    return q, v, k, s, qm, vm


def run(impl, kind, q, v, k, s, qm, vm, causal):
    f = impl.dot_attention_forward if kind == "dot" else impl.additive_attention_forward
    return f(q, v, k, scale=s, query_mask=qm, value_mask=vm, causal=causal)


def grads(impl, kind, cache, rc, rw):
    b = impl.dot_attention_backward if kind == "dot" else impl.additive_attention_backward
    return b(cache, rc, rw)


# name -> (kind, B, Tq, Tv, D, Dv, separate_key, scale, query_mask, value_mask, causal)
CASES = {
    "dot": ("dot", 2, 3, 4, 5, None, False, True, False, False, False),
    "dot_key_masks": ("dot", 3, 4, 5, 3, 6, True, True, True, True, False),
    "dot_causal": ("dot", 2, 5, 4, 4, None, False, False, True, True, True),
    "dot_tq1": ("dot", 3, 1, 6, 7, 2, True, True, False, True, False),
    "additive": ("additive", 2, 3, 4, 5, None, False, True, False, False, False),
    "additive_key_masks": ("additive", 3, 4, 5, 3, 6, True, True, True, True, False),
    "additive_causal_noscale": ("additive", 2, 5, 4, 4, None, False, False, True, True, True),
    "additive_tq1": ("additive", 3, 1, 6, 7, 2, True, True, False, True, False),
}


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_finite_differences(case, impl_name, rng, seed):
    impl = IMPLS[impl_name]
    kind, B, Tq, Tv, D, Dv, sk, sc, qmk, vmk, causal = CASES[case]
    q, v, k, s, qm, vm = problem(rng, kind, B, Tq, Tv, D, Dv, separate_key=sk, scale=sc, query_mask=qmk,
                                 value_mask=vmk)
    context, weights, cache = run(impl, kind, q, v, k, s, qm, vm, causal)
    rc = rng.standard_normal(context.shape)
    rw = rng.standard_normal(weights.shape)
    d_query, d_key, d_value, d_scale = grads(impl, kind, cache, rc, rw)

    def loss(q_, v_, k_, s_):
        c_, w_, _ = run(impl, kind, q_, v_, k_, s_, qm, vm, causal)
        return float(np.sum(c_ * rc) + np.sum(w_ * rw))

    inputs = {"query": (q, d_query), "value": (v, d_value)}
    if k is not None:
        inputs["key"] = (k, d_key)
    if s is not None:
        inputs["scale"] = (np.array(s), d_scale)
    for name, (x, analytic) in inputs.items():
        assert analytic is not None and analytic.shape == np.shape(x), f"{name}. case={case} seed={seed}"
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, size=min(N_COORDS, flat.size), replace=False)
        for i in idx:
            fd = []
            for sign in (1, -1):
                xp = flat.copy()
                xp[i] += sign * EPS
                xp = xp.reshape(np.shape(x))
                args = {"query": q, "value": v, "key": k, "scale": s}
                args[name] = xp if name != "scale" or kind != "dot" else xp.reshape(())
                fd.append(loss(args["query"], args["value"], args["key"], args["scale"]))
            numeric = (fd[0] - fd[1]) / (2 * EPS)
            a = np.asarray(analytic).reshape(-1)[i]
            tol = RTOL * np.max(np.abs(analytic)) + ATOL
            assert abs(numeric - a) <= tol, (f"d_{name}[{np.unravel_index(i, np.shape(x))}]: finite difference "
                                             f"{numeric:.10g} vs backward {a:.10g}. case={case} impl={impl_name} "
                                             f"seed={seed}")


@pytest.mark.parametrize("case", list(CASES))
def test_ops_match_reference(case, rng, seed):
    """float64: same equations, only rounding differs."""
    kind, B, Tq, Tv, D, Dv, sk, sc, qmk, vmk, causal = CASES[case]
    q, v, k, s, qm, vm = problem(rng, kind, B, Tq + 3, Tv + 5, D + 17, (Dv or 0) + 9 if sk else None,
                                 separate_key=sk, scale=sc, query_mask=qmk, value_mask=vmk)
    snapshot = [a.copy() for a in (q, v, k, qm, vm) if a is not None]
    out = run(ops, kind, q, v, k, s, qm, vm, causal)
    expected = run(ref, kind, q, v, k, s, qm, vm, causal)
    rc = rng.standard_normal(out[0].shape)
    rw = rng.standard_normal(out[1].shape)
    got_g, exp_g = grads(ops, kind, out[2], rc, rw), grads(ref, kind, expected[2], rc, rw)
    for name, a, b in [("context", out[0], expected[0]), ("weights", out[1], expected[1]),
                       *zip(["d_query", "d_key", "d_value", "d_scale"], got_g, exp_g)]:
        if b is None:
            assert a is None, f"{name}. case={case} seed={seed}"
            continue
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{name}. case={case} seed={seed}")
    for before, after in zip(snapshot, [a for a in (q, v, k, qm, vm) if a is not None]):
        np.testing.assert_array_equal(before, after, err_msg=f"an input was modified. case={case} seed={seed}")


@pytest.mark.parametrize("kind", ["dot", "additive"])
@pytest.mark.parametrize("B", [1, 3])
def test_thread_counts_agree(kind, B, rng, seed):
    """Splits of a batch item between threads (B < threads) give the same numbers."""
    q, v, k, s, qm, vm = problem(rng, kind, B, 7, 9, 37, 45, separate_key=True, scale=True, query_mask=True,
                                 value_mask=True)
    saved = fusedrnn.get_num_threads()
    results = []
    try:
        for n in (1, 4):
            fusedrnn.set_num_threads(n)
            c, w, cache = run(ops, kind, q, v, k, s, qm, vm, True)
            rc = np.random.default_rng(seed).standard_normal(c.shape)
            results.append([c, w, *grads(ops, kind, cache, rc, None)])
    finally:
        fusedrnn.set_num_threads(saved)
    names = ["context", "weights", "d_query", "d_key", "d_value", "d_scale"]
    for name, a, b in zip(names, *results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=f"{name}. kind={kind} B={B} seed={seed}")


@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_fully_masked_rows_are_zero(kind, rng, seed):
    B, Tq, Tv, D = 3, 4, 5, 6
    q = rng.standard_normal((B, Tq, D)).astype(np.float32)
    v = rng.standard_normal((B, Tv, D)).astype(np.float32)
    vm = np.ones((B, Tv), bool)
    vm[1] = False
    f = ops.dot_attention_forward if kind == "dot" else ops.additive_attention_forward
    b = ops.dot_attention_backward if kind == "dot" else ops.additive_attention_backward
    c, w, cache = f(q, v, value_mask=vm)
    assert np.isfinite(c).all() and np.isfinite(w).all(), seed
    assert np.all(w[1] == 0) and np.all(c[1] == 0), seed
    np.testing.assert_allclose(w[[0, 2]].sum(-1), 1.0, rtol=1e-6, err_msg=f"seed={seed}")
    dq, _, dv, _ = b(cache, rng.standard_normal(c.shape).astype(np.float32),
                     rng.standard_normal(w.shape).astype(np.float32))
    assert np.all(dq[1] == 0) and np.isfinite(dq).all() and np.isfinite(dv).all(), seed
    # Causal with Tq > Tv: rows past the keys still see every key; a causal row never sees j > i.
    c, w, _ = f(q, np.ascontiguousarray(v[:, :3]), causal=True)
    assert np.all(np.triu(np.ones((Tq, 3), bool), 1)[None] <= (w == 0)), seed


def test_large_scores_are_safe(rng, seed):
    """Max-subtracted softmax: scores of +-1e4 give finite weights and one-hot rows."""
    B, Tq, Tv, D = 2, 3, 4, 8
    q = (rng.standard_normal((B, Tq, D)) * 100).astype(np.float32)
    v = (rng.standard_normal((B, Tv, D)) * 100).astype(np.float32)
    c, w, cache = ops.dot_attention_forward(q, v)
    assert np.isfinite(c).all() and np.isfinite(w).all(), seed
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6, err_msg=f"seed={seed}")
    raw = q.astype(np.float64) @ v.astype(np.float64).transpose(0, 2, 1)
    np.testing.assert_array_equal(w.argmax(-1), raw.argmax(-1), err_msg=f"seed={seed}")
    dq, _, dv, _ = ops.dot_attention_backward(cache, np.ones_like(c))
    assert np.isfinite(dq).all() and np.isfinite(dv).all(), seed


def test_outputs_fully_written(rng, seed):
    """With output poisoning on (conftest), no NaN may survive in any result."""
    assert _C.get_poison_outputs()
    for kind in ("dot", "additive"):
        q, v, k, s, qm, vm = problem(rng, kind, 2, 3, 4, 5, 6, separate_key=True, scale=True, query_mask=True,
                                     value_mask=True, dtype=np.float32)
        c, w, cache = run(ops, kind, q, v, k, s, qm, vm, False)
        for a in (c, w, *grads(ops, kind, cache, None, None), *grads(ops, kind, cache, np.ones_like(c), None)):
            assert a is None or np.isfinite(a).all(), f"kind={kind} seed={seed}"
        assert not np.any(grads(ops, kind, cache, None, None)[0]), f"no incoming gradient: zeros. seed={seed}"



@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_result_sizes_bound_the_results(kind, rng, seed):
    """tests/_attention_helpers.result_sizes (the parity tests' tolerance sizes): every result's
    size from absolute values is at least the result itself, and d_scale's is by hand for one
    query over two keys."""
    from _attention_helpers import result_sizes

    q, v, k, s, qm, vm = problem(rng, kind, 3, 4, 5, 6, 7, separate_key=True, scale=True, query_mask=True,
                                 value_mask=True)
    c, w, cache = run(ref, kind, q, v, k, s, qm, vm, True)
    rc, rw = rng.standard_normal(c.shape), rng.standard_normal(w.shape)
    sizes = result_sizes(kind, q, v, k, s, qm, vm, True, rc, rw)
    results = dict(zip(["d_query", "d_key", "d_value", "d_scale"], grads(ref, kind, cache, rc, rw)), output=c, scores=w)
    for name, a in results.items():
        assert np.max(np.abs(a)) <= sizes[name] * (1 + 1e-12), f"{name}. seed={seed}"
    if kind == "dot":
        # Two keys: the softmax's score gradients are +-g, g = w0 w1 (dw0 - dw1), so d_scale's
        # terms are g raw0 and -g raw1.
        q1, k1 = rng.standard_normal((1, 1, 3)), rng.standard_normal((1, 2, 3))
        _, w1, _ = ref.dot_attention_forward(q1, k1, scale=np.array(0.7))
        rw1 = rng.standard_normal((1, 1, 2))
        raw = (q1 @ k1.transpose(0, 2, 1))[0, 0]
        g = w1[0, 0, 0] * w1[0, 0, 1] * (rw1[0, 0, 0] - rw1[0, 0, 1])
        # |softmax backward| bounds each |g| by w (|dw| + sum w |dw|), not by |g| itself
        bound = sum(w1[0, 0, j] * (abs(rw1[0, 0, j]) + (w1[0, 0] * np.abs(rw1[0, 0])).sum()) * abs(raw[j])
                    for j in range(2))
        size = result_sizes("dot", q1, k1, None, np.array(0.7), None, None, False, None, rw1)["d_scale"]
        np.testing.assert_allclose(size, bound, rtol=1e-12, err_msg=f"seed={seed}")
        assert size >= abs(g) * (abs(raw[0]) + abs(raw[1])) - 1e-15, seed
