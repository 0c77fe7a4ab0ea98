#!/usr/bin/env python3
"""Latency benchmark: small batches (B=1-8) and single steps, fusedrnn against PyTorch and Keras.

The cases of issue 21, for the LSTM and the GRU:

* single steps (T=1) at (B, I, H) = (1, 256, 1024), (64, 256, 1024), (1, 57, 128): PyTorch's
  ``LSTMCell``/``GRUCell``, Keras's ``LSTMCell``/``GRUCell`` in a ``tf.function``;
* whole-sequence inference at (B, T, I, H) = (1, 100, 256, 256), (1, 1000, 128, 512),
  (4, 200, 256, 256): ``nn.LSTM``/``nn.GRU`` under ``no_grad``, Keras layers without a tape;
* forward + backward at (1, 100, 256, 256) and (4, 200, 256, 256).

Every implementation runs in this one process with the same threads. The runs are interleaved:
in every round each implementation runs a burst of calls (one untimed, then about `budget-ms`
of calls, each timed on its own, as a decoder's loop calls it), and the table shows the median
over all calls of all rounds, and each peer's time divided by fusedrnn's. (On a loaded machine
the median of single calls is the time of a call that the scheduler did not interrupt, while
the mean of a burst would mostly measure the other processes.) fusedrnn appears twice: ``fused`` is the
fastest route it offers for the case (``layer.step`` for single steps, the ops with a
``PackedWeights`` kept between calls for sequences), ``fused-ops`` the plain op of fusedrnn.ops
that packs nothing between calls (what every call did before). For single steps the column
"step overhead" is layer.step's time minus that of the compiled step called directly with
prepared arguments: the cost of the Python layer and its checks.

Inference cases at batch at most 8 also run fusedrnn on weights kept in bfloat16 (opt-in:
``ops.PackedWeights(cell, precision="bfloat16")``, through the ops), with PyTorch's time over
that one and the outputs' largest error against fusedrnn's float32 outputs, relative to their
largest value. The targets apply to the float32 route.

Memory-bound cases (batch at most 8) also report the weight traffic of fusedrnn's best route in
GB/s: the bytes of the weights a step multiplies (single steps: kernel and recurrent kernel;
sequences: the recurrent kernel, the input projection being one GEMM over all steps), times the
steps, over the time. Next to it: a STREAM-like triad ``a = b + s * c`` (PyTorch's fused
``torch.add(b, c, alpha=s, out=a)``, on the same threads, NumPy's two passes without PyTorch)
over three arrays whose bytes add up to those same weight bytes, timed in the same
interleaving, so both numbers are measured in the same spell and at the same level of the cache
hierarchy.

    python benchmarks/bench_latency.py               # every case, 2 threads (or all cores)
    python benchmarks/bench_latency.py --quick       # fewer rounds, the T=1000 case at T=250
    python benchmarks/bench_latency.py --cells lstm --json out.json --markdown
    python benchmarks/bench_latency.py --levers      # each lever of fusedrnn without and with it
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
from _common import blas_cores, configure_threads, cpu_model, write_json  # noqa: E402
from bench_cpu import GATES, make_inputs  # noqa: E402

# (kind, B, T, I, H, label): kind "step" (T=1, one call per step), "fwd" (inference over a
# sequence) or "fwd+bwd" (training: forward keeping the cache, then backward).
CASES = [
    ("step", 1, 1, 256, 1024, "decoder step"),
    ("step", 64, 1, 256, 1024, "decoder step, batch"),
    ("step", 1, 1, 57, 128, "text generation step"),
    ("fwd", 1, 100, 256, 256, "streaming"),
    ("fwd", 1, 1000, 128, 512, "long stream"),
    ("fwd", 4, 200, 256, 256, "small batch"),
    ("fwd+bwd", 1, 100, 256, 256, "train, B=1"),
    ("fwd+bwd", 4, 200, 256, 256, "train, B=4"),
]
TARGETS = {"step": {1: 1.5, 64: 1.2}, "fwd": 1.5, "fwd+bwd": 1.3}  # x PyTorch (issue 21)
PEERS = ("pytorch", "keras")
MEMORY_BOUND_BATCH = 8


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="threads for every library")
    p.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median reported)")
    p.add_argument("--budget-ms", type=float, default=20.0, help="about how long one timed burst runs")
    p.add_argument("--quick", action="store_true", help="5 rounds, 5 ms bursts, the T=1000 case at T=250")
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--levers", action="store_true", help="instead of the peers, time each lever of fusedrnn without and with it")
    p.add_argument("--only", nargs="+", metavar="WORD", help="only the cases whose kind or label holds one of these")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.budget_ms = min(args.rounds, 5), min(args.budget_ms, 5.0)
    return args


def machine() -> str:
    """The CPU model, its vector extensions and the cores this process may use."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        pass
    model = cpu_model()
    isa = "AVX-512" if "avx512f" in flags else ("AVX2+FMA" if {"avx2", "fma"} <= flags else "no AVX2")
    return f"{model}, {isa}, {len(os.sched_getaffinity(0))} cores"


@dataclass
class Case:
    cell: str
    kind: str
    B: int
    T: int
    I: int
    H: int
    label: str
    times: Dict[str, List[float]] = field(default_factory=dict)
    bf16_error: Optional[float] = None  # max |bfloat16 - float32| / max |float32| of the outputs

    @property
    def memory_bound(self) -> bool:
        return self.B <= MEMORY_BOUND_BATCH and self.kind != "fwd+bwd"

    @property
    def weight_bytes_per_step(self) -> int:
        rows = self.I + self.H if self.kind == "step" else self.H
        return rows * GATES[self.cell] * self.H * 4

    @property
    def target(self) -> float:
        t = TARGETS[self.kind]
        return t.get(self.B, 1.5) if isinstance(t, dict) else t

    def median(self, name: str) -> Optional[float]:
        v = self.times.get(name)
        return statistics.median(v) if v else None


def make_data(cell: str, B: int, T: int, I: int, H: int):
    """bench_cpu's inputs and weights for the case, plus initial states."""
    x, kernel, recurrent, bias, dy = make_inputs(cell, B, T, I, H)
    rng = np.random.default_rng(1)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    return dict(x=x, kernel=kernel, recurrent=recurrent, bias=bias, h0=h0, c0=c0, dy=dy)


# -- implementations: each returns a zero-argument callable that runs one call ------------------
def fused_ops_runner(case: Case, d) -> Callable[[], object]:
    """The plain ops of fusedrnn.ops: nothing kept between calls."""
    from fusedrnn import ops

    x, k, r, b, h0, c0 = d["x"], d["kernel"], d["recurrent"], d["bias"], d["h0"], d["c0"]
    keep = case.kind == "fwd+bwd"
    if case.cell == "lstm":
        fwd = lambda: ops.lstm_forward(x, h0, c0, k, r, b, keep_cache=keep)  # noqa: E731
        bwd = lambda cache: ops.lstm_backward(cache, d["dy"], None, None)  # noqa: E731
    else:
        fwd = lambda: ops.gru_forward(x, h0, k, r, b, keep_cache=keep)  # noqa: E731
        bwd = lambda cache: ops.gru_backward(cache, d["dy"], None)  # noqa: E731
    if keep:
        return lambda: bwd(fwd()[-1])
    return fwd


def fused_runner(case: Case, d) -> Optional[Callable[[], object]]:
    """fusedrnn's fastest route: steps through layer.step (weights packed once, states written in
    place); sequences through the ops with a PackedWeights kept between calls."""
    import fusedrnn
    from fusedrnn import ops

    if not hasattr(ops, "PackedWeights"):
        return None  # this version of fusedrnn has only the plain ops
    x, k, r, b, h0, c0 = d["x"], d["kernel"], d["recurrent"], d["bias"], d["h0"], d["c0"]
    if case.kind == "step":
        layer = {"lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU}[case.cell](case.H)
        layer.set_weights([k, r, b])
        states = [h0, c0] if case.cell == "lstm" else [h0]
        x_t = np.ascontiguousarray(x[:, 0])
        out = [np.empty_like(s) for s in states]
        return lambda: layer.step(x_t, states, out=out)
    packed = ops.PackedWeights(case.cell)
    keep = case.kind == "fwd+bwd"
    if case.cell == "lstm":
        fwd = lambda: ops.lstm_forward(x, h0, c0, k, r, b, keep_cache=keep, packed=packed)  # noqa: E731
        bwd = lambda cache: ops.lstm_backward(cache, d["dy"], None, None)  # noqa: E731
    else:
        fwd = lambda: ops.gru_forward(x, h0, k, r, b, keep_cache=keep, packed=packed)  # noqa: E731
        bwd = lambda cache: ops.gru_backward(cache, d["dy"], None)  # noqa: E731
    if keep:
        return lambda: bwd(fwd()[-1])
    return fwd


def fused_kernel_runner(case: Case, d) -> Optional[Callable[[], object]]:
    """The compiled step alone (the step plan, fusedrnn._C.RecurrentStepPlan, called with arguments
    prepared once; _C.recurrent_step in trees before it): what layer.step costs without its
    Python, to measure that overhead."""
    from fusedrnn import _C, ops

    if case.kind != "step" or not hasattr(ops, "PackedWeights"):
        return None
    x, k, r, b, h0, c0 = d["x"], d["kernel"], d["recurrent"], d["bias"], d["h0"], d["c0"]
    lstm = case.cell == "lstm"
    h_out, c_out = np.empty_like(h0), (np.empty_like(c0) if lstm else None)
    packed = ops.PackedWeights(case.cell)
    if hasattr(packed, "step_plan"):
        plan = packed.step_plan(k, r, b, False)
        x_t = np.ascontiguousarray(x[:, 0])
        return lambda: plan(x_t, h0, c0 if lstm else None, h_out, c_out)
    handle = packed.handle(k, r)
    x_t = np.ascontiguousarray(x[:, :1])
    return lambda: _C.recurrent_step(case.cell, x_t, h0, c0 if lstm else None, k, r, b, handle, h_out, c_out,
                                     "tanh", True)


def fused_bf16_runner(case: Case, d) -> Optional[Callable[[], object]]:
    """The same route as fused_runner's on weights kept in bfloat16 (inference only), through the
    ops (steps: ops.lstm_step/gru_step). Also records the outputs' error against float32."""
    from fusedrnn import ops

    if case.kind == "fwd+bwd" or "precision" not in getattr(ops.PackedWeights, "__init__").__code__.co_varnames:
        return None
    x, k, r, b, h0, c0 = d["x"], d["kernel"], d["recurrent"], d["bias"], d["h0"], d["c0"]
    lstm = case.cell == "lstm"
    packed = {p: ops.PackedWeights(case.cell, precision=p) for p in ("float32", "bfloat16")}
    if case.kind == "step":
        x_t = np.ascontiguousarray(x[:, 0])
        states = [h0, c0] if lstm else [h0]
        out = [np.empty_like(s) for s in states]
        step = ops.lstm_step if lstm else ops.gru_step

        def run(precision: str, into=out):
            return step(x_t, *states, k, r, b, packed=packed[precision], out=into)
        exact, low = run("float32", None), run("bfloat16", None)
        exact, low = (exact[0], low[0]) if lstm else (exact, low)
    else:
        def run(precision: str):
            if lstm:
                return ops.lstm_forward(x, h0, c0, k, r, b, keep_cache=False, packed=packed[precision])
            return ops.gru_forward(x, h0, k, r, b, keep_cache=False, packed=packed[precision])
        exact, low = run("float32")[0], run("bfloat16")[0]
    case.bf16_error = float(np.max(np.abs(low - exact)) / max(float(np.max(np.abs(exact))), 1e-30))
    return lambda: run("bfloat16")


def torch_runner(case: Case, d) -> Optional[Callable[[], object]]:
    try:
        import torch
    except ImportError:
        return None
    I, H = case.I, case.H
    x = torch.from_numpy(d["x"])
    h0, c0 = torch.from_numpy(d["h0"]), torch.from_numpy(d["c0"])
    if case.kind == "step":
        cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[case.cell](I, H)
        x_t = x[:, 0].contiguous()
        state = (h0, c0) if case.cell == "lstm" else h0

        def step():
            with torch.no_grad():
                return cell(x_t, state)
        return step
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell](I, H, batch_first=True)
    state = (h0[None], c0[None]) if case.cell == "lstm" else h0[None]
    if case.kind == "fwd":
        def infer():
            with torch.no_grad():
                return module(x, state)
        return infer
    xg = x.clone().requires_grad_(True)
    dy = torch.from_numpy(d["dy"])

    def train():
        y, _ = module(xg, state)
        y.backward(dy)
        return xg.grad
    return train


def keras_runner(case: Case, d) -> Optional[Callable[[], object]]:
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    H = case.H
    h0, c0 = tf.constant(d["h0"]), tf.constant(d["c0"])
    states = [h0, c0] if case.cell == "lstm" else [h0]
    weights = [d["kernel"], d["recurrent"], d["bias"]]
    if case.kind == "step":
        cell = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}[case.cell](H)
        cell.build((case.B, case.I))
        cell.set_weights(weights)
        x_t = tf.constant(d["x"][:, 0])

        @tf.function
        def step(v, s):
            return cell(v, s)
        return lambda: step(x_t, states)
    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[case.cell](H, return_sequences=True)
    layer.build(d["x"].shape)
    layer.set_weights(weights)
    x, dy = tf.constant(d["x"]), tf.constant(d["dy"])
    if case.kind == "fwd":
        @tf.function
        def infer(v):
            return layer(v, initial_state=states)
        return lambda: infer(x)

    @tf.function
    def train(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(layer(v, initial_state=states) * dy)
        return tape.gradient(loss, [v] + layer.trainable_weights)
    return lambda: train(x)


def triad_runner(case: Case) -> Callable[[], object]:
    """a = b + s * c over three float32 arrays of weight_bytes_per_step bytes together."""
    return triad_of_bytes(case.weight_bytes_per_step)


def triad_counted_bytes(nbytes: int) -> int:
    """The bytes one call of triad_of_bytes(nbytes) is counted as moving (its three arrays)."""
    return 3 * max(1024, nbytes // 12) * 4


def triad_of_bytes(nbytes: int) -> Callable[[], object]:
    """a = b + s * c over three float32 arrays of `nbytes` bytes together: PyTorch's fused
    ``torch.add`` when installed, else NumPy's two passes (counted as the same bytes)."""
    n = triad_counted_bytes(nbytes) // 12
    try:
        import torch

        a, b, c = torch.zeros(n), torch.rand(n), torch.rand(n)
        return lambda: torch.add(b, c, alpha=0.5, out=a)
    except ImportError:
        a, b, c = np.zeros(n, np.float32), np.random.rand(n).astype(np.float32), np.random.rand(n).astype(np.float32)

        def triad():
            np.multiply(c, np.float32(0.5), out=a)
            np.add(a, b, out=a)
        return triad


def runners_for(case: Case, peers: List[str]) -> Dict[str, Callable[[], object]]:
    d = make_data(case.cell, case.B, case.T, case.I, case.H)
    made = {"fused": fused_runner(case, d), "fused-ops": fused_ops_runner(case, d),
            "fused-kernel": fused_kernel_runner(case, d)}
    if "pytorch" in peers:
        made["pytorch"] = torch_runner(case, d)
    if "keras" in peers:
        made["keras"] = keras_runner(case, d)
    if case.memory_bound:
        made["fused-bf16"] = fused_bf16_runner(case, d)
        made["triad"] = triad_runner(case)
    return {k: v for k, v in made.items() if v is not None}


def time_case(case: Case, peers: List[str], rounds: int, budget_s: float) -> None:
    runners = runners_for(case, peers)
    inner = {}
    for name, run in runners.items():
        run()  # warm-up: tf.function tracing, allocations, packing
        t0 = time.perf_counter()
        run()
        once = max(time.perf_counter() - t0, 1e-7)
        inner[name] = int(min(500, max(1, budget_s / once)))
        case.times[name] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for name, run in runners.items():
            run()  # untimed: wakes this library's threads after the previous library ran
            samples = case.times[name]
            for _ in range(inner[name]):
                t0 = clock()
                run()
                samples.append(clock() - t0)


def with_hook(setter: Callable[[int], None], getter: Callable[[], int], value: int, run: Callable[[], object]
              ) -> Callable[[], object]:
    """`run` with a kernel setting changed for the call only."""
    def call():
        before = getter()
        setter(value)
        try:
            return run()
        finally:
            setter(before)
    return call


def lever_variants(case: Case, d) -> Dict[str, Dict[str, Callable[[], object]]]:
    """For each lever that applies to the case, fusedrnn without and with it (same process)."""
    from fusedrnn import _C

    levers: Dict[str, Dict[str, Callable[[], object]]] = {}
    plain, best = fused_ops_runner(case, d), fused_runner(case, d)
    if case.kind == "step":
        if case.B <= 8:
            levers["packed once + panel kernel (vs BLAS per call)"] = {"without": plain, "with": best}
    else:
        levers["weights kept packed (packed=)"] = {"without": plain, "with": best}
        if case.B <= 8 and hasattr(_C, "set_project_inputs_batch"):
            levers["inputs projected before the loop"] = {
                "without": with_hook(_C.set_project_inputs_batch, _C.get_project_inputs_batch, 0, plain),
                "with": plain}
    if hasattr(_C, "set_min_parallel_step_macs"):
        levers["small steps on one thread"] = {
            "without": with_hook(_C.set_min_parallel_step_macs, _C.get_min_parallel_step_macs, 0, best or plain),
            "with": best or plain}
    return levers


def time_levers(cases: List[Case], rounds: int, budget_s: float) -> None:
    """Each lever without and with, interleaved, medians of single calls."""
    print("\nlevers (fusedrnn without / with each, interleaved in this process; medians of single calls)")
    for case in cases:
        d = make_data(case.cell, case.B, case.T, case.I, case.H)
        for lever, pair in lever_variants(case, d).items():
            sub = Case(case.cell, case.kind, case.B, case.T, case.I, case.H, case.label)
            times: Dict[str, List[float]] = {}
            for name, run in pair.items():
                run()
                times[name] = []
            for _ in range(rounds):
                for name, run in pair.items():
                    run()
                    for _ in range(max(1, min(200, int(budget_s / max(1e-6, sub.T * 2e-5))))):
                        t0 = time.perf_counter()
                        run()
                        times[name].append(time.perf_counter() - t0)
            w, wo = statistics.median(times["with"]), statistics.median(times["without"])
            print(f"  {case.cell:4} {case.label:21} {lever:48} {fmt_time(wo):>10} -> {fmt_time(w):>10}  {wo / w:5.2f}x")


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def best_fused(case: Case) -> float:
    return case.median("fused") or case.median("fused-ops")  # type: ignore[return-value]


def rows(cases: List[Case], peers: List[str]) -> List[List[str]]:
    out = []
    for c in cases:
        fused = best_fused(c)
        row = [c.cell, c.label, f"{c.kind} B={c.B} T={c.T} I={c.I} H={c.H}", fmt_time(c.median("fused")),
               fmt_time(c.median("fused-ops"))]
        row += [fmt_time(c.median(p)) for p in peers]
        for p in peers:
            m = c.median(p)
            row.append(f"{m / fused:.2f}x" if m else "-")
        row.append(f"{c.target:.1f}x")
        kernel = c.median("fused-kernel")
        row.append(f"{(c.median('fused') - kernel) * 1e6:.1f} us" if kernel and c.median("fused") else "")
        if c.memory_bound:
            gbs = c.weight_bytes_per_step * c.T / fused / 1e9
            triad = triad_counted_bytes(c.weight_bytes_per_step) / c.median("triad") / 1e9
            row += [f"{gbs:.1f}", f"{triad:.1f}", f"{100 * gbs / triad:.0f}%"]
        else:
            row += ["", "", ""]
        low, torch_time = c.median("fused-bf16"), c.median("pytorch")
        row += [fmt_time(low), f"{torch_time / low:.2f}x" if low and torch_time else "",
                f"{c.bf16_error:.1e}" if c.bf16_error is not None else ""]
        out.append(row)
    return out


def header(peers: List[str]) -> List[str]:
    return (["cell", "case", "shape", "fused", "fused-ops"] + list(peers) + [f"{p}/fused" for p in peers]
            + ["target", "step overhead", "weights GB/s", "triad GB/s", "% triad", "bf16", "pytorch/bf16", "bf16 error"])


def print_table(cases: List[Case], peers: List[str], threads: int) -> None:
    print(f"\n{machine()}; threads={threads}; {blas_cores()}")
    print("medians of the time per call; ratio = peer time / fusedrnn's best time (higher: fusedrnn faster)")
    table = [header(peers)] + rows(cases, peers)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for k, r in enumerate(table):
        print("  ".join(v.rjust(w) if i >= 3 else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
        if k == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))


def print_markdown(cases: List[Case], peers: List[str]) -> None:
    table = [header(peers)] + rows(cases, peers)
    print("\n| " + " | ".join(table[0]) + " |")
    print("|" + "---|" * len(table[0]))
    for r in table[1:]:
        print("| " + " | ".join(v or "–" for v in r) + " |")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    cases = []
    for cell in args.cells:
        for kind, B, T, I, H, label in CASES:
            if args.quick and T == 1000:
                T = 250
            if args.only and not any(w in f"{kind} {label}" for w in args.only):
                continue
            cases.append(Case(cell, kind, B, T, I, H, label))
    if args.levers:
        print(f"\n{machine()}; threads={args.threads}")
        time_levers(cases, args.rounds, args.budget_ms / 1e3)
        return 0
    for k, case in enumerate(cases):
        print(f"[{k + 1}/{len(cases)}] {case.cell} {case.label}", file=sys.stderr, flush=True)
        time_case(case, args.peers, args.rounds, args.budget_ms / 1e3)
    print_table(cases, args.peers, args.threads)
    if args.markdown:
        print_markdown(cases, args.peers)
    if args.json:
        payload = {"machine": machine(), "threads": args.threads, "blas": blas_cores(),
                   "cases": [{"cell": c.cell, "kind": c.kind, "BTIH": [c.B, c.T, c.I, c.H], "label": c.label,
                              "median_s": {k: c.median(k) for k in c.times}, "bf16_error": c.bf16_error} for c in cases]}
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
