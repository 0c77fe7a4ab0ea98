"""Thread-count controls (OMP_NUM_THREADS at start-up, fusedrnn.set_num_threads) and the BLAS
the kernels call."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import fusedrnn


def fresh_process_prints(expression: str, env: dict) -> str:
    """What `expression` (on fusedrnn, imported anew) prints in a new interpreter with `env`."""
    out = subprocess.run([sys.executable, "-c", f"import fusedrnn; print({expression})"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("n", [1, 3])
def test_omp_num_threads_is_honoured(n):
    env = dict(os.environ, OMP_NUM_THREADS=str(n))
    assert int(fresh_process_prints("fusedrnn.get_num_threads()", env)) == n


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


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="OpenBLAS core names are x86-64's")
def test_blas_core_reports_the_kernels_openblas_loaded():
    """fusedrnn.blas_core() reads back the core OpenBLAS loaded: a core's name, and where the
    environment sets OPENBLAS_CORETYPE, that core. The test leaves the variable as it finds it
    (some machines set it because older OpenBLAS builds fail on their CPU without it)."""
    core = fusedrnn.blas_core()
    assert core and core.isidentifier(), repr(core)
    wanted = os.environ.get("OPENBLAS_CORETYPE")
    if wanted:
        assert core.lower() == wanted.lower()


def test_a_region_given_fewer_threads_than_asked_still_covers_every_row():
    """OMP_THREAD_LIMIT=1 gives every parallel region one thread although two are asked for:
    the claimed blocks of the batch (forward) and of dx (backward) must all still be done by
    the one thread, with the same results as one thread asked for, and nothing may wait for a
    thread that never came (the subprocess has a timeout)."""
    script = """
import numpy as np, fusedrnn
from fusedrnn import ops
rng = np.random.default_rng(7)
B, T, I, H = 40, 6, 5, 24
x = rng.standard_normal((B, T, I)).astype(np.float32)
k = rng.standard_normal((I, 4 * H)).astype(np.float32) * 0.3
r = rng.standard_normal((H, 4 * H)).astype(np.float32) * 0.3
b = rng.standard_normal(4 * H).astype(np.float32)
dy = rng.standard_normal((B, T, H)).astype(np.float32)
results = []
for n in (2, 1):
    fusedrnn.set_num_threads(n)
    y, h, c, cache = ops.lstm_forward(x, None, None, k, r, b)
    results.append([y, h, c, *ops.lstm_backward(cache, dy, None, None)])
for a, b_ in zip(*results):
    assert np.array_equal(a, b_) and np.isfinite(a).all()
print("ok")
"""
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
