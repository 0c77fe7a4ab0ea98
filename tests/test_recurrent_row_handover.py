"""Forward passes under a split of the batch in which a thread that has run out of rows takes the
second half of another thread's rows mid-loop (csrc/cpu/row_handover.h). Whether and when that
happens depends on timing, so the test hook ``_C.set_hold_first_thread_us`` makes thread 0 wait at
the start of its time loop: the other thread runs out of rows first, asks it, and thread 0 hands
over half of its rows after its first step. ``_C.handovers_made()`` counts the handovers, so the
tests check that one took place.

Shapes: B=32 (two shares of 16 rows) and B=40 (blocks of 16 + 16 + 8 claimed one at a time, so the
handover splits a claimed block), T >= 6 (a handover needs 4 steps still to go and 8 rows on
each side). Outputs, final states and gradients are checked against the float64 reference
(float32 to 1e-4 of the largest value, float64 to 1e-11) with masks, go_backwards and dropout,
and the outputs must equal those of one thread bit for bit: a row's arithmetic does not depend
on the thread that computes it, nor on where its loop started.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from _keras_oracle import DROPOUT_KINDS, MASK_KINDS, VARIANTS, check_against_reference, close_to_scale, make_problem
from fusedrnn import _C, ops

SHAPES = [(32, 9, 5, 24), (40, 7, 6, 16)]
TOL = {np.float32: 1e-4, np.float64: 1e-11}
HOLD_US = 20_000  # far longer than the other thread's whole loop at these sizes


@pytest.fixture
def two_threads_thread0_late():
    before = fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(2)
    _C.set_hold_first_thread_us(HOLD_US)
    yield
    _C.set_hold_first_thread_us(0)
    fusedrnn.set_num_threads(before)


def random_problem(rng, variant, shape, dtype):
    mask = MASK_KINDS[int(rng.integers(len(MASK_KINDS)))]
    dropout = DROPOUT_KINDS[int(rng.integers(len(DROPOUT_KINDS)))]
    recurrent_dropout = DROPOUT_KINDS[int(rng.integers(len(DROPOUT_KINDS)))]
    return make_problem(rng, variant, *shape, dtype, mask=mask, go_backwards=bool(rng.random() < 0.5),
                        dropout=dropout, recurrent_dropout=recurrent_dropout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_handed_over_rows_match_the_reference(variant, shape, dtype, two_threads_thread0_late, rng, seed):
    problem = random_problem(rng, variant, shape, dtype)
    before = _C.handovers_made()
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, TOL[dtype]),
                            f"[seed={seed}] {problem.describe()}")
    assert _C.handovers_made() > before, "thread 0 handed over no rows: the test did not test the handover"


@pytest.mark.parametrize("keep_cache", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_handed_over_rows_equal_one_thread_bit_for_bit(variant, shape, keep_cache, two_threads_thread0_late,
                                                       rng, seed):
    problem = random_problem(rng, variant, shape, np.float32)
    before = _C.handovers_made()
    split, _ = problem.forward(ops, keep_cache=keep_cache)
    assert _C.handovers_made() > before, "thread 0 handed over no rows: the test did not test the handover"
    fusedrnn.set_num_threads(1)
    whole, _ = problem.forward(ops, keep_cache=keep_cache)
    for name, a, b in zip(["outputs", "h_last", "c_last"], split, whole):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} [seed={seed}] {problem.describe()}")


def test_no_handover_when_the_halves_would_be_too_small(rng):
    """B=24: shares of 12 rows, halves of 6 < 8: thread 0 declines and computes all its rows."""
    problem = make_problem(rng, "lstm", 24, 9, 5, 16, np.float32)
    before_threads = fusedrnn.get_num_threads()
    try:
        fusedrnn.set_num_threads(2)
        _C.set_hold_first_thread_us(HOLD_US)
        before = _C.handovers_made()
        split, _ = problem.forward(ops)
        assert _C.handovers_made() == before
    finally:
        _C.set_hold_first_thread_us(0)
        fusedrnn.set_num_threads(before_threads)
    whole, _ = problem.forward(ops)
    for a, b in zip(split, whole):
        np.testing.assert_array_equal(a, b)
