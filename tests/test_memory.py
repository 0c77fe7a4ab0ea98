"""Returned arrays come from a recycled pool: live results must never share memory."""

from __future__ import annotations

import gc

import numpy as np

import fusedrnn


def test_live_results_do_not_alias_and_stay_valid(rng, seed):
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 20)).astype(np.float32)
    r = rng.standard_normal((5, 20)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    first = fusedrnn.ops.lstm_forward(x, None, None, k, r, b)
    kept = [a.copy() for a in first[:3]]
    # Release some results so their memory returns to the pool, then allocate again.
    for _ in range(3):
        out = fusedrnn.ops.lstm_forward(x * 2, None, None, k, r, b)
        del out
        gc.collect()
    second = fusedrnn.ops.lstm_forward(-x, None, None, k, r, b)
    for a, a_copy in zip(first[:3], kept):
        np.testing.assert_array_equal(a, a_copy, err_msg=f"seed {seed}")  # not overwritten
    for a in first[:3]:
        for c in second[:3]:
            assert not np.shares_memory(a, c)
    assert first[0].flags.c_contiguous and first[0].flags.writeable
