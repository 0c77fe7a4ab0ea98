"""The compiled NaN/inf check every op runs on its inputs (fusedrnn._C.all_finite)."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _C
from fusedrnn.ops import _checks as chk

# Sizes around the check's block (16384 values) and its threshold for sharing the pass between
# threads (262144 values), plus tiny ones.
SIZES = [1, 7, 16383, 16384, 16385, 262143, 262144, 300001]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("threads", [1, 2])
def test_finds_one_non_finite_value_anywhere(rng, dtype, n, threads):
    a = (rng.standard_normal(n) * 1e3).astype(dtype)
    old = fusedrnn.get_num_threads()
    try:
        fusedrnn.set_num_threads(threads)
        assert _C.all_finite(a) is True
        for bad in (np.nan, np.inf, -np.inf):
            for pos in {0, int(rng.integers(n)), n - 1}:
                b = a.copy()
                b[pos] = bad
                assert _C.all_finite(b) is False, (bad, pos)
    finally:
        fusedrnn.set_num_threads(old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_finite_values_pass(rng, dtype):
    info = np.finfo(dtype)
    a = rng.standard_normal(1000).astype(dtype)
    a[:6] = [info.max, -info.max, info.tiny / 8, -info.tiny / 8, 0.0, -0.0]  # largest, subnormal, zeros
    rng.shuffle(a)
    assert _C.all_finite(a) is True
    assert _C.all_finite(a.reshape(10, 10, 10)) is True  # any rank: the values in memory order


def test_empty_array_is_finite():
    assert _C.all_finite(np.empty((0, 3), np.float32)) is True


def test_rejects_what_it_cannot_read(rng):
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.all_finite(np.arange(5))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.all_finite(rng.standard_normal((4, 6))[:, ::2])


def test_op_check_takes_numpy_scalars_and_other_dtypes():
    for finite in (np.float32(2.5), np.float64(-1e300), np.arange(4), np.array([True, False]), np.ones(3, np.float16)):
        chk.check_finite("w", finite)
    for bad in (np.float32(np.inf), np.float64(np.nan), np.array([1, np.nan], np.float16)):
        with pytest.raises(ValueError, match="w: contains NaN or inf"):
            chk.check_finite("w", bad)


@pytest.mark.parametrize("make", [
    lambda a: a[:, ::2],             # not contiguous: NumPy's check
    lambda a: a.astype(np.float16),  # another dtype: NumPy's check
    lambda a: np.ascontiguousarray(a, dtype=np.float32),
])
def test_op_check_names_the_argument_on_every_path(rng, make):
    a = make(rng.standard_normal((8, 12)))
    chk.check_finite("weights", a)  # finite: no error
    a = a.copy() if a.flags.c_contiguous else a
    a[int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))] = np.inf
    with pytest.raises(ValueError, match="weights: contains NaN or inf"):
        chk.check_finite("weights", a)
