#!/usr/bin/env python3
"""CPU benchmark: fusedrnn against NumPy, TF/Keras and PyTorch, next to the machine's sgemm rate.

Every implementation runs in this one process with the same number of threads. Timings are
interleaved (fusedrnn, PyTorch, Keras, NumPy, sgemm, fusedrnn, ...) so that a slow spell of the
machine hits all of them alike, with a short busy pause before each timed run: thread pools spin for a
while after their work (OpenBLAS's for up to ~0.1 s) and would otherwise slow down whichever
library runs next. After the pause each implementation runs once untimed and then once timed,
so that every library is measured with its own threads awake, as in a loop of calls (and as
the sgemm roofline is measured). The table shows medians, each peer's time divided by fusedrnn's, and the
achieved GFLOP/s. These layers are GEMM-bound, so the sgemm rate is the roofline: NumPy's
1024^3 float32 GEMM, timed as one more implementation inside every case's interleaving, so that
each row's "% sgemm" compares two rates measured in the same spell (on a shared VM the sgemm
rate alone moves by tens of percent over minutes).

    python benchmarks/bench_cpu.py                   # all cells and shapes, all peers found
    python benchmarks/bench_cpu.py --cells lstm --shapes imdb --repeats 30 --json out.json

Forward-only rows are inference for every peer: fusedrnn with keep_cache=False, PyTorch under
no_grad, Keras outside a GradientTape (none of them keeps what a backward pass would need).

FLOPs counted: forward 2*B*T*(I+H)*G*H (input and recurrent GEMMs); forward+backward three
times that (the backward pass has twice the forward's GEMM work). Gate math is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import blas_cores, busy_wait, configure_threads, sgemm_runner, write_json  # noqa: E402

SHAPES = {  # (B, T, I, H) of the three reference tasks
    "imdb": (32, 80, 128, 128),
    "chars": (128, 40, 57, 128),
    "translate": (64, 16, 256, 1024),
}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
PEERS = ("fusedrnn", "pytorch", "keras", "numpy")
SGEMM_N = 1024
SGEMM_FLOPS = 2.0 * SGEMM_N**3


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every library (default: all cores)")
    p.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"], choices=sorted(GATES), help="cells to time")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES), help="shapes to time")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per implementation (median reported)")
    p.add_argument("--numpy-repeats", type=int, default=3, help="timed runs of the slow NumPy reference")
    p.add_argument("--peers", nargs="+", default=list(PEERS[1:]), choices=list(PEERS[1:]), help="peers to compare")
    p.add_argument("--no-dropout-row", action="store_true", help="skip the LSTM-with-dropout training row")
    p.add_argument("--settle", type=float, default=0.15, metavar="S",
                   help="seconds the main thread busy-waits before each timed run (default 0.15), so that the "
                        "thread pools of the library that ran before stop spinning and do not steal the cores")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown (for the README)")
    return p.parse_args(argv)


@dataclass
class Case:
    cell: str
    shape: str
    B: int
    T: int
    I: int
    H: int
    mode: str  # "fwd" or "fwd+bwd" or "train+dropout"
    times: Dict[str, List[float]] = field(default_factory=dict)

    @property
    def sgemm_gflops(self) -> float:
        """The roofline measured inside this case's interleaving (median)."""
        return SGEMM_FLOPS / statistics.median(self.times["sgemm"]) / 1e9

    @property
    def flops(self) -> float:
        f = 2.0 * self.B * self.T * (self.I + self.H) * GATES[self.cell] * self.H
        return f if self.mode == "fwd" else 3.0 * f


def make_inputs(cell: str, B: int, T: int, I: int, H: int):
    rng = np.random.default_rng(0)
    G = GATES[cell]
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    kernel = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(np.float32)
    recurrent = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(np.float32)
    bias = (0.1 * rng.standard_normal((2, G * H) if cell == "gru" else (G * H,))).astype(np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    return x, kernel, recurrent, bias, dy


# -- implementations: each returns a zero-argument callable that runs one timed unit ------------
def contract_runner(module, cell, mode, x, kernel, recurrent, bias, dy, **inference) -> Callable[[], object]:
    """Forward (and backward) through a module with the fusedrnn.ops contract; `inference`: the
    keyword arguments of a forward-only run."""
    def forward(**kw):
        return {
            "rnn": lambda: module.rnn_forward(x, None, kernel, recurrent, bias, **kw),
            "lstm": lambda: module.lstm_forward(x, None, None, kernel, recurrent, bias, **kw),
            "gru": lambda: module.gru_forward(x, None, kernel, recurrent, bias, **kw),
        }[cell]
    if mode == "fwd":
        return forward(**inference)
    fwd = forward()
    bwd = {
        "rnn": lambda c: module.rnn_backward(c, dy, None),
        "lstm": lambda c: module.lstm_backward(c, dy, None, None),
        "gru": lambda c: module.gru_backward(c, dy, None),
    }[cell]
    return lambda: bwd(fwd()[-1])


def fused_runner(cell, mode, x, kernel, recurrent, bias, dy) -> Callable[[], object]:
    import fusedrnn

    if mode == "train+dropout":
        layer = fusedrnn.LSTM(kernel.shape[1] // 4, return_sequences=True, dropout=0.2, recurrent_dropout=0.2, seed=0)
        layer.set_weights([kernel, recurrent, bias])

        def train_step():
            layer(x, training=True)
            return layer.backward(dy)
        return train_step
    # Forward only: no cache for a backward pass, as PyTorch under no_grad and Keras without a tape.
    return contract_runner(fusedrnn.ops, cell, mode, x, kernel, recurrent, bias, dy, keep_cache=False)


def numpy_runner(cell, mode, x, kernel, recurrent, bias, dy) -> Optional[Callable[[], object]]:
    if mode == "train+dropout":
        return None
    from fusedrnn import reference

    return contract_runner(reference, cell, mode, x, kernel, recurrent, bias, dy)


def torch_runner(cell, mode, x, kernel, recurrent, bias, dy) -> Optional[Callable[[], object]]:
    try:
        import torch
    except ImportError:
        return None
    if mode == "train+dropout":
        return None  # PyTorch's nn.LSTM has no recurrent (variational) dropout
    I, H = x.shape[2], recurrent.shape[0]
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H, batch_first=True)
    xt = torch.from_numpy(x).requires_grad_(mode != "fwd")
    dyt = torch.from_numpy(dy)
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return module(xt)
        return run

    def run_fb():
        y, _ = module(xt)
        y.backward(dyt)
        return xt.grad
    return run_fb


def keras_runner(cell, mode, x, kernel, recurrent, bias, dy) -> Optional[Callable[[], object]]:
    try:
        import tensorflow as tf
        import keras
    except ImportError:
        return None
    H = recurrent.shape[0]
    if mode == "train+dropout":
        layer = keras.layers.LSTM(H, return_sequences=True, dropout=0.2, recurrent_dropout=0.2)
    else:
        layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](
            H, return_sequences=True)
    layer.build(x.shape)
    layer.set_weights([kernel, recurrent, bias])
    xt, dyt = tf.constant(x), tf.constant(dy)
    training = mode == "train+dropout"

    @tf.function
    def fwd(v):
        return layer(v, training=training)

    @tf.function
    def fwd_bwd(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = layer(v, training=training)
            loss = tf.reduce_sum(y * dyt)
        return tape.gradient(loss, [v] + layer.trainable_weights)

    if mode == "fwd":
        return lambda: fwd(xt)
    return lambda: [g.numpy() for g in fwd_bwd(xt)][0]


RUNNERS = {"fusedrnn": fused_runner, "pytorch": torch_runner, "keras": keras_runner, "numpy": numpy_runner}


def time_case(case: Case, peers: List[str], repeats: int, numpy_repeats: int, settle: float) -> None:
    data = make_inputs(case.cell, case.B, case.T, case.I, case.H)
    runners = {}
    for name in ["fusedrnn", *peers, "sgemm"]:
        r = sgemm_runner(SGEMM_N) if name == "sgemm" else RUNNERS[name](case.cell, case.mode, *data)
        if r is not None:
            runners[name] = r
            r()  # warm-up (tf.function tracing, allocations)
            r()
            case.times[name] = []
    for k in range(repeats):
        for name, run in runners.items():
            if name == "numpy" and k >= numpy_repeats:
                continue
            busy_wait(settle)
            run()  # untimed: wakes this library's thread pool after the pause, as in a loop of calls
            t0 = time.perf_counter()
            run()
            case.times[name].append(time.perf_counter() - t0)


def print_table(cases: List[Case], peers: List[str], threads: int) -> None:
    cols = ["fusedrnn", *peers]
    header = f"{'cell':5} {'shape':9} {'(B,T,I,H)':18} {'mode':14} " + " ".join(f"{c + ' ms':>12}" for c in cols)
    header += "  " + " ".join(f"{c + '/fused':>13}" for c in peers)
    header += f"  {'fused GF/s':>10} {'sgemm GF/s':>10} {'% sgemm':>8}"
    rates = [c.sgemm_gflops for c in cases]
    print(f"\nthreads={threads}  NumPy sgemm ({SGEMM_N}^3, float32), measured in every case: "
          f"{min(rates):.0f}-{max(rates):.0f} GFLOP/s  (medians)")
    print(blas_cores())
    print(header)
    print("-" * len(header))
    for c in cases:
        med = {k: statistics.median(v) * 1e3 for k, v in c.times.items() if v}
        fused = med["fusedrnn"]
        row = f"{c.cell:5} {c.shape:9} {str((c.B, c.T, c.I, c.H)):18} {c.mode:14} "
        row += " ".join(f"{med[k]:12.2f}" if k in med else f"{'-':>12}" for k in cols)
        row += "  " + " ".join(f"{med[k] / fused:12.2f}x" if k in med else f"{'-':>13}" for k in peers)
        gf = c.flops / (fused / 1e3) / 1e9
        row += f"  {gf:10.0f} {c.sgemm_gflops:10.0f} {100 * gf / c.sgemm_gflops:7.0f}%"
        print(row)


def print_markdown(cases: List[Case], peers: List[str]) -> None:
    cols = ["fusedrnn", *peers]
    print("\n| cell | shape (B,T,I,H) | mode | " + " | ".join(f"{c} ms" for c in cols) + " | "
          + " | ".join(f"{c}/fused" for c in peers) + " | fused GFLOP/s | sgemm GFLOP/s | % of sgemm |")
    print("|---" * (3 + len(cols) + len(peers) + 3) + "|")
    for c in cases:
        med = {k: statistics.median(v) * 1e3 for k, v in c.times.items() if v}
        fused = med["fusedrnn"]
        gf = c.flops / (fused / 1e3) / 1e9
        cells = [c.cell, f"{c.shape} {(c.B, c.T, c.I, c.H)}", c.mode]
        cells += [f"{med[k]:.2f}" if k in med else "–" for k in cols]
        cells += [f"{med[k] / fused:.2f}x" if k in med else "–" for k in peers]
        cells += [f"{gf:.0f}", f"{c.sgemm_gflops:.0f}", f"{100 * gf / c.sgemm_gflops:.0f}%"]
        print("| " + " | ".join(cells) + " |")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    cases: List[Case] = []
    for shape in args.shapes:
        B, T, I, H = SHAPES[shape]
        for cell in args.cells:
            for mode in ("fwd", "fwd+bwd"):
                cases.append(Case(cell, shape, B, T, I, H, mode))
    if not args.no_dropout_row and "imdb" in args.shapes and "lstm" in args.cells:
        cases.append(Case("lstm", "imdb", *SHAPES["imdb"], "train+dropout"))
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):
            return x
    for case in tqdm(cases, desc="benchmark", unit="case", file=sys.stderr):
        time_case(case, args.peers, args.repeats, args.numpy_repeats, args.settle)
    print_table(cases, args.peers, args.threads)
    if args.markdown:
        print_markdown(cases, args.peers)
    if args.json:
        import platform

        payload = {
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "blas": blas_cores(),
            "cases": [{"cell": c.cell, "shape": c.shape, "BTIH": [c.B, c.T, c.I, c.H], "mode": c.mode,
                       "flops": c.flops, "sgemm_gflops": c.sgemm_gflops,
                       "median_s": {k: statistics.median(v) for k, v in c.times.items() if v}}
                      for c in cases],
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
