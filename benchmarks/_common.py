"""What the CPU benchmark scripts share: one thread count for every library, the sgemm
roofline, and the pause between timed runs."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np


def configure_threads(n: int) -> None:
    """The same thread count for fusedrnn, PyTorch, TensorFlow (before it starts) and NumPy's
    BLAS. fusedrnn's own OpenBLAS stays single-threaded whatever threadpoolctl does: its kernels
    reset it before each parallel region."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import fusedrnn

    fusedrnn.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def measure_sgemm(n: int = 1024, repeats: int = 30, warmup_s: float = 1.0) -> float:
    """NumPy's float32 GEMM rate in GFLOP/s at n x n x n: median of `repeats` after `warmup_s`
    seconds of the same GEMM (idle cores need a moment to reach their working clock)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(times) / 1e9


def busy_wait(seconds: float) -> None:
    """Keeps this thread running (sleeping would let the cores drop into idle states, and waking
    them is slow on virtual machines) while other libraries' worker threads time out."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
