"""The backward's weight gradients and dx run on fusedrnn's panel kernel, in blocks (the weight
gradients of 256 rows or more on BLAS instead where OpenBLAS's kernels are as wide: every case
runs both ways, through the test hook).

A weight gradient (x * dropout)^T dG over the B*T rows packs the left operand in groups of
kPanels * lanes columns (64 floats, 32 doubles with AVX-512), walks the rows in K blocks (128
rows for float), and takes the gate-gradient columns in blocks of 48 to 240 (about 512 KiB of
rows, copied contiguous), whose products come back transposed and are written out in 16 x 16
tiles. dx multiplies dG by the packed transposed kernel, one product per run of gates that share
a dropout mask.

These shapes make every one of those boundaries fall inside the problem: G*H over 240 (several
column blocks, the last one partial), I and H not multiples of 16 and over 64 (a partial last
group), B*T rows over one K block, a long sequence whose rows make the column blocks their
narrowest (48), and a batch split whose threads' shares of the rows take wider blocks than all
the rows would (the work memory must hold either). Each against the float64 reference, forward
and backward, with and without dropout (shared and per-gate masks), float32 and float64, on one
and two threads (a split of the units: the columns of each thread; a split of the batch: the
rows of each thread, summed).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import VARIANTS, check_against_reference, close_to_scale, make_problem, relu_pattern_agrees

# (B, T, I, H): few rows, wide gates (units split on two threads); a batch split with rows over
# a K block per thread; a long sequence (B*T = 2800 rows: 48-column blocks); a batch split whose
# 2240 rows would take blocks of 48 columns and each thread's 1120 rows take blocks of 112.
SHAPES = [(3, 100, 67, 90), (8, 40, 130, 70), (4, 700, 20, 17), (16, 140, 20, 100)]
TOL = {np.float32: 1e-4, np.float64: 1e-11}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout", [None, "shared", "per_gate"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_across_blocks(variant, shape, dropout, dtype, one_or_two_threads, weight_grad_kernel, rng, seed):
    B, T, I, H = shape
    for _ in range(10):
        problem = make_problem(rng, variant, B, T, I, H, dtype, mask="random" if rng.random() < 0.5 else None,
                               dropout=dropout, recurrent_dropout=dropout)
        # ReLU in float32: a problem whose units switch as in float64 (see relu_pattern_agrees);
        # rare (one of 82 seeds tried), but a failure then says nothing about the kernels.
        if variant != "rnn_relu" or dtype == np.float64 or relu_pattern_agrees(problem):
            break
    else:
        pytest.fail(f"[seed={seed}] ten float32 ReLU problems in a row switched units unlike float64")
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, TOL[dtype]),
                            f"[seed={seed}, threads={one_or_two_threads}, weight_grad_kernel={weight_grad_kernel}] "
                            f"{problem.describe()}")
