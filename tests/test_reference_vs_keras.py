"""The pure-NumPy reference (fusedrnn.reference) against Keras 3.

These tests pin down the semantics the fused kernels must reproduce (mask,
go_backwards, initial states, dropout masks, GRU reset_after modes, SimpleRNN
activations): forward results and all gradients of a random scalar loss.

Tolerances.  In float64 both sides are exact up to rounding (~1e-16 per
operation); over the short sequences used here the observed max relative
difference is ~1e-15, so 1e-11 relative to max-abs is a very safe bound
that still catches any semantic difference.  The float32 tolerance follows
test_recurrent_parity.py (see there).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import (VARIANTS, assert_close, float32_rtol, forward_names, grad_names,
                           keras_run, make_problem)
from fusedrnn import reference

RTOL64 = 1e-11
ATOL64 = 1e-13


def _compare(problem, rng, seed, rtol, atol, impl=reference):
    incoming = problem.random_incoming(rng)
    fwd, cache = problem.forward(impl)
    grads = problem.backward(impl, cache, incoming)
    kfwd, kgrads = keras_run(problem, incoming)
    ctx = f"[seed={seed}] {problem.describe()}"
    for name, a, b in zip(forward_names(problem.cell), fwd, kfwd):
        assert a.dtype == problem.dtype, f"{name} dtype {a.dtype}. {ctx}"
        assert_close(a, b, rtol=rtol, atol=atol, what=name, context=ctx)
    for name, a, b in zip(grad_names(problem.cell), grads, kgrads):
        assert a.dtype == problem.dtype, f"{name} dtype {a.dtype}. {ctx}"
        assert_close(a, b, rtol=rtol, atol=atol, what=name, context=ctx)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("trial", range(6))
def test_reference_matches_keras_float64_random_configs(variant, trial, rng, seed):
    B, T, I, H = (int(v) for v in rng.integers(1, [6, 16, 10, 12], endpoint=True))
    problem = make_problem(rng, variant, B, T, I, H, np.float64,
                           mask=[None, "random", "prepad", "postpad"][trial % 4],
                           go_backwards=bool(rng.integers(2)),
                           initial_state=bool(rng.integers(2)))
    _compare(problem, rng, seed, RTOL64, ATOL64)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dropout,recurrent_dropout", [
    ("shared", None),            # Keras implementation=2 (one input mask)
    ("per_gate", None),          # implementation=1, one input mask per gate
    (None, "shared"),
    ("shared", "per_gate"),
    ("per_gate", "per_gate"),
])
def test_reference_matches_keras_dropout(variant, dropout, recurrent_dropout, rng, seed):
    B, T, I, H = (int(v) for v in rng.integers(1, [5, 10, 8, 9], endpoint=True))
    problem = make_problem(rng, variant, B, T, I, H, np.float64,
                           mask=["random", "prepad", None][int(rng.integers(3))],
                           go_backwards=bool(rng.integers(2)),
                           initial_state=bool(rng.integers(2)),
                           dropout=dropout, recurrent_dropout=recurrent_dropout)
    _compare(problem, rng, seed, RTOL64, ATOL64)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reference_matches_keras_long_sequence(variant, rng, seed):
    problem = make_problem(rng, variant, 2, 150, 3, 5, np.float64, mask="random",
                           go_backwards=True)
    _compare(problem, rng, seed, 1e-10, ATOL64)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reference_matches_keras_float32(variant, rng, seed):
    T = 30
    problem = make_problem(rng, variant, 4, T, 13, 11, np.float32, mask="random",
                           go_backwards=bool(rng.integers(2)))
    _compare(problem, rng, seed, float32_rtol(T), 1e-6)


# --------------------------------------------------------------------------
# Keras behaviour the contract relies on, checked on Keras directly.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_after"])
def test_keras_mask_semantics(variant, rng, seed):
    """Masked steps carry the states; the output repeats the previous output,
    zeros before the first unmasked step (zero_output_for_mask=False)."""
    B, T, H = 3, 6, 4
    problem = make_problem(rng, variant, B, T, 3, H, np.float64)
    mask = np.ones((B, T), bool)
    mask[0] = False                 # fully masked row
    mask[1, :3] = False             # pre-padding
    mask[2, 2:4] = False            # hole in the middle
    problem.mask = mask
    incoming = problem.random_incoming(rng)
    fwd, _ = keras_run(problem, incoming)
    outputs, h_last = fwd[0], fwd[1]
    ctx = f"[seed={seed}]"
    h0 = problem.arrays["h0"]
    np.testing.assert_array_equal(outputs[0], 0, err_msg=ctx)
    np.testing.assert_array_equal(h_last[0], h0[0], err_msg=ctx)
    if problem.cell == "lstm":
        np.testing.assert_array_equal(fwd[2][0], problem.arrays["c0"][0], err_msg=ctx)
    np.testing.assert_array_equal(outputs[1, :3], 0, err_msg=ctx)
    assert np.all(outputs[1, 3] != 0), ctx
    np.testing.assert_array_equal(outputs[2, 2], outputs[2, 1], err_msg=ctx)
    np.testing.assert_array_equal(outputs[2, 3], outputs[2, 1], err_msg=ctx)
    # the state is carried through the hole: running row 2 without steps 2, 3
    # gives the same final state.
    sub = make_problem(rng, variant, 1, T - 2, 3, H, np.float64)
    sub.arrays = {k: (None if v is None else v.copy()) for k, v in problem.arrays.items()}
    for k in ("h0", "c0"):
        if sub.arrays.get(k) is not None:
            sub.arrays[k] = sub.arrays[k][2:3]
    sub.arrays["x"] = np.delete(problem.arrays["x"][2:3], [2, 3], axis=1)
    sub_fwd, _ = keras_run(sub, sub.random_incoming(rng))
    np.testing.assert_allclose(sub_fwd[1][0], h_last[2], rtol=1e-12, atol=1e-14, err_msg=ctx)


@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_before"])
def test_keras_go_backwards_outputs_not_reversed(variant, rng, seed):
    """go_backwards=True equals a forward run on x[:, ::-1] (outputs in
    processing order, i.e. outputs[:, s] belongs to time T-1-s)."""
    problem = make_problem(rng, variant, 2, 5, 3, 4, np.float64, mask="random",
                           go_backwards=True)
    incoming = problem.random_incoming(rng)
    fwd_b, _ = keras_run(problem, incoming)
    problem.go_backwards = False
    problem.arrays["x"] = np.ascontiguousarray(problem.arrays["x"][:, ::-1])
    problem.mask = np.ascontiguousarray(problem.mask[:, ::-1])
    fwd_f, _ = keras_run(problem, incoming)
    for name, a, b in zip(forward_names(problem.cell), fwd_b, fwd_f):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"{name} [seed={seed}]")


@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_after"])
def test_keras_dropout_masks_take_effect(variant, rng, seed):
    """Sanity check of the oracle's monkeypatching: Keras does use our masks."""
    problem = make_problem(rng, variant, 3, 4, 5, 6, np.float64, dropout="per_gate",
                           recurrent_dropout="per_gate")
    incoming = problem.random_incoming(rng)
    with_masks, _ = keras_run(problem, incoming)
    problem.dropout_mask = problem.recurrent_dropout_mask = None
    without, _ = keras_run(problem, incoming)
    assert np.max(np.abs(with_masks[0] - without[0])) > 1e-3, f"[seed={seed}]"
