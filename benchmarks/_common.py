"""What the CPU benchmark scripts share: one thread count for every library, the sgemm
roofline, and the pause between timed runs."""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

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


def blas_cores() -> str:
    """Which OpenBLAS kernels fusedrnn's and NumPy's BLAS run (e.g. "SkylakeX" for AVX-512,
    "Haswell" for AVX2): the sgemm roofline is only as fast as NumPy's, and fusedrnn's single-step
    calls and dense layers run on its own. OPENBLAS_CORETYPE in the environment decides both."""
    import fusedrnn

    numpy_core = "?"
    try:
        from threadpoolctl import threadpool_info

        numpy_core = next((i.get("architecture") or "?" for i in threadpool_info()
                           if i.get("internal_api") == "openblas" and "numpy" in i.get("filepath", "")), "?")
    except ImportError:
        pass
    forced = os.environ.get("OPENBLAS_CORETYPE")
    note = f" (OPENBLAS_CORETYPE={forced})" if forced else ""
    return f"OpenBLAS cores: fusedrnn {fusedrnn.blas_core() or '?'}, NumPy {numpy_core}{note}"


def sgemm_runner(n: int = 1024):
    """One n x n x n float32 GEMM through NumPy per call (2 n^3 FLOPs): the roofline timed as one
    more implementation inside a benchmark's interleaving."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    return lambda: np.matmul(a, b, out=out)


def busy_wait(seconds: float) -> None:
    """Keeps this thread running (sleeping would let the cores drop into idle states, and waking
    them is slow on virtual machines) while other libraries' worker threads time out."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the processor or architecture where it is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path: str, payload: Any) -> None:
    """Writes a benchmark's results as JSON atomically (a crash leaves the previous file whole)."""
    from fusedrnn.io_utils import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=1)
