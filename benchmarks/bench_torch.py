#!/usr/bin/env python3
"""PyTorch benchmark: fusedrnn.torch.LSTM/GRU against torch.nn.LSTM/GRU, and the adapter's cost.

Three implementations of one layer, in this one process with the same threads:

* ``fused.torch``: the drop-in module ``fusedrnn.torch.LSTM``/``GRU`` (batch_first), called on
  torch tensors, gradients through autograd;
* ``raw ops``: the same computation through ``fusedrnn.ops`` directly on NumPy arrays in Keras's
  layout (the module's weights converted once, before timing);
* ``torch.nn``: ``torch.nn.LSTM``/``GRU`` with the same ``state_dict``.

Before timing, each case checks that the three give the same outputs. Timings are interleaved
(fused.torch, raw ops, torch.nn, roofline, fused.torch, ...) with a short busy pause and one
untimed call before each timed one, as in bench_cpu.py. The table shows medians; the adapter's
overhead is the median over rounds of (fused.torch / raw ops) - 1, each ratio taken from two
calls timed back to back.

Forward rows are inference for every peer: the module and torch.nn under ``torch.no_grad()``,
the raw ops with ``keep_cache=False``. Forward+backward rows take the gradients of the input and
of every weight for the upstream gradient ``dy`` of the output sequence.

Rooflines, measured inside each case's interleaving: the reference shapes (GEMM-bound) report
GFLOP/s next to NumPy's 1024^3 sgemm, counting 2*B*T*(I+H)*G*H FLOPs forward and three times that
forward+backward; the batch 1-4 rows (bound by reading the weights at every step) report GB/s of
weight traffic next to NumPy's copy of a 64 MiB array (bytes read + written), counting
4*G*H*(I + T*H) bytes forward (the input weights once, the recurrent weights at every step) and
three times that forward+backward.

Targets: the adapter adds at most 5 % to the raw ops' time; fused.torch is faster than torch.nn
wherever the raw ops are.

    python benchmarks/bench_torch.py                      # LSTM and GRU, all shapes, batches 1, 2, 4
    python benchmarks/bench_torch.py --quick              # smoke run: a few cases, few repeats
    python benchmarks/bench_torch.py --cells lstm --shapes imdb --batches 1 --repeats 30 --json out.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import blas_cores, busy_wait, configure_threads, cpu_model, sgemm_runner, write_json  # noqa: E402
from bench_cpu import GATES, SGEMM_FLOPS, SGEMM_N, SHAPES, Case, contract_runner  # noqa: E402

CELLS = ("lstm", "gru")
IMPLS = ("fused.torch", "raw ops", "torch.nn")
COPY_BYTES = 64 << 20
OVERHEAD_TARGET = 0.05


@dataclass
class TorchCase(Case):
    roof: str = "sgemm"  # "sgemm" (GFLOP/s) for the reference shapes, "copy" (GB/s) for batches 1-4

    @property
    def weight_bytes(self) -> float:
        b = 4.0 * GATES[self.cell] * self.H * (self.I + self.T * self.H)
        return b if self.mode == "fwd" else 3.0 * b

    def median_ms(self, impl: str) -> float:
        return statistics.median(self.times[impl]) * 1e3

    @property
    def overhead(self) -> float:
        """Median over rounds of fused.torch / raw ops, minus 1."""
        return statistics.median(a / r for a, r in zip(self.times["fused.torch"], self.times["raw ops"])) - 1.0

    def rate(self, impl: str) -> float:
        """GFLOP/s (sgemm roof) or weight GB/s (copy roof) of `impl`."""
        work = self.flops if self.roof == "sgemm" else self.weight_bytes
        return work / statistics.median(self.times[impl]) / 1e9

    @property
    def roof_rate(self) -> float:
        work = SGEMM_FLOPS if self.roof == "sgemm" else 2.0 * COPY_BYTES
        return work / statistics.median(self.times[self.roof]) / 1e9

    def targets(self) -> Tuple[bool, Optional[bool]]:
        """(adapter overhead within target, faster than torch.nn — None where the raw ops are not)."""
        raw_faster = self.median_ms("raw ops") < self.median_ms("torch.nn")
        return self.overhead <= OVERHEAD_TARGET, (self.median_ms("fused.torch") < self.median_ms("torch.nn")
                                                 if raw_faster else None)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every library (default: all cores)")
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS, help="cells to time")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES),
                   help="reference shapes (B, T, I, H) to time, each also at the --batches")
    p.add_argument("--batches", nargs="*", type=int, default=[1, 2, 4],
                   help="small batches timed at each shape's (T, I, H) (default: 1 2 4; none: only the reference batches)")
    p.add_argument("--repeats", type=int, default=11, help="timed rounds per case (medians reported)")
    p.add_argument("--settle", type=float, default=0.15, metavar="S",
                   help="seconds of busy waiting before each timed call (see bench_cpu.py)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the imdb shape and batch 1 only, 3 rounds, short pauses")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    if args.quick:
        args.shapes, args.batches, args.repeats, args.settle = ["imdb"], [1], 3, 0.02
    if args.repeats < 1 or args.threads < 1 or any(b < 1 for b in args.batches):
        p.error("--repeats, --threads and --batches: expected positive integers")
    return args


# -- the three implementations --------------------------------------------------------------------
def keras_weights(cell: str, module) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kernel (I, G*H), recurrent_kernel (H, G*H), bias) for fusedrnn.ops from a one-layer
    torch.nn module, by the mapping fusedrnn.torch itself uses (gate order, the two biases)."""
    import torch

    from fusedrnn.torch._weights import keras_weights as mapped

    with torch.no_grad():
        tensors = mapped(cell, module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0,
                         module.hidden_size)
    return tuple(np.ascontiguousarray(t.numpy()) for t in tensors)


def module_runner(module, mode: str, x, dy) -> Callable[[], object]:
    """One call of a torch module: forward under no_grad, or forward+backward into fresh gradients."""
    import torch

    if mode == "fwd":
        def forward():
            with torch.no_grad():
                return module(x)
        return forward
    xg = x.clone().requires_grad_(True)
    params = list(module.parameters())

    def forward_backward():
        for p in params:
            p.grad = None
        xg.grad = None
        y, _ = module(xg)
        y.backward(dy)
        return xg.grad
    return forward_backward


def make_runners(case: TorchCase) -> Dict[str, Callable[[], object]]:
    """The three implementations of `case` on the same random input and weights, checked to agree."""
    import torch

    import fusedrnn
    import fusedrnn.torch

    torch.manual_seed(0)
    nn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell]
    fused_cls = {"lstm": fusedrnn.torch.LSTM, "gru": fusedrnn.torch.GRU}[case.cell]
    reference = nn_cls(case.I, case.H, batch_first=True)
    module = fused_cls(case.I, case.H, batch_first=True)
    module.load_state_dict(reference.state_dict())
    if not module.fused:
        raise SystemExit(f"{case.cell}: fusedrnn.torch fell back to PyTorch's implementation; nothing to compare")
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((case.B, case.T, case.I), dtype=np.float32)
    dy_np = rng.standard_normal((case.B, case.T, case.H), dtype=np.float32)
    x, dy = torch.from_numpy(x_np), torch.from_numpy(dy_np)
    kernel, recurrent, bias = keras_weights(case.cell, reference)

    with torch.no_grad():
        want = reference(x)[0].numpy()
        got = module(x)[0].numpy()
    raw = contract_runner(fusedrnn.ops, case.cell, "fwd", x_np, kernel, recurrent, bias, dy_np, keep_cache=False)()[0]
    for name, out in (("fused.torch", got), ("raw ops", raw)):
        if not np.allclose(out, want, rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{case.cell} {case.shape} {(case.B, case.T, case.I, case.H)}: {name}'s outputs differ "
                             f"from torch.nn's by up to {np.abs(out - want).max():.2e}")

    return {
        "fused.torch": module_runner(module, case.mode, x, dy),
        "raw ops": contract_runner(fusedrnn.ops, case.cell, case.mode, x_np, kernel, recurrent, bias, dy_np,
                                   keep_cache=False),
        "torch.nn": module_runner(reference, case.mode, x, dy),
    }


def copy_runner(nbytes: int = COPY_BYTES) -> Callable[[], object]:
    """One copy of an nbytes float32 array into another (2 * nbytes of memory traffic)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src)


def time_case(case: TorchCase, repeats: int, settle: float) -> None:
    runners = make_runners(case)
    runners[case.roof] = sgemm_runner(SGEMM_N) if case.roof == "sgemm" else copy_runner()
    for name, run in runners.items():
        run()  # warm-up
        run()
        case.times[name] = []
    for _ in range(repeats):
        for name, run in runners.items():
            busy_wait(settle)
            run()  # untimed: wakes this library's threads after the pause, as in a loop of calls
            t0 = time.perf_counter()
            run()
            case.times[name].append(time.perf_counter() - t0)


# -- output ---------------------------------------------------------------------------------------
def _flag(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISS")


def print_table(cases: List[TorchCase], threads: int) -> None:
    import torch

    print(f"\n{cpu_model()}, threads={threads}, torch {torch.__version__}; {blas_cores()}")
    print("medians; overhead = median over rounds of fused.torch/raw ops - 1; rate: GFLOP/s next to NumPy sgemm "
          "(reference batches) or weight GB/s next to a NumPy copy (batches 1-4), both measured in the same case")
    header = (f"{'cell':5} {'shape':9} {'(B,T,I,H)':19} {'mode':8} {'fused.torch ms':>14} {'raw ops ms':>11} "
              f"{'torch.nn ms':>11} {'overhead':>9} {'nn/fused':>9} {'nn/raw':>7} {'rate':>12} {'roof':>12} "
              f"{'%roof':>6}  {'<=5%':>4} {'>nn':>4}")
    print(header)
    print("-" * len(header))
    for c in cases:
        unit = "GF/s" if c.roof == "sgemm" else "GB/s"
        fused, raw, ref = c.median_ms("fused.torch"), c.median_ms("raw ops"), c.median_ms("torch.nn")
        small_ok, faster = c.targets()
        rate = c.rate("fused.torch")
        print(f"{c.cell:5} {c.shape:9} {str((c.B, c.T, c.I, c.H)):19} {c.mode:8} {fused:14.3f} {raw:11.3f} {ref:11.3f} "
              f"{100 * c.overhead:8.1f}% {ref / fused:8.2f}x {ref / raw:6.2f}x {rate:7.1f} {unit} "
              f"{c.roof_rate:7.1f} {unit} {100 * rate / c.roof_rate:5.0f}%  {_flag(small_ok):>4} {_flag(faster):>4}")
    misses = [c for c in cases if c.targets()[0] is False or c.targets()[1] is False]
    print(f"\ntargets: adapter overhead <= {100 * OVERHEAD_TARGET:.0f} % of the raw ops' time, and faster than torch.nn "
          f"wherever the raw ops are: {len(cases) - len(misses)} of {len(cases)} rows meet both")
    for c in misses:
        small_ok, faster = c.targets()
        what = ([] if small_ok else [f"overhead {100 * c.overhead:.1f} %"]) + ([] if faster is not False else
                                                                              ["slower than torch.nn"])
        print(f"  MISS {c.cell} {c.shape} {(c.B, c.T, c.I, c.H)} {c.mode}: {', '.join(what)}")


def print_markdown(cases: List[TorchCase]) -> None:
    print("\n| cell | shape (B,T,I,H) | mode | fused.torch ms | raw ops ms | torch.nn ms | adapter overhead "
          "| torch.nn / fused.torch | rate | roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        unit = "GFLOP/s" if c.roof == "sgemm" else "GB/s"
        print(f"| {c.cell} | {c.shape} {(c.B, c.T, c.I, c.H)} | {c.mode} | {c.median_ms('fused.torch'):.3f} "
              f"| {c.median_ms('raw ops'):.3f} | {c.median_ms('torch.nn'):.3f} | {100 * c.overhead:.1f} % "
              f"| {c.median_ms('torch.nn') / c.median_ms('fused.torch'):.2f}x | {c.rate('fused.torch'):.1f} {unit} "
              f"| {c.roof_rate:.1f} {unit} ({c.roof}) |")


def write_results(path: str, cases: List[TorchCase], threads: int) -> None:
    """The table as JSON at `path` (atomically)."""
    import torch

    payload = {
        "machine": cpu_model(), "threads": threads, "torch": torch.__version__, "blas": blas_cores(),
        "cases": [{"cell": c.cell, "shape": c.shape, "BTIH": [c.B, c.T, c.I, c.H], "mode": c.mode, "roof": c.roof,
                   "roof_rate": c.roof_rate, "rate_fused_torch": c.rate("fused.torch"), "adapter_overhead": c.overhead,
                   "median_s": {k: statistics.median(v) for k, v in c.times.items()}} for c in cases],
    }
    write_json(path, payload)


def build_cases(args: argparse.Namespace) -> List[TorchCase]:
    cases = []
    for shape in args.shapes:
        B, T, I, H = SHAPES[shape]
        for batch, roof in [(B, "sgemm")] + [(b, "copy") for b in args.batches]:
            for cell in args.cells:
                for mode in ("fwd", "fwd+bwd"):
                    cases.append(TorchCase(cell, shape, batch, T, I, H, mode, roof=roof))
    return cases


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        import torch  # noqa: F401

        import fusedrnn.torch  # noqa: F401
    except ImportError as err:
        print(f"error: this benchmark needs PyTorch and fusedrnn.torch ({err}); pip install \"fusedrnn[torch]\"",
              file=sys.stderr)
        return 2
    configure_threads(args.threads)
    cases = build_cases(args)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):
            return x
    for case in tqdm(cases, desc="benchmark", unit="case", file=sys.stderr):
        time_case(case, args.repeats, args.settle)
    print_table(cases, args.threads)
    if args.markdown:
        print_markdown(cases)
    if args.json:
        write_results(args.json, cases, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
