"""`fusedrnn demo`: a short tour on random data that checks and times the fused kernels.

For each cell it runs the fused op and the NumPy reference (fusedrnn.reference) on the same
random float64 problem and prints the largest difference of outputs and gradients, then times
float32 forward and forward+backward at the IMDB-task shape next to the reference.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import numpy as np

from fusedrnn import get_num_threads, ops, reference

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _problem(cell: str, B: int, T: int, I: int, H: int, dtype, rng: np.random.Generator):
    G = _GATES[cell]
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    kernel = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(dtype)
    recurrent = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(dtype)
    bias = (0.1 * rng.standard_normal((2, G * H) if cell == "gru" else (G * H,))).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    mask = rng.random((B, T)) > 0.2
    return x, h0, c0, kernel, recurrent, bias, dy, mask


def _run(module, cell: str, x, h0, c0, kernel, recurrent, bias, dy, mask=None, backward=True) -> List[np.ndarray]:
    """Forward (then backward) with `module` (fusedrnn.ops or fusedrnn.reference); all results."""
    if cell == "lstm":
        y, h, c, cache = module.lstm_forward(x, h0, c0, kernel, recurrent, bias, mask=mask)
        return [y, h, c, *module.lstm_backward(cache, dy, None, None)] if backward else [y, h, c]
    if cell == "gru":
        y, h, cache = module.gru_forward(x, h0, kernel, recurrent, bias, mask=mask)
        return [y, h, *module.gru_backward(cache, dy, None)] if backward else [y, h]
    y, h, cache = module.rnn_forward(x, h0, kernel, recurrent, bias, mask=mask)
    return [y, h, *module.rnn_backward(cache, dy, None)] if backward else [y, h]


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run_demo(seed: int = 0, repeats: int = 10) -> Dict[str, Dict[str, float]]:
    """Prints the check and the timings; returns {cell: {"max_error": ..., "fused_ms": ..., ...}}."""
    rng = np.random.default_rng(seed)
    results: Dict[str, Dict[str, float]] = {}
    print(f"fusedrnn demo: {get_num_threads()} thread(s)\n")
    print("1. Fused kernels against the NumPy reference, float64, B=3 T=7 I=5 H=6, with a mask")
    for cell in _GATES:
        x, h0, c0, k, r, b, dy, mask = _problem(cell, 3, 7, 5, 6, np.float64, rng)
        fused = _run(ops, cell, x, h0, c0, k, r, b, dy, mask)
        ref = _run(reference, cell, x, h0, c0, k, r, b, dy, mask)
        err = max(float(np.max(np.abs(f - g))) for f, g in zip(fused, ref) if f is not None)
        results[cell] = {"max_error": err}
        print(f"   {cell:4}  outputs, states and all gradients agree to {err:.1e}")
    B, T, I, H = 32, 80, 128, 128
    print(f"\n2. Timings, float32, B={B} T={T} I={I} H={H} (median of {repeats})")
    print(f"   {'cell':5} {'fused fwd':>10} {'fused f+b':>10} {'NumPy f+b':>10} {'speed-up':>9}")
    for cell in _GATES:
        x, h0, c0, k, r, b, dy, _ = _problem(cell, B, T, I, H, np.float32, rng)
        fwd_ms = _median_ms(lambda: _run(ops, cell, x, h0, c0, k, r, b, dy, backward=False), repeats)
        fb_ms = _median_ms(lambda: _run(ops, cell, x, h0, c0, k, r, b, dy), repeats)
        ref_ms = _median_ms(lambda: _run(reference, cell, x, h0, c0, k, r, b, dy), max(1, repeats // 5))
        results[cell].update(fused_fb_ms=fb_ms, numpy_fb_ms=ref_ms)
        print(f"   {cell:5} {fwd_ms:8.2f}ms {fb_ms:8.2f}ms {ref_ms:8.2f}ms {ref_ms / fb_ms:8.1f}x")
    print("\nSee benchmarks/bench_cpu.py for the comparison with Keras and PyTorch.")
    return results
