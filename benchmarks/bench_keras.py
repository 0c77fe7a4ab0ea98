#!/usr/bin/env python3
"""Keras drop-in benchmark: the training step of the two Keras example models under ``model.fit``,
stock Keras against ``fusedrnn.keras``, and fusedrnn's own toolkit step for the same model.

The models are the examples' own ``build_model()`` (``examples/keras_imdb_sentiment*.py`` and
``examples/keras_nietzsche_textgen*.py``, whose two copies differ by the LSTM import alone), so
the benchmark times exactly what a user runs:

  sentiment  Embedding(20000, 128) -> LSTM(128, dropout 0.2, recurrent_dropout 0.2) -> Dense(1,
             sigmoid); Adam, binary cross-entropy, batch 32, 80 words.
  textgen    LSTM(128) over 40 one-hot characters (57) -> Dense(57, softmax); RMSprop(0.01),
             sparse categorical cross-entropy, batch 128.

A step is one batch of ``model.fit`` (forward, loss, backward, optimizer update, the metrics and
fit's own per-batch work), timed from ``on_train_batch_begin`` to ``on_train_batch_end`` by a
callback; each timed run is one ``fit`` call over ``--steps`` batches of random inputs with the
task's shapes (the cost does not depend on the values). The toolkit step is
``fusedrnn.training.train_step`` on the model of ``fusedrnn train sentiment/textgen`` (the
tasks' step, as in bench_tasks.py: integer character ids instead of one-hot input there). The
implementations run in the same process with the same threads, interleaved in rounds (stock,
drop-in, toolkit, sgemm, ...) after a short busy pause each; the table gives medians.

Targets (issue 19): the drop-in >= 3x faster than stock for sentiment (recurrent_dropout=0.2)
and >= 2x for textgen; the drop-in's step within 1.3x of the toolkit step.
GFLOP/s: the LSTM's forward and backward arithmetic (3 x 2*B*T*(I+H)*4H, the same formula for
every implementation), next to a 1024^3 NumPy sgemm timed in the same rounds.

    python benchmarks/bench_keras.py              # both models, 5 rounds of 10 steps
    python benchmarks/bench_keras.py --quick      # smoke run: 2 rounds of 3 steps
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import blas_cores, busy_wait, configure_threads, cpu_model, sgemm_runner, write_json  # noqa: E402

EXAMPLES = HERE.parent / "examples"
TASKS = {
    #          example file stem,        batch, steps T, input features I, units H, target speed-up
    "sentiment": ("keras_imdb_sentiment", 32, 80, 128, 128, 3.0),
    "textgen": ("keras_nietzsche_textgen", 128, 40, 57, 128, 2.0),
}
TOOLKIT_TARGET = 1.3
CHARS = 57


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every library")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per implementation per round (default: 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (default: 3)")
    p.add_argument("--settle", type=float, default=0.15, help="busy pause in seconds before each timed run")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 3 steps, 1 warm-up step")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup, args.settle = 2, 3, 1, 0.05
    return args


def load_example(stem: str) -> Any:
    """The example script as a module (its ``main`` does not run)."""
    path = EXAMPLES / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the steps ---------------------------------------------------------------------------------
class StepTimes:
    """A Keras callback collecting the seconds of each training batch."""

    def __init__(self) -> None:
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_begin(cb, batch, logs=None):
                cb.start = time.perf_counter()

            def on_train_batch_end(cb, batch, logs=None):
                self.times.append(time.perf_counter() - cb.start)

        self.times: List[float] = []
        self.callback = _Callback()


def task_data(task: str, steps: int, rng: np.random.Generator):
    """(x, y) for `steps` batches of the Keras models, and one batch (x, y) for the toolkit."""
    _, batch, T, _, _, _ = TASKS[task]
    n = batch * steps
    if task == "sentiment":
        x = rng.integers(1, 20000, (n, T)).astype(np.int32)
        y = rng.integers(0, 2, n).astype(np.float32)
        return (x, y), (x[:batch], y[:batch].astype(np.int64))
    ids = rng.integers(0, CHARS, (n, T)).astype(np.int32)
    y = rng.integers(0, CHARS, n).astype(np.int32)
    x = np.eye(CHARS, dtype=np.float32)[ids]
    return (x, y), (ids[:batch], y[:batch].astype(np.int64))


def keras_runner(model: Any, x: np.ndarray, y: np.ndarray, batch: int) -> Callable[[], List[float]]:
    """One ``model.fit`` over (x, y); returns the seconds of each batch."""
    def run() -> List[float]:
        timer = StepTimes()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer.callback])
        return timer.times
    return run


def toolkit_runner(task: str, x: np.ndarray, y: np.ndarray, steps: int) -> Callable[[], List[float]]:
    """fusedrnn's own training step (the task's model, loss and optimizer), `steps` times."""
    from fusedrnn.training import train_step

    if task == "sentiment":
        from fusedrnn.optimizers import Adam
        from fusedrnn.tasks import sentiment

        model, loss, opt = sentiment.build_model(sentiment.SentimentConfig()), sentiment.loss_from_logits, Adam()
    else:
        from fusedrnn.optimizers import RMSprop
        from fusedrnn.tasks import textgen

        model, loss, opt = textgen.build_model(CHARS, 128, 0), textgen.loss_from_logits, RMSprop(learning_rate=0.01)

    def run() -> List[float]:
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            train_step(model, loss, opt, x, y)
            out.append(time.perf_counter() - t0)
        return out
    return run


def sgemm_times(steps: int) -> Callable[[], List[float]]:
    gemm = sgemm_runner(1024)

    def run() -> List[float]:
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            gemm()
            out.append(time.perf_counter() - t0)
        return out
    return run


def lstm_gflop(task: str) -> float:
    _, B, T, I, H, _ = TASKS[task]
    return 3 * 2 * B * T * (I + H) * 4 * H / 1e9


# -- the benchmark -----------------------------------------------------------------------------
def bench_task(task: str, args: argparse.Namespace, rng: np.random.Generator) -> Dict[str, Any]:
    stem, batch, _, _, _, target = TASKS[task]
    dropin_example, stock_example = load_example(stem), load_example(f"{stem}_stock")
    build = (lambda m: m.build_model()) if task == "sentiment" else (lambda m: m.build_model(CHARS))
    stock, dropin = build(stock_example), build(dropin_example)
    dropin.set_weights(stock.get_weights())
    lstm = next(layer for layer in dropin.layers if "LSTM" in type(layer).__name__)
    if not getattr(lstm, "fused", False):
        raise SystemExit(f"{task}: the drop-in LSTM does not run the fused kernels: {lstm.fused_reason}")
    (x, y), (tx, ty) = task_data(task, args.steps, rng)
    runners = {"stock": keras_runner(stock, x, y, batch), "drop-in": keras_runner(dropin, x, y, batch),
               "toolkit": toolkit_runner(task, tx, ty, args.steps), "sgemm": sgemm_times(args.steps)}
    for run in runners.values():   # traces the train functions, warms caches and thread pools
        for _ in range(max(1, -(-args.warmup // args.steps))):
            run()
    times: Dict[str, List[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            busy_wait(args.settle)
            times[name].extend(run())
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    gflop = lstm_gflop(task)
    return {"task": task, "stock_ms": med["stock"], "dropin_ms": med["drop-in"], "toolkit_ms": med["toolkit"],
            "speedup": med["stock"] / med["drop-in"], "target_speedup": target,
            "dropin_over_toolkit": med["drop-in"] / med["toolkit"], "target_dropin_over_toolkit": TOOLKIT_TARGET,
            "dropin_lstm_gflops": gflop / med["drop-in"] * 1e3, "stock_lstm_gflops": gflop / med["stock"] * 1e3,
            "sgemm_gflops": 2 * 1024 ** 3 / 1e9 / med["sgemm"] * 1e3, "samples": len(times["stock"])}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_table(rows: List[Dict[str, Any]], markdown: bool) -> None:
    print(f"{'model':<10} {'stock ms':>9} {'drop-in ms':>11} {'toolkit ms':>11} {'stock/drop-in':>14} "
          f"{'drop-in/toolkit':>16} {'LSTM GFLOP/s stock, drop-in':>28} {'sgemm GFLOP/s':>14}")
    for r in rows:
        print(f"{r['task']:<10} {r['stock_ms']:>9.1f} {r['dropin_ms']:>11.1f} {r['toolkit_ms']:>11.1f} "
              f"{r['speedup']:>13.2f}x {r['dropin_over_toolkit']:>15.2f}x "
              f"{r['stock_lstm_gflops']:>13.1f}, {r['dropin_lstm_gflops']:>12.1f} {r['sgemm_gflops']:>14.1f}")
    for r in rows:
        print(f"target {r['task']}: drop-in >= {r['target_speedup']:.0f}x faster than stock: "
              f"{r['speedup']:.2f}x, {verdict(r['speedup'] >= r['target_speedup'])}; drop-in within "
              f"{r['target_dropin_over_toolkit']}x of the toolkit step: {r['dropin_over_toolkit']:.2f}x, "
              f"{verdict(r['dropin_over_toolkit'] <= r['target_dropin_over_toolkit'])}")
    if markdown:
        print("\n| model | stock Keras ms/step | fusedrnn.keras ms/step | toolkit ms/step | stock / drop-in "
              "| drop-in / toolkit |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['task']} | {r['stock_ms']:.1f} | {r['dropin_ms']:.1f} | {r['toolkit_ms']:.1f} | "
                  f"{r['speedup']:.2f}x | {r['dropin_over_toolkit']:.2f}x |")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    import keras
    import tensorflow as tf

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"Keras {keras.__version__}, TensorFlow {tf.__version__}; {blas_cores()}")
    print(f"{args.rounds} rounds x {args.steps} steps per implementation, medians of all steps")
    rng = np.random.default_rng(0)
    rows = [bench_task(task, args, rng) for task in args.tasks]
    print_table(rows, args.markdown)
    if args.json:
        write_json(args.json, {"machine": cpu_model(), "threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
