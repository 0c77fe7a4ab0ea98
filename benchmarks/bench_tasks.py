#!/usr/bin/env python3
"""Task benchmark: one training step of each reference model, fusedrnn against the same model
in TF/Keras, in one process with the same threads.

A step is forward, loss, backward and the optimizer update on one batch, as the tasks' `fit`
runs it (for Keras: ``train_on_batch`` of the compiled model, which runs the same
``tf.function`` train step as ``fit``). Inputs are random ids with the tasks' shapes — the
cost of a step does not depend on the values. Steps are interleaved between the two
implementations in rounds (fusedrnn, Keras, fusedrnn, ...), each after a short busy pause, and
the table reports median milliseconds per step, the Keras/fusedrnn ratio and the time of one
epoch at that rate.

    python benchmarks/bench_tasks.py                  # sentiment and textgen
    python benchmarks/bench_tasks.py --tasks textgen --rounds 5 --steps 20

Models (the tasks' defaults):
  sentiment  Embedding(20000,128) → LSTM(128, dropout .2, recurrent_dropout .2) → Dense(1);
             Adam, binary cross-entropy, batch 32, maxlen 80; 25,000 reviews per epoch.
  textgen    LSTM(128) over 40 one-hot characters (57) → Dense(57); RMSprop(0.01), batch 128;
             190,271 windows per epoch (the Nietzsche text minus its last 5%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import busy_wait, configure_threads  # noqa: E402

EPOCH_EXAMPLES = {"sentiment": 25000, "textgen": 190271}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both libraries")
    p.add_argument("--tasks", nargs="+", default=["sentiment", "textgen"], choices=sorted(EPOCH_EXAMPLES))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    p.add_argument("--steps", type=int, default=15, help="timed steps per implementation per round (default: 15)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default: 5)")
    p.add_argument("--settle", type=float, default=0.15, help="busy pause in seconds before each timed run")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    return p.parse_args(argv)


# -- the models ------------------------------------------------------------------------------
def sentiment_batch(rng: np.random.Generator, batch: int = 32, maxlen: int = 80, words: int = 20000):
    x = rng.integers(1, words, (batch, maxlen)).astype(np.int32)
    y = rng.integers(0, 2, batch)
    return x, y


def textgen_batch(rng: np.random.Generator, batch: int = 128, maxlen: int = 40, chars: int = 57):
    return rng.integers(0, chars, (batch, maxlen)).astype(np.int32), rng.integers(0, chars, batch)


def fusedrnn_step(task: str, rng: np.random.Generator) -> Callable[[], None]:
    from fusedrnn.training import train_step

    if task == "sentiment":
        from fusedrnn.optimizers import Adam
        from fusedrnn.tasks import sentiment

        model, loss, opt = sentiment.build_model(sentiment.SentimentConfig()), sentiment.loss_from_logits, Adam()
        x, y = sentiment_batch(rng)
    else:
        from fusedrnn.optimizers import RMSprop
        from fusedrnn.tasks import textgen

        model, loss, opt = textgen.build_model(57, 128, 0), textgen.loss_from_logits, RMSprop(learning_rate=0.01)
        x, y = textgen_batch(rng)
    return lambda: train_step(model, loss, opt, x, y)


def keras_step(task: str, rng: np.random.Generator) -> Callable[[], None]:
    import keras

    if task == "sentiment":
        model = keras.Sequential([keras.Input((80,), dtype="int32"), keras.layers.Embedding(20000, 128),
                                  keras.layers.LSTM(128, dropout=0.2, recurrent_dropout=0.2),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy", metrics=["accuracy"])
        x, y = sentiment_batch(rng)
        y = y.astype(np.float32)
    else:
        model = keras.Sequential([keras.Input((40, 57)), keras.layers.LSTM(128),
                                  keras.layers.Dense(57, activation="softmax")])
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        ids, labels = textgen_batch(rng)
        eye = np.eye(57, dtype=np.float32)
        x, y = eye[ids], eye[labels]
    return lambda: model.train_on_batch(x, y)


def time_steps(step: Callable[[], None], n: int, settle: float) -> List[float]:
    busy_wait(settle)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    import platform

    rng = np.random.default_rng(0)
    rows: List[Dict[str, object]] = []
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}")
    for task in args.tasks:
        steps = {"fusedrnn": fusedrnn_step(task, rng), "keras": keras_step(task, rng)}
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        times: Dict[str, List[float]] = {k: [] for k in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name].extend(time_steps(step, args.steps, args.settle))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        batch = 32 if task == "sentiment" else 128
        epoch_steps = -(-EPOCH_EXAMPLES[task] // batch)
        rows.append({"task": task, "fusedrnn_ms": med["fusedrnn"], "keras_ms": med["keras"],
                     "ratio": med["keras"] / med["fusedrnn"], "epoch_steps": epoch_steps,
                     "fusedrnn_epoch_s": med["fusedrnn"] * epoch_steps / 1e3,
                     "keras_epoch_s": med["keras"] * epoch_steps / 1e3})
    header = (f"{'task':<10} {'fusedrnn ms/step':>17} {'Keras ms/step':>14} {'Keras/fusedrnn':>15} "
              f"{'epoch fusedrnn':>15} {'epoch Keras':>12}")
    print(header)
    for r in rows:
        print(f"{r['task']:<10} {r['fusedrnn_ms']:>17.2f} {r['keras_ms']:>14.2f} {r['ratio']:>14.2f}x "
              f"{r['fusedrnn_epoch_s']:>14.1f}s {r['keras_epoch_s']:>11.1f}s")
    if args.markdown:
        print("\n| task | fusedrnn ms/step | Keras ms/step | Keras / fusedrnn | epoch, fusedrnn | epoch, Keras |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['task']} | {r['fusedrnn_ms']:.1f} | {r['keras_ms']:.1f} | {r['ratio']:.2f}x | "
                  f"{r['fusedrnn_epoch_s']:.0f} s | {r['keras_epoch_s']:.0f} s |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
