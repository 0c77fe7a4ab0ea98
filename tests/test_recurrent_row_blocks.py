"""Forward passes whose batch is split between the threads in claimed blocks of 16 sequences
(recurrent_driver.h: more blocks than threads). Each thread runs the whole time loop on a block
at a time, first the blocks of its own share of the batch, then those left in the other
threads' shares. Which thread runs a block depends on timing, so the test hook
``_C.set_claim_others_first(True)`` makes every thread start with the other threads' shares:
every block then goes down the path of a block taken from a slow thread, deterministically.

Outputs, final states and gradients are checked against the float64 reference (float64 to
1e-11; float32 to 1e-4 of the largest value), with the hook on and off, for every cell, with a
last block shorter than 16 rows (B=40), masks, go_backwards and dropout. The outputs must also
equal, bit for bit, those of one thread (which runs the batch in one share): a row's arithmetic
does not depend on the thread that computes it.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from _keras_oracle import DROPOUT_KINDS, MASK_KINDS, VARIANTS, check_against_reference, close_to_scale, make_problem
from fusedrnn import _C, ops

# (B, T, I, H): 3 blocks (16 + 16 + 8), 4 blocks.
SHAPES = [(40, 7, 5, 24), (64, 5, 9, 16)]
TOL = {np.float32: 1e-4, np.float64: 1e-11}


@pytest.fixture(params=[False, True], ids=["own_first", "others_first"])
def two_threads(request):
    before = fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(2)
    _C.set_claim_others_first(request.param)
    yield request.param
    _C.set_claim_others_first(False)
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
def test_claimed_blocks_match_the_reference(variant, shape, dtype, two_threads, rng, seed):
    problem = random_problem(rng, variant, shape, dtype)
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, TOL[dtype]),
                            f"[seed={seed}] {problem.describe()} others_first={two_threads}")


@pytest.mark.parametrize("keep_cache", [True, False])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_claimed_blocks_equal_one_thread_bit_for_bit(variant, keep_cache, two_threads, rng, seed):
    problem = random_problem(rng, variant, SHAPES[0], np.float32)
    split, _ = problem.forward(ops, keep_cache=keep_cache)
    fusedrnn.set_num_threads(1)
    whole, _ = problem.forward(ops, keep_cache=keep_cache)
    for name, a, b in zip(["outputs", "h_last", "c_last"], split, whole):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} [seed={seed}] {problem.describe()}")
