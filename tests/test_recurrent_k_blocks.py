"""The per-step product walks K = I + H in blocks; the input rows end (at K row I) before, at,
or after a block boundary.

Blocks are 32 KB of packed weights: 128 rows of K for four panels and 170 for three (the GRU)
with AVX-512, 256 and 341 with AVX2. The GRU with reset_after keeps its candidate's input and
recurrent sums apart, switching accumulators where K crosses from x to h; these sizes put that
switch inside a block, exactly on a boundary and just after one. Every op against the float64
reference, forward and backward, T=3 (the packed path).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import VARIANTS, check_against_reference, close_to_scale, make_problem

BOUNDARIES = (128, 170, 256, 341)
INPUT_SIZES = sorted({b + d for b in BOUNDARIES for d in (-1, 0, 1)} | {2 * 170, 2 * 170 + 1})
TOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("I", INPUT_SIZES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_input_rows_ending_around_a_block_boundary(variant, I, dtype, rng, seed):
    problem = make_problem(rng, variant, 3, 3, I, 5, dtype, mask="random" if rng.random() < 0.5 else None)
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, TOL[dtype]),
                            f"[seed={seed}] {problem.describe()}")
