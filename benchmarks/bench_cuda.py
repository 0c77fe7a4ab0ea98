#!/usr/bin/env python3
"""Benchmark fusedrnn's CUDA backend against cuDNN (through PyTorch) on one GPU.

For each cell (LSTM, GRU with reset_after=True, SimpleRNN tanh) and shape (B, T, I, H) it times
fusedrnn's ops on torch CUDA tensors and torch.nn.LSTM/GRU/RNN (cuDNN) at the same precision:

* ``forward``: inference forward (torch under no_grad);
* ``train``: forward + backward (every gradient: inputs, initial state, weights).

Timing: CUDA events around each run on the current stream, warm-up runs first, the two
implementations interleaved run by run (so clock and thermal drift hit both alike), medians
reported with the interquartile range. Achieved TFLOP/s count the GEMM work only
(forward 2*B*T*(I+H)*G*H flops, training 3x that) and are set against a measured cuBLAS GEMM
rate (torch.matmul on square matrices of --gemm-size at the same precision and TF32 setting).

Shapes: the three reference tasks, (B, T, I, H) = (32, 80, 128, 128), (128, 40, 57, 128),
(64, 16, 256, 1024), and a batch sweep B = 1, 8, 32, 128, 512 at T = 100, I = H, for H = 512 and
1024 (``--quick`` keeps the reference tasks only).

Results are printed as a table and, with --json PATH, written atomically (temporary file in the
same folder, then renamed) as a JSON document with the environment, settings and every timing.

Needs: a CUDA GPU, PyTorch with CUDA, and fusedrnn built with its CUDA backend (docs/cuda.md).
This file imports none of them until it runs, so ``--help`` works anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
REFERENCE_SHAPES = [(32, 80, 128, 128), (128, 40, 57, 128), (64, 16, 256, 1024)]
SWEEP_BATCHES = [1, 8, 32, 128, 512]
SWEEP_UNITS = [512, 1024]
SWEEP_STEPS = 100


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_cuda.py --dtype float32 --json out/bench_cuda.json")
    p.add_argument("--cells", default="lstm,gru,rnn", help="comma-separated cells (lstm, gru, rnn); default all")
    p.add_argument("--modes", default="forward,train", help="forward, train or both (default both)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="precision of both sides")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 tensor-core GEMMs for float32 on both sides (default: off, exact float32)")
    p.add_argument("--quick", action="store_true", help="reference-task shapes only, no batch sweep")
    p.add_argument("--shapes", default="",
                   help="explicit shapes 'B,T,I,H;B,T,I,H;...' instead of the default set")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per implementation and shape (default 3)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per implementation and shape (default 15)")
    p.add_argument("--gemm-size", type=int, default=8192, help="square GEMM size for the cuBLAS rate (default 8192)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop adding shapes after this many seconds (0: no limit)")
    p.add_argument("--json", default="", help="write the results to this JSON file (atomically)")
    p.add_argument("--device", type=int, default=0, help="CUDA device ordinal (default 0)")
    args = p.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for c in args.cells:
        if c not in GATES:
            p.error(f"--cells: unknown cell {c!r}")
    for m in args.modes:
        if m not in ("forward", "train"):
            p.error(f"--modes: unknown mode {m!r}")
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def shapes_from(args) -> List[Tuple[int, int, int, int]]:
    if args.shapes:
        out = []
        for part in args.shapes.split(";"):
            dims = tuple(int(v) for v in part.split(","))
            if len(dims) != 4 or min(dims) < 1:
                raise SystemExit(f"--shapes: expected B,T,I,H with positive sizes, got {part!r}")
            out.append(dims)
        return out
    shapes = list(REFERENCE_SHAPES)
    if not args.quick:
        shapes += [(b, SWEEP_STEPS, h, h) for h in SWEEP_UNITS for b in SWEEP_BATCHES]
    return shapes


def gemm_flops(cell: str, B: int, T: int, I: int, H: int, mode: str) -> float:
    fwd = 2.0 * B * T * (I + H) * GATES[cell] * H
    return fwd if mode == "forward" else 3.0 * fwd


def write_json_atomically(path: str, doc: Dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bench_cuda.", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# Everything below needs torch with CUDA and fusedrnn._cuda
# ---------------------------------------------------------------------------------------------
class Timer:
    """Times a callable on the current stream with CUDA events (milliseconds)."""

    def __init__(self, torch):
        self.torch = torch

    def once(self, fn: Callable[[], Any]) -> float:
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))


def summarize(times: List[float]) -> Dict[str, float]:
    s = sorted(times)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
    return {"median_ms": statistics.median(s), "q1_ms": q[0], "q3_ms": q[2], "min_ms": s[0], "runs": len(s)}


def measure_gemm_rate(torch, n: int, dtype, timer: Timer, repeats: int = 10) -> float:
    """TFLOP/s of a square n x n GEMM (torch.matmul -> cuBLAS) at this precision."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    times = [timer.once(lambda: torch.matmul(a, b)) for _ in range(repeats)]
    return 2.0 * n ** 3 / (statistics.median(times) * 1e-3) / 1e12


def fusedrnn_ops():
    """fusedrnn.ops (it dispatches CUDA arrays to the CUDA backend)."""
    import fusedrnn.ops

    return fusedrnn.ops


class Case:
    """One cell and shape: inputs, weights, both implementations' callables."""

    def __init__(self, torch, cell: str, B: int, T: int, I: int, H: int, dtype):
        self.torch, self.cell = torch, cell
        G = GATES[cell]
        g = torch.Generator(device="cuda").manual_seed(1234)

        def rand(*shape, scale=1.0):
            return (torch.rand(*shape, device="cuda", dtype=dtype, generator=g) * 2 - 1) * scale

        self.x = rand(B, T, I)
        self.h0 = rand(B, H, scale=0.5)
        self.c0 = rand(B, H, scale=0.5) if cell == "lstm" else None
        self.kernel = rand(I, G * H, scale=I ** -0.5)
        self.rec = rand(H, G * H, scale=H ** -0.5)
        self.bias = rand(2, G * H, scale=0.1) if cell == "gru" else rand(G * H, scale=0.1)
        self.d_out = rand(B, T, H)
        self.d_h = rand(B, H)
        self.d_c = rand(B, H) if cell == "lstm" else None
        self.ops = fusedrnn_ops()

        # cuDNN module with the same weights (gate mapping: docs/cuda.md).
        if cell == "lstm":
            m = torch.nn.LSTM(I, H, batch_first=True)
        elif cell == "gru":
            m = torch.nn.GRU(I, H, batch_first=True)
        else:
            m = torch.nn.RNN(I, H, nonlinearity="tanh", batch_first=True)
        self.module = m.to(device="cuda", dtype=dtype)

        def gru_rows(a):  # Keras z, r, h -> torch r, z, n (last axis)
            return torch.cat([a[..., H:2 * H], a[..., :H], a[..., 2 * H:]], dim=-1)

        with torch.no_grad():
            if cell == "gru":
                self.module.weight_ih_l0.copy_(gru_rows(self.kernel).t())
                self.module.weight_hh_l0.copy_(gru_rows(self.rec).t())
                self.module.bias_ih_l0.copy_(gru_rows(self.bias[0]))
                self.module.bias_hh_l0.copy_(gru_rows(self.bias[1]))
            else:
                self.module.weight_ih_l0.copy_(self.kernel.t())
                self.module.weight_hh_l0.copy_(self.rec.t())
                self.module.bias_ih_l0.copy_(self.bias)
                self.module.bias_hh_l0.zero_()
        self.module.flatten_parameters()
        self.xt = self.x.clone().requires_grad_(True)
        self.h0t = self.h0[None].clone().requires_grad_(True)
        self.c0t = self.c0[None].clone().requires_grad_(True) if self.c0 is not None else None

    # fusedrnn
    def ours_forward(self):
        if self.cell == "lstm":
            return self.ops.lstm_forward(self.x, self.h0, self.c0, self.kernel, self.rec, self.bias)
        if self.cell == "gru":
            return self.ops.gru_forward(self.x, self.h0, self.kernel, self.rec, self.bias, reset_after=True)
        return self.ops.rnn_forward(self.x, self.h0, self.kernel, self.rec, self.bias)

    def ours_train(self):
        res = self.ours_forward()
        if self.cell == "lstm":
            return self.ops.lstm_backward(res[-1], self.d_out, self.d_h, self.d_c)
        return getattr(self.ops, f"{self.cell}_backward")(res[-1], self.d_out, self.d_h)

    # cuDNN
    def _torch_run(self, x, h0, c0):
        if self.cell == "lstm":
            out, (hn, cn) = self.module(x, (h0, c0))
            return out, hn, cn
        out, hn = self.module(x, h0)
        return out, hn, None

    def cudnn_forward(self):
        with self.torch.no_grad():
            return self._torch_run(self.x, self.h0[None], None if self.c0 is None else self.c0[None])

    def cudnn_train(self):
        out, hn, cn = self._torch_run(self.xt, self.h0t, self.c0t)
        grads_in = [self.d_out, self.d_h[None]] + ([self.d_c[None]] if cn is not None else [])
        outs = [out, hn] + ([cn] if cn is not None else [])
        inputs = [self.xt, self.h0t] + ([self.c0t] if self.c0t is not None else []) + list(self.module.parameters())
        return self.torch.autograd.grad(outs, inputs, grads_in)


def run(args) -> int:
    try:
        import torch
    except ImportError:
        print("bench_cuda: needs PyTorch with CUDA (pip install torch)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench_cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    from fusedrnn import _device

    if not _device.cuda_available():
        print(f"bench_cuda: fusedrnn's CUDA backend is not usable: {_device.cuda_unavailable_reason()}",
              file=sys.stderr)
        return 2
    cuda = _device.cuda_module()
    torch.cuda.set_device(args.device)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    cuda.set_allow_tf32(args.tf32)
    cuda.set_poison_outputs(False)
    cuda.set_sync_after_ops(False)
    timer = Timer(torch)

    gemm_tflops = measure_gemm_rate(torch, args.gemm_size, dtype, timer)
    import fusedrnn

    env = {
        "device": torch.cuda.get_device_name(args.device),
        "capability": list(torch.cuda.get_device_capability(args.device)),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "fusedrnn": fusedrnn.__version__,
        "fusedrnn_cuda_build": dict(cuda.build_info()), "python": platform.python_version(),
        "host": platform.node(),
    }
    settings = {"dtype": args.dtype, "tf32": args.tf32, "warmup": args.warmup, "repeats": args.repeats,
                "gemm_size": args.gemm_size, "gemm_tflops": gemm_tflops}
    print(f"# {env['device']}  torch {env['torch']} (CUDA {env['torch_cuda']}, cuDNN {env['cudnn']})  "
          f"dtype {args.dtype}{' +TF32' if args.tf32 else ''}")
    print(f"# cuBLAS GEMM {args.gemm_size}^3: {gemm_tflops:.1f} TFLOP/s")
    header = (f"{'cell':5} {'mode':7} {'B':>4} {'T':>4} {'I':>5} {'H':>5} | {'fusedrnn ms':>11} {'cuDNN ms':>9} "
              f"{'ratio':>6} | {'TFLOP/s':>7} {'%gemm':>6}")
    print(header)
    print("-" * len(header))

    results = []
    started = time.monotonic()
    for (B, T, I, H) in shapes_from(args):
        if args.max_seconds and time.monotonic() - started > args.max_seconds:
            print(f"# stopping: --max-seconds {args.max_seconds} reached")
            break
        for cell in args.cells:
            case = Case(torch, cell, B, T, I, H, dtype)
            for mode in args.modes:
                ours = case.ours_forward if mode == "forward" else case.ours_train
                ref = case.cudnn_forward if mode == "forward" else case.cudnn_train
                for _ in range(args.warmup):
                    ours()
                    ref()
                torch.cuda.synchronize()
                t_ours, t_ref = [], []
                for k in range(args.repeats):  # interleaved, alternating which goes first
                    if k % 2 == 0:
                        t_ours.append(timer.once(ours))
                        t_ref.append(timer.once(ref))
                    else:
                        t_ref.append(timer.once(ref))
                        t_ours.append(timer.once(ours))
                s_ours, s_ref = summarize(t_ours), summarize(t_ref)
                flops = gemm_flops(cell, B, T, I, H, mode)
                tflops = flops / (s_ours["median_ms"] * 1e-3) / 1e12
                row = {"cell": cell, "mode": mode, "B": B, "T": T, "I": I, "H": H, "fusedrnn": s_ours, "cudnn": s_ref,
                       "ratio_fusedrnn_over_cudnn": s_ours["median_ms"] / s_ref["median_ms"],
                       "gemm_flops": flops, "fusedrnn_tflops": tflops,
                       "cudnn_tflops": flops / (s_ref["median_ms"] * 1e-3) / 1e12,
                       "fraction_of_gemm_rate": tflops / gemm_tflops}
                results.append(row)
                print(f"{cell:5} {mode:7} {B:>4} {T:>4} {I:>5} {H:>5} | {s_ours['median_ms']:>11.3f} "
                      f"{s_ref['median_ms']:>9.3f} {row['ratio_fusedrnn_over_cudnn']:>6.2f} | {tflops:>7.2f} "
                      f"{100 * row['fraction_of_gemm_rate']:>5.1f}%", flush=True)
            del case
            torch.cuda.empty_cache()

    if args.json:
        doc = {"benchmark": "fusedrnn CUDA vs cuDNN", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "environment": env, "settings": settings, "results": results,
               "notes": "ratio < 1: fusedrnn faster. TFLOP/s count GEMM flops only "
                        "(forward 2*B*T*(I+H)*G*H, train 3x)."}
        write_json_atomically(args.json, doc)
        print(f"# wrote {args.json}")
    return 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
