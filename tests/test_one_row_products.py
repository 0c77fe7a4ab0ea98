"""Products of one row (M = 1), which the BLAS wrapper (csrc/cpu/blas.h) sends to GEMV instead of
GEMM, in every orientation the kernels use: the dense layer forward and backward on one row (x W,
dy W^T, x^T dy), the attention of one query, and recurrent forward + backward passes of batch 1
(single steps multiply unpacked weights, plain and transposed). Each is checked against float64
NumPy (the recurrent ops against fusedrnn.reference), in float32 and float64, including a
feature size of 1 (K = 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import VARIANTS, check_against_reference, close_to_scale, make_problem, product_scale
from fusedrnn import ops

TOL = {np.float32: 2e-6, np.float64: 1e-13}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("I,U", [(37, 53), (1, 40), (300, 1)])
def test_dense_on_one_row(I, U, dtype, rng):
    x = rng.standard_normal((1, I)).astype(dtype)
    kernel = rng.standard_normal((I, U)).astype(dtype)
    bias = rng.standard_normal(U).astype(dtype)
    dy = rng.standard_normal((1, U)).astype(dtype)
    wide = [a.astype(np.float64) for a in (x, kernel, bias, dy)]
    # Sums of up to 300 terms that may cancel: the tolerance scales with the terms (product_scale).
    close_to_scale(ops.dense_forward(x, kernel, bias), wide[0] @ wide[1] + wide[2], "y", TOL[dtype],
                   product_scale(x, kernel, bias))
    dx, dk, db = ops.dense_backward(x, kernel, dy, with_bias=True)
    close_to_scale(dx, wide[3] @ wide[1].T, "dx", TOL[dtype], product_scale(dy, kernel.T))
    close_to_scale(dk, wide[0].T @ wide[3], "d_kernel", TOL[dtype])
    close_to_scale(db, wide[3][0], "d_bias", TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_dot_attention_of_one_query(dtype, rng):
    q = rng.standard_normal((1, 1, 16)).astype(dtype)
    v = rng.standard_normal((1, 9, 16)).astype(dtype)
    out = ops.dot_attention_forward(q, v, v)
    out = out[0] if isinstance(out, tuple) else out
    s = q[0].astype(np.float64) @ v[0].astype(np.float64).T
    w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    close_to_scale(out[0], w @ v[0].astype(np.float64), "attention output", 10 * TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_recurrent_batch_of_one(variant, T, dtype, rng, seed):
    problem = make_problem(rng, variant, 1, T, 11, 24, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    check_against_reference(problem, rng, lambda a, b, what: close_to_scale(a, b, what, rtol),
                            f"[seed={seed}] {problem.describe()}")
