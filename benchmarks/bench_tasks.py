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

    python benchmarks/bench_tasks.py                  # sentiment, textgen and translate
    python benchmarks/bench_tasks.py --tasks textgen --rounds 5 --steps 20

Models (the tasks' defaults):
  sentiment  Embedding(20000,128) → LSTM(128, dropout .2, recurrent_dropout .2) → Dense(1);
             Adam, binary cross-entropy, batch 32, maxlen 80; 25,000 reviews per epoch.
  textgen    LSTM(128) over 40 one-hot characters (57) → Dense(57); RMSprop(0.01), batch 128;
             190,271 windows per epoch (the Nietzsche text minus its last 5%).
  translate  Embedding(9414,256) → GRU(1024) encoder over 16 Spanish tokens; 10 decoder steps of
             Bahdanau attention(1024), concat with Embedding(4935,256), GRU(1024) → Dense(4935);
             masked cross-entropy, Adam, batch 64; 24,000 pairs per epoch (the task's defaults:
             the first 30,000 pairs, 80% for training). In Keras: the TensorFlow tutorial's
             layers with the decoder state carried from step to step, as in fusedrnn, in one
             tf.function train step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import busy_wait, configure_threads, write_json  # noqa: E402

EPOCH_EXAMPLES = {"sentiment": 25000, "textgen": 190271, "translate": 24000}
BATCH = {"sentiment": 32, "textgen": 128, "translate": 64}
TRANSLATE = {"source_vocab": 9414, "target_vocab": 4935, "source_len": 16, "target_len": 10, "embedding": 256,
             "units": 1024}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both libraries")
    p.add_argument("--tasks", nargs="+", default=list(EPOCH_EXAMPLES), choices=list(EPOCH_EXAMPLES))
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


def translate_batch(rng: np.random.Generator, batch: int = 64, shapes: Optional[Dict[str, int]] = None):
    """(source (B, Ts), target_in (B, Tt), target_out (B, Tt)) random ids; `shapes` as TRANSLATE."""
    t = shapes or TRANSLATE
    source = rng.integers(1, t["source_vocab"], (batch, t["source_len"])).astype(np.int32)
    target = rng.integers(1, t["target_vocab"], (batch, t["target_len"] + 1)).astype(np.int32)
    return source, target[:, :-1], target[:, 1:]


def fusedrnn_translate_step(rng: np.random.Generator, batch: int = BATCH["translate"],
                            shapes: Optional[Dict[str, int]] = None) -> Callable[[], None]:
    """One training step of the translation model (`shapes` as TRANSLATE, the default) on a
    random batch, as the task's `fit` runs it: forward, masked loss, backward, Adam."""
    from fusedrnn.optimizers import Adam
    from fusedrnn.tasks.seq2seq import AttentionSeq2Seq, masked_sequence_loss
    from fusedrnn.training import train_step

    t = shapes or TRANSLATE
    model = AttentionSeq2Seq(t["source_vocab"], t["target_vocab"], t["embedding"], t["units"], seed=0)
    source, target_in, target_out = translate_batch(rng, batch, t)
    opt = Adam()
    return lambda: train_step(model, masked_sequence_loss, opt, (source, target_in), target_out)


def fusedrnn_step(task: str, rng: np.random.Generator) -> Callable[[], None]:
    from fusedrnn.training import train_step

    if task == "translate":
        return fusedrnn_translate_step(rng)
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


def keras_translate_step(rng: np.random.Generator) -> Callable[[], None]:
    """The translation model in Keras 3 / TF: one tf.function train step, like the tutorial's."""
    import keras
    import tensorflow as tf

    t = TRANSLATE
    units = t["units"]
    source_embedding = keras.layers.Embedding(t["source_vocab"], t["embedding"], mask_zero=True)
    encoder = keras.layers.GRU(units, return_sequences=True, return_state=True,
                               recurrent_initializer="glorot_uniform")
    W1, W2, V = keras.layers.Dense(units), keras.layers.Dense(units), keras.layers.Dense(1)
    target_embedding = keras.layers.Embedding(t["target_vocab"], t["embedding"])
    decoder = keras.layers.GRUCell(units, recurrent_initializer="glorot_uniform")
    output = keras.layers.Dense(t["target_vocab"])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam()
    source, target_in, target_out = (tf.constant(a) for a in translate_batch(rng))

    def forward(src, tin):
        emb = source_embedding(src)
        values, state = encoder(emb, mask=src != 0)
        keys = W2(values)
        src_mask = tf.cast(src != 0, tf.float32)[:, :, None]
        states = []
        for step in range(t["target_len"]):
            score = V(tf.tanh(W1(state)[:, None, :] + keys)) - 1e9 * (1.0 - src_mask)
            weights = tf.nn.softmax(score, axis=1)
            context = tf.reduce_sum(weights * values, axis=1)
            x = tf.concat([context, target_embedding(tin[:, step])], axis=-1)
            state, _ = decoder(x, [state])
            states.append(state)
        return output(tf.stack(states, axis=1))

    forward(source, target_in)  # builds the layers
    layers = [source_embedding, encoder, W1, W2, V, target_embedding, decoder, output]
    variables = [v for layer in layers for v in layer.trainable_variables]

    @tf.function
    def step(src, tin, tout):
        with tf.GradientTape() as tape:
            logits = forward(src, tin)
            loss = loss_fn(tout, logits, sample_weight=tf.cast(tout != 0, tf.float32))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return lambda: step(source, target_in, target_out)


def keras_step(task: str, rng: np.random.Generator) -> Callable[[], None]:
    import keras

    if task == "translate":
        return keras_translate_step(rng)
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
        epoch_steps = -(-EPOCH_EXAMPLES[task] // BATCH[task])
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
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
