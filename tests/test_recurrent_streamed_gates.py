"""Training forward passes whose saved gates exceed 2 MB store them with streaming (cache-
bypassing) stores (csrc/cpu/stream_store.h). The gates must still reach the backward pass
intact: gradients against the float64 reference with one and two threads, with the batch split
and the unit split between the threads, with H a multiple of the vector width (streamed) and not
(plain stores for the gates that are not aligned). float64 to 1e-11; float32 to 1e-4 of the
largest value (48 steps of float32 rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import check_against_reference, close_to_scale, make_problem

# (B, T, I, H): gates of 2.4-3.1 MB in float32 (twice that in float64).
SHAPES = [(32, 48, 8, 128), (32, 48, 8, 120), (4, 64, 8, 640)]
TOL = {np.float32: 1e-4, np.float64: 1e-11}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after"])
def test_streamed_gates_reach_the_backward_pass(variant, shape, dtype, one_or_two_threads, rng, seed):
    problem = make_problem(rng, variant, *shape, dtype, mask="random" if rng.random() < 0.5 else None)
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, TOL[dtype]),
                            f"[seed={seed}] {problem.describe()} threads={one_or_two_threads}")
