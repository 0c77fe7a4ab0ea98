"""ops.dense_backward's parts: input_grad=False / weight_grad=False skip dx / d_kernel and leave
the rest as the full call computes it; the weight gradient of rows stacked from several calls
(a per-step projection, taken once after the loop) is the sum of theirs; float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn import ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parts_equal_the_full_call_and_the_float64_reference(dtype, rng, seed):
    N, I, U = (int(v) for v in rng.integers(1, 40, 3))
    x = rng.standard_normal((N, I)).astype(dtype)
    kernel = rng.standard_normal((I, U)).astype(dtype)
    dy = rng.standard_normal((N, U)).astype(dtype)
    dx, dk, db = ops.dense_backward(x, kernel, dy, with_bias=True)
    only_dx = ops.dense_backward(x, kernel, dy, weight_grad=False)
    only_dk = ops.dense_backward(x, kernel, dy, with_bias=True, input_grad=False)
    np.testing.assert_array_equal(only_dx[0], dx, err_msg=f"seed {seed}")
    assert only_dx[1] is None and only_dx[2] is None
    assert only_dk[0] is None
    np.testing.assert_array_equal(only_dk[1], dk, err_msg=f"seed {seed}")
    np.testing.assert_array_equal(only_dk[2], db, err_msg=f"seed {seed}")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    x64, k64, dy64 = (a.astype(np.float64) for a in (x, kernel, dy))
    for got, want, what in ((dx, dy64 @ k64.T, "dx"), (dk, x64.T @ dy64, "d_kernel"), (db, dy64.sum(0), "d_bias")):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=f"seed {seed}: {what}")
    with pytest.raises(TypeError, match="weight_grad: expected True or False"):
        ops.dense_backward(x, kernel, dy, weight_grad=1)


def test_stacked_steps_give_the_sum_of_their_weight_gradients(rng, seed):
    T, B, I, U = 4, 3, 5, 6
    kernel = rng.standard_normal((I, U))
    xs = rng.standard_normal((T, B, I))
    dys = rng.standard_normal((T, B, U))
    total = sum(ops.dense_backward(xs[t], kernel, dys[t])[1] for t in range(T))
    _, stacked, _ = ops.dense_backward(xs, kernel, dys, input_grad=False)
    np.testing.assert_allclose(stacked, total, rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}")
