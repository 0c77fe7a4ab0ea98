"""Forward passes whose outputs (B, T, H) reach 2 MB write them with streaming (cache-bypassing)
stores (csrc/cpu/stream_store.h), whole vectors streamed and the rest of a row copied. The outputs
must still be exactly what the plain stores wrote: every cell, in training and in inference
(keep_cache=False), with one and two threads (batch and unit splits), H a multiple of the vector
width and not, with masks (rows whose first steps are masked output zeros there). Checked against
the float64 reference (float32 to 1e-4 of the largest value, float64 to 1e-11), and inference
against training outputs exactly (the same kernels).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import close_to_scale, make_problem
from fusedrnn import ops, reference

# (B, T, I, H): outputs of 2.0-2.1 MB in float32 (twice that in float64).
SHAPES = [(16, 64, 8, 512), (16, 67, 8, 500)]
TOL = {np.float32: 1e-4, np.float64: 1e-11}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_after", "gru_reset_before"])
def test_streamed_outputs_match_the_reference(variant, shape, dtype, one_or_two_threads, rng, seed):
    problem = make_problem(rng, variant, *shape, dtype, mask=[None, "random", "prepad"][rng.integers(3)])
    ctx = f"[seed={seed}] {problem.describe()} threads={one_or_two_threads}"
    wide = {k: None if v is None else v.astype(np.float64) for k, v in problem.arrays.items()}
    want, _ = problem.forward(reference, arrays=wide)
    trained, _ = problem.forward(ops)
    inferred, _ = problem.forward(ops, keep_cache=False)
    assert trained[0].nbytes >= 2 * 1024 * 1024, "the outputs are too small to be streamed"
    for name, ours, theirs in zip(["outputs", "h_last", "c_last"], trained, want):
        close_to_scale(ours, theirs, f"{name} {ctx}", TOL[dtype])
    for name, a, b in zip(["outputs", "h_last", "c_last"], inferred, trained):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} inference against training {ctx}")
