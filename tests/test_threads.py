"""Thread-count controls: OMP_NUM_THREADS at start-up and fusedrnn.set_num_threads."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fusedrnn


@pytest.mark.parametrize("n", [1, 3])
def test_omp_num_threads_is_honoured(n):
    env = dict(os.environ, OMP_NUM_THREADS=str(n))
    out = subprocess.run([sys.executable, "-c", "import fusedrnn; print(fusedrnn.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) == n


def test_more_threads_than_units_gives_the_same_result(rng, seed):
    """Threads beyond the number of 16-unit slices get no units; results must not change."""
    x = rng.standard_normal((3, 9, 4))
    h0 = rng.standard_normal((3, 5))
    k = rng.standard_normal((4, 20))
    r = rng.standard_normal((5, 20))
    b = rng.standard_normal(20)
    old = fusedrnn.get_num_threads()
    try:
        results = []
        for n in (1, 2, 5):
            fusedrnn.set_num_threads(n)
            y, h, c, cache = fusedrnn.ops.lstm_forward(x, h0, None, k, r, b)
            results.append([y, h, c, *fusedrnn.ops.lstm_backward(cache, np.ones_like(y), None, None)])
    finally:
        fusedrnn.set_num_threads(old)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}")


def test_kernels_keep_their_blas_single_threaded(rng):
    """threadpoolctl raises every BLAS it finds; the kernels call BLAS from their own threads
    and must put theirs back on one thread, or each GEMM would start more threads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def ours():
        return [i for i in threadpoolctl.threadpool_info() if i["filepath"].endswith("libscipy_openblas.so")]

    with threadpoolctl.threadpool_limits(2):
        x = rng.standard_normal((2, 3, 4)).astype(np.float32)
        fusedrnn.ops.gru_forward(x, None, rng.standard_normal((4, 9)).astype(np.float32),
                                 rng.standard_normal((3, 9)).astype(np.float32), np.zeros((2, 9), np.float32))
        libs = ours()
        assert libs, "fusedrnn's OpenBLAS is not loaded"
        assert all(lib["num_threads"] == 1 for lib in libs)
