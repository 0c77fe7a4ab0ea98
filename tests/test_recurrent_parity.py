"""fusedrnn.ops against Keras 3 (float32) and against the NumPy reference
(float64), forward results and all gradients.

Tolerances
----------
float32 vs Keras: both sides round every operation to float32 (unit roundoff
u = 6e-8) but in different orders (blocked/FMA matmuls, different exp/tanh
implementations), and the differences propagate through the recurrence and
are summed over B*T terms in the weight gradients.  With the contractive
random weights of ``make_problem`` the errors behave like a random walk, so
they grow roughly like sqrt(T): measured max|a-b|/max|b| between Keras
float32 and an exact float64 computation is 1e-7..1e-6 for T up to 200 and
H up to 65, for every output and gradient.  We therefore assert, per array,

    max|a - b| <= rtol(T) * max|b| + atol,   rtol(T) = clip(5e-6 * sqrt(T), 1e-5, 1e-4)

(a margin of 30-100x over the observed error) and atol = 1e-6 for arrays whose
max-abs is tiny.  A wrong equation, mask rule or gate order produces errors of
order 1e-2..1, far above this.

float64 vs reference: same equations, only rounding differs (~1e-16 per op,
observed 1e-15 overall), so rtol = 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import (VARIANTS, assert_close, float32_rtol, forward_names, grad_names,
                           keras_run, make_problem)
from fusedrnn import reference

RTOL64 = 1e-10
ATOL64 = 1e-12
ATOL32 = 1e-6


@pytest.fixture(scope="module")
def ops():
    from fusedrnn import ops as fused_ops
    return fused_ops


def _snapshot(problem):
    """Copies of every input array (to check that the ops do not modify them)."""
    arrays = dict(problem.arrays, mask=problem.mask, dropout_mask=problem.dropout_mask,
                  recurrent_dropout_mask=problem.recurrent_dropout_mask)
    return {k: v.copy() for k, v in arrays.items() if v is not None}


def _check_unmodified(problem, snap, incoming, incoming_snap, ctx):
    arrays = dict(problem.arrays, mask=problem.mask, dropout_mask=problem.dropout_mask,
                  recurrent_dropout_mask=problem.recurrent_dropout_mask)
    for k, v in snap.items():
        np.testing.assert_array_equal(arrays[k], v, err_msg=f"ops modified input {k}. {ctx}")
    for a, b in zip(incoming, incoming_snap):
        np.testing.assert_array_equal(a, b, err_msg=f"ops modified an incoming gradient. {ctx}")


def _run_and_compare(ops, problem, expected_fwd, expected_grads, incoming, rtol, atol, ctx):
    snap = _snapshot(problem)
    incoming_snap = [g.copy() for g in incoming]
    fwd, cache = problem.forward(ops)
    grads = problem.backward(ops, cache, incoming)
    _check_unmodified(problem, snap, incoming, incoming_snap, ctx)
    assert len(fwd) == len(expected_fwd) and len(grads) == len(expected_grads), ctx
    for name, a, b in zip(forward_names(problem.cell), fwd, expected_fwd):
        assert isinstance(a, np.ndarray) and a.dtype == problem.dtype, f"{name}: {a!r}. {ctx}"
        assert_close(a, b, rtol=rtol, atol=atol, what=name, context=ctx)
    for name, a, b in zip(grad_names(problem.cell), grads, expected_grads):
        assert isinstance(a, np.ndarray) and a.dtype == problem.dtype, f"{name}: {a!r}. {ctx}"
        assert_close(a, b, rtol=rtol, atol=atol, what=name, context=ctx)


# --------------------------------------------------------------------------
# ops vs Keras, float32
# --------------------------------------------------------------------------
# name -> (B, T, I, H, mask kind, go_backwards, with initial states)
KERAS_CASES = {
    "basic": (3, 7, 5, 6, None, False, True),
    "b1_t1": (1, 1, 3, 4, None, False, True),
    "b1": (1, 9, 7, 5, None, True, False),
    "t1_mask": (4, 1, 6, 3, "random", False, True),
    "odd_sizes_no_state": (5, 6, 13, 11, None, False, False),
    "wide": (4, 5, 33, 65, "random", False, True),
    "long": (2, 200, 3, 5, None, False, True),
    "long_mask_backwards": (3, 200, 9, 7, "random", True, True),
    "random_mask": (6, 12, 5, 7, "random", False, True),
    "prepad_mask": (5, 10, 4, 9, "prepad", False, True),
    "postpad_backwards_no_state": (5, 10, 4, 9, "postpad", True, False),
    "backwards": (3, 8, 10, 17, None, True, True),
}


@pytest.mark.parametrize("case", list(KERAS_CASES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ops_matches_keras_float32(ops, variant, case, rng, seed):
    B, T, I, H, mask, go_backwards, initial_state = KERAS_CASES[case]
    problem = make_problem(rng, variant, B, T, I, H, np.float32, mask=mask,
                           go_backwards=go_backwards, initial_state=initial_state)
    incoming = problem.random_incoming(rng)
    kfwd, kgrads = keras_run(problem, incoming)
    ctx = f"[seed={seed}] {case}: {problem.describe()}"
    _run_and_compare(ops, problem, kfwd, kgrads, incoming, float32_rtol(T), ATOL32, ctx)


# --------------------------------------------------------------------------
# ops vs reference, float64 (including dropout masks)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dropout,recurrent_dropout", [
    (None, None), ("shared", None), ("per_gate", "shared"), (None, "per_gate"),
    ("shared", "shared"),
])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ops_matches_reference_float64(ops, variant, dropout, recurrent_dropout, rng, seed):
    B, T, I, H = (int(v) for v in rng.integers(1, [7, 25, 20, 40], endpoint=True))
    problem = make_problem(rng, variant, B, T, I, H, np.float64,
                           mask=[None, "random", "prepad", "postpad"][int(rng.integers(4))],
                           go_backwards=bool(rng.integers(2)),
                           initial_state=bool(rng.integers(2)),
                           dropout=dropout, recurrent_dropout=recurrent_dropout)
    incoming = problem.random_incoming(rng)
    rfwd, rcache = problem.forward(reference)
    rgrads = problem.backward(reference, rcache, incoming)
    ctx = f"[seed={seed}] {problem.describe()}"
    _run_and_compare(ops, problem, rfwd, rgrads, incoming, RTOL64, ATOL64, ctx)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ops_matches_reference_float32_dropout(ops, variant, rng, seed):
    T = 20
    problem = make_problem(rng, variant, 5, T, 12, 19, np.float32, mask="random",
                           dropout="per_gate", recurrent_dropout="per_gate")
    incoming = problem.random_incoming(rng)
    rfwd, rcache = problem.forward(reference)
    rgrads = problem.backward(reference, rcache, incoming)
    ctx = f"[seed={seed}] {problem.describe()}"
    _run_and_compare(ops, problem, rfwd, rgrads, incoming, float32_rtol(T), ATOL32, ctx)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_none_incoming_gradients_mean_zero(ops, variant, rng, seed):
    problem = make_problem(rng, variant, 3, 6, 4, 5, np.float64, mask="random")
    incoming = problem.random_incoming(rng)
    _, cache = problem.forward(ops)
    ctx = f"[seed={seed}] {problem.describe()}"
    for drop in range(len(incoming)):
        with_none = tuple(None if i == drop else g for i, g in enumerate(incoming))
        with_zero = tuple(np.zeros_like(g) if i == drop else g for i, g in enumerate(incoming))
        _, fcache = problem.forward(ops)
        got = problem.backward(ops, fcache, with_none)
        _, rcache = problem.forward(reference)
        want = problem.backward(reference, rcache, with_zero)
        for name, a, b in zip(grad_names(problem.cell), got, want):
            assert_close(a, b, rtol=RTOL64, atol=ATOL64, what=f"{name} (incoming {drop} None)",
                         context=ctx)
    # all incoming gradients None: every gradient is exactly zero
    got = problem.backward(ops, cache, (None,) * len(incoming))
    for name, a in zip(grad_names(problem.cell), got):
        np.testing.assert_array_equal(a, 0, err_msg=f"{name}. {ctx}")


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_and_two_threads_agree(ops, variant, dtype, rng, seed):
    import fusedrnn

    problem = make_problem(rng, variant, 16, 12, 24, 40, dtype, mask="random",
                           go_backwards=bool(rng.integers(2)), dropout="shared",
                           recurrent_dropout="per_gate")
    incoming = problem.random_incoming(rng)
    before = fusedrnn.get_num_threads()
    results = {}
    try:
        for n in (1, 2):
            fusedrnn.set_num_threads(n)
            assert fusedrnn.get_num_threads() == n
            fwd, cache = problem.forward(ops)
            results[n] = fwd + problem.backward(ops, cache, incoming)
    finally:
        fusedrnn.set_num_threads(before)
    # Different thread counts may only change the summation order.
    rtol, atol = (RTOL64, ATOL64) if dtype == np.float64 else (float32_rtol(12), ATOL32)
    names = forward_names(problem.cell) + grad_names(problem.cell)
    for name, a, b in zip(names, results[2], results[1]):
        assert_close(a, b, rtol=rtol, atol=atol, what=f"{name} (2 vs 1 threads)",
                     context=f"[seed={seed}] {problem.describe()}")
