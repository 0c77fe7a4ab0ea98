"""Forward passes whose batch is split between the threads, under the three ways rows move
between threads (recurrent_driver.h, row_handover.h), each forced by a test hook because which
thread runs a row otherwise depends on timing:

* claimed blocks of 16 sequences (more blocks than threads): each thread runs the whole time
  loop on a block at a time, first the blocks of its own share, then those left in the other
  threads' shares. ``_C.set_claim_others_first(True)`` makes every thread start with the other
  threads' shares, so every block goes down the path of a block taken from a slow thread.
* handover: a thread that has run out of rows asks one still in its loop for the second half
  of its rows, handed over at a step boundary. ``_C.set_hold_first_thread_us`` makes thread 0
  wait at the start of its time loop until the other thread has run out and asked it, and the
  other thread wait for thread 0 to start before it takes rows (each for at most that time);
  ``_C.handovers_made()`` confirms that a handover took place.

Shapes: B=32 (two shares of 16, no claims), B=40 (3 blocks: 16 + 16 + 8) and B=64 (4 blocks).
Outputs, final states and gradients are checked against the float64 reference (float64 to
1e-11; float32 to 1e-4 of the largest value) for every cell, with masks, go_backwards and
dropout. The outputs must also equal, bit for bit, those of one thread (which runs the batch in
one share): a row's arithmetic does not depend on the thread that computes it, nor on the step
at which it changed hands.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from _keras_oracle import VARIANTS, check_against_reference, close_to_scale, make_problem, random_variation
from fusedrnn import _C, ops

# (B, T, I, H): two shares of 16 rows; 3 blocks (16 + 16 + 8); 4 blocks. T >= 5: a handover
# needs 4 steps still to go.
SHAPES = [(32, 9, 5, 24), (40, 7, 5, 24), (64, 5, 9, 16)]
TOL = {np.float32: 1e-4, np.float64: 1e-11}
# At most; the wait ends when the other thread asks. Far longer than the other thread's whole
# loop at these sizes, and than a VM's pause of one virtual CPU (20 ms failed about 1 run in 12).
HOLD_US = 500_000


@pytest.fixture(params=["own_first", "others_first", "handover"])
def two_threads(request):
    before = fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(2)
    _C.set_claim_others_first(request.param == "others_first")
    _C.set_hold_first_thread_us(HOLD_US if request.param == "handover" else 0)
    yield request.param
    _C.set_claim_others_first(False)
    _C.set_hold_first_thread_us(0)
    fusedrnn.set_num_threads(before)


def assert_handed_over(mode, before):
    if mode == "handover":
        assert _C.handovers_made() > before, "thread 0 handed over no rows: the test did not test the handover"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_moved_rows_match_the_reference(variant, shape, dtype, two_threads, rng, seed):
    problem = random_variation(rng, variant, shape, dtype)
    before = _C.handovers_made()
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, TOL[dtype]),
                            f"[seed={seed}] {problem.describe()} {two_threads}")
    assert_handed_over(two_threads, before)


@pytest.mark.parametrize("keep_cache", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_moved_rows_equal_one_thread_bit_for_bit(variant, shape, keep_cache, two_threads, rng, seed):
    problem = random_variation(rng, variant, shape, np.float32)
    before = _C.handovers_made()
    split, _ = problem.forward(ops, keep_cache=keep_cache)
    assert_handed_over(two_threads, before)
    fusedrnn.set_num_threads(1)
    whole, _ = problem.forward(ops, keep_cache=keep_cache)
    for name, a, b in zip(["outputs", "h_last", "c_last"], split, whole):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} [seed={seed}] {problem.describe()} {two_threads}")


def test_no_handover_when_the_halves_would_be_too_small(rng):
    """B=24: shares of 12 rows, halves of 6 < 8: thread 0 declines and computes all its rows."""
    problem = make_problem(rng, "lstm", 24, 9, 5, 16, np.float32)
    threads_before = fusedrnn.get_num_threads()
    try:
        fusedrnn.set_num_threads(2)
        _C.set_hold_first_thread_us(HOLD_US)
        before = _C.handovers_made()
        split, _ = problem.forward(ops)
        assert _C.handovers_made() == before
    finally:
        _C.set_hold_first_thread_us(0)
        fusedrnn.set_num_threads(threads_before)
    whole, _ = problem.forward(ops)
    for a, b in zip(split, whole):
        np.testing.assert_array_equal(a, b)
