"""``ops.PackedDense``: a dense kernel packed once for products of few rows (dense_forward(packed=)).

Up to 16 rows the product runs on the packed kernel, beyond on BLAS; both are checked against
float64 NumPy, in float32 and float64, at unit counts that leave the last group of units partial.
bfloat16 kernels must equal, bit for bit, the float32 packed product on a kernel rounded to
bfloat16 beforehand (an independent NumPy rounding). The packed copy follows the kernel's version
(optimizer steps, set_weights, weights_changed) and is refused for bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import close_to_scale, product_scale
from fusedrnn import ops
from fusedrnn.optimizers import SGD
from fusedrnn.weight_versions import weights_changed

TOL = {np.float32: 2e-6, np.float64: 1e-13}


def round_to_bfloat16(a):
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rows", [1, 2, 5, 16, 17, 40])
@pytest.mark.parametrize("I,U", [(70, 37), (1, 129), (300, 8)])
def test_matches_float64(rows, I, U, dtype, rng, one_or_two_threads):
    x = rng.standard_normal((rows, I)).astype(dtype)
    kernel = rng.standard_normal((I, U)).astype(dtype)
    bias = rng.standard_normal(U).astype(dtype)
    packed = ops.PackedDense()
    expected = x.astype(np.float64) @ kernel.astype(np.float64)
    close_to_scale(ops.dense_forward(x, kernel, bias, packed=packed), expected + bias, "with bias", TOL[dtype],
                   product_scale(x, kernel, bias))
    close_to_scale(ops.dense_forward(x, kernel, None, packed=packed), expected, "without bias", TOL[dtype],
                   product_scale(x, kernel))
    assert packed.packs == 1
    # Leading axes as dense_forward takes them: (..., I).
    y = ops.dense_forward(x.reshape(rows, 1, I), kernel, bias, packed=packed)
    assert y.shape == (rows, 1, U)


@pytest.mark.parametrize("rows", [1, 3, 16, 33])  # bfloat16 kernels serve any number of rows
def test_bfloat16_equals_float32_on_the_rounded_kernel(rows, rng, one_or_two_threads):
    x = rng.standard_normal((rows, 90)).astype(np.float32)
    kernel = rng.standard_normal((90, 75)).astype(np.float32)
    bias = rng.standard_normal(75).astype(np.float32)
    low = ops.dense_forward(x, kernel, bias, packed=ops.PackedDense("bfloat16"))
    exact = ops.dense_forward(x, round_to_bfloat16(kernel), bias, packed=ops.PackedDense())
    if rows <= 16:  # the float32 packed product: the same sums in the same order
        np.testing.assert_array_equal(low, exact)
    else:  # float32 beyond 16 rows runs on BLAS
        close_to_scale(low, exact, "bfloat16 rows", 2e-6)
    close_to_scale(low, x.astype(np.float64) @ kernel + bias, "against float32's kernel", 2e-2)
    assert not np.array_equal(low, ops.dense_forward(x, kernel, bias))


def test_packed_again_when_the_kernel_changes(rng):
    x = rng.standard_normal((2, 10)).astype(np.float32)
    kernel = rng.standard_normal((10, 20)).astype(np.float32)
    packed = ops.PackedDense()
    ops.dense_forward(x, kernel, None, packed=packed)
    ops.dense_forward(x, kernel, None, packed=packed)
    assert packed.packs == 1
    SGD(learning_rate=0.1).apply([kernel], [rng.standard_normal(kernel.shape).astype(np.float32)])
    close_to_scale(ops.dense_forward(x, kernel, None, packed=packed), x @ kernel.astype(np.float64), "after SGD", 2e-6)
    kernel[0, 0] += 1.0
    weights_changed(kernel)
    close_to_scale(ops.dense_forward(x, kernel, None, packed=packed), x @ kernel.astype(np.float64), "after an edit", 2e-6)
    other = rng.standard_normal((10, 20)).astype(np.float32)
    close_to_scale(ops.dense_forward(x, other, None, packed=packed), x @ other.astype(np.float64), "another array", 2e-6)
    assert packed.packs == 4


def test_bad_input_is_refused(rng):
    x = rng.standard_normal((2, 6)).astype(np.float32)
    kernel = rng.standard_normal((6, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16'"):
        ops.PackedDense("float16")
    with pytest.raises(TypeError, match="packed: expected a fusedrnn.ops.PackedDense"):
        ops.dense_forward(x, kernel, None, packed=ops.PackedWeights("lstm"))
    with pytest.raises(TypeError, match="kernel: bfloat16 weights are packed from float32"):
        ops.dense_forward(x.astype(np.float64), kernel.astype(np.float64), None, packed=ops.PackedDense("bfloat16"))
    bad = kernel.copy()
    bad[2, 1] = np.nan
    packed = ops.PackedDense()
    with pytest.raises(ValueError, match="kernel: contains NaN"):
        ops.dense_forward(x, bad, None, packed=packed)
    huge = kernel.copy()
    huge[0, 0] = np.float32(3.4e38)
    with pytest.raises(ValueError, match="beyond bfloat16's range"):
        ops.dense_forward(x, huge, None, packed=ops.PackedDense("bfloat16"))
    # The data is still checked on every call.
    with pytest.raises(ValueError, match="x: contains NaN"):
        ops.dense_forward(np.full((1, 6), np.nan, np.float32), kernel, None, packed=packed)
