#!/usr/bin/env python3
"""CPU benchmark of the attention kernels: fusedrnn against TF/Keras and the NumPy reference.

Shapes are the translation task's: batch B=64, source length Tv=16, features D=Dv=1024, and a
query of Tq=1 (one decoder step, the inner loop of decoding) or Tq=11 (a whole target
sentence, teacher forcing). Cases:

* ``dot``       keras.layers.Attention(use_scale=True)   vs fusedrnn.ops.dot_attention_*
* ``additive``  keras.layers.AdditiveAttention()          vs fusedrnn.ops.additive_attention_*
* ``bahdanau``  the TF NMT tutorial's BahdanauAttention(1024) (Dense W1, W2, V) for one decoder
  step vs fusedrnn.BahdanauAttention(1024); ``bahdanau+keys`` is fusedrnn with the key
  projection computed once per sentence (``projected_keys``), as a decoding loop does.

Every implementation runs in this one process with the same number of threads. Timings are
interleaved (fusedrnn, Keras, NumPy, fusedrnn, ...) so that a slow spell of the machine hits all
of them alike; the table shows medians and each peer's time divided by fusedrnn's. The key
defaults to the value (encoder outputs), as in the encoder-decoder models. Forward+backward
computes every input and weight gradient.

    python benchmarks/bench_attention.py
    python benchmarks/bench_attention.py --cases dot additive --tq 1 --repeats 50 --json out.json
    python benchmarks/bench_attention.py --min-table    # also the best case of the repeats (busy machines)
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
from _common import configure_threads, write_json  # noqa: E402

B, TV, D = 64, 16, 1024
KINDS = ("dot", "additive", "bahdanau")
PEERS = ("fusedrnn", "keras", "numpy")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every library (default: all cores)")
    p.add_argument("--cases", nargs="+", default=list(KINDS), choices=list(KINDS), help="attention forms to time")
    p.add_argument("--tq", nargs="+", type=int, default=[1, 11], help="query lengths (dot, additive)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per implementation (median reported)")
    p.add_argument("--numpy-repeats", type=int, default=5, help="timed runs of the slow NumPy reference")
    p.add_argument("--min-table", action="store_true",
                   help="also print the best case (min) of the repeats: robust when other processes share the cores")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (median and min)")
    return p.parse_args(argv)


@dataclass
class Case:
    kind: str      # dot, additive, bahdanau, bahdanau+keys
    tq: int
    mode: str      # fwd or fwd+bwd
    times: Dict[str, List[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind:14} {str((B, self.tq, TV, D)):20} {self.mode:8}"


def make_inputs(tq: int):
    rng = np.random.default_rng(0)
    query = (rng.standard_normal((B, tq, D)) * 0.05).astype(np.float32)
    value = rng.standard_normal((B, TV, D)).astype(np.float32)
    d_context = rng.standard_normal((B, tq, D)).astype(np.float32)
    dot_scale = np.float32(1.0 / np.sqrt(D))
    add_scale = rng.uniform(-np.sqrt(3.0 / D), np.sqrt(3.0 / D), D).astype(np.float32)
    limit = np.sqrt(6.0 / (2 * D))
    W1 = rng.uniform(-limit, limit, (D, D)).astype(np.float32)
    W2 = rng.uniform(-limit, limit, (D, D)).astype(np.float32)
    v = rng.uniform(-np.sqrt(6.0 / (D + 1)), np.sqrt(6.0 / (D + 1)), D).astype(np.float32)
    return dict(query=query, value=value, d_context=d_context, dot_scale=dot_scale, add_scale=add_scale,
                W1=W1, W2=W2, v=v)


# -- implementations: each returns a zero-argument callable that runs one timed unit ------------
def fused_runner(case: Case, x) -> Optional[Callable[[], object]]:
    import fusedrnn
    from fusedrnn import ops

    q, val, dc = x["query"], x["value"], x["d_context"]
    if case.kind in ("dot", "additive"):
        fwd_op = ops.dot_attention_forward if case.kind == "dot" else ops.additive_attention_forward
        bwd_op = ops.dot_attention_backward if case.kind == "dot" else ops.additive_attention_backward
        scale = x["dot_scale"] if case.kind == "dot" else x["add_scale"]
        if case.mode == "fwd":
            return lambda: fwd_op(q, val, scale=scale)
        return lambda: bwd_op(fwd_op(q, val, scale=scale)[2], dc)
    layer = fusedrnn.BahdanauAttention(D)
    layer.set_weights([x["W1"], x["W2"], x["v"]])
    q2, dc2 = np.ascontiguousarray(q[:, 0]), np.ascontiguousarray(dc[:, 0])
    if case.kind == "bahdanau+keys":
        keys = layer.project_keys(val)
        return lambda: layer(q2, val, projected_keys=keys)
    if case.mode == "fwd":
        return lambda: layer(q2, val)

    def step():
        layer(q2, val)
        return layer.backward(dc2)
    return step


def keras_runner(case: Case, x) -> Optional[Callable[[], object]]:
    if case.kind == "bahdanau+keys":
        return None
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    q, val, dc = (tf.constant(x[k]) for k in ("query", "value", "d_context"))
    if case.kind in ("dot", "additive"):
        if case.kind == "dot":
            layer = keras.layers.Attention(use_scale=True)
            layer.build([q.shape, val.shape])
            layer.set_weights([np.asarray(x["dot_scale"])])
        else:
            layer = keras.layers.AdditiveAttention()
            layer.build([q.shape, val.shape])
            layer.set_weights([x["add_scale"]])

        def forward(qq, vv):
            return layer([qq, vv])
    else:  # the TF NMT tutorial's BahdanauAttention, one decoder step
        W1, W2, V = keras.layers.Dense(D), keras.layers.Dense(D), keras.layers.Dense(1)
        W1.build((None, D))
        W2.build((None, D))
        V.build((None, D))
        W1.set_weights([x["W1"], np.zeros(D, np.float32)])
        W2.set_weights([x["W2"], np.zeros(D, np.float32)])
        V.set_weights([x["v"][:, None], np.zeros(1, np.float32)])
        q, dc = q[:, 0], dc[:, 0]

        class _Layer:
            trainable_weights = W1.trainable_weights + W2.trainable_weights + V.trainable_weights

        layer = _Layer()

        def forward(qq, vv):
            score = V(tf.nn.tanh(W1(tf.expand_dims(qq, 1)) + W2(vv)))
            weights = tf.nn.softmax(score, axis=1)
            return tf.reduce_sum(weights * vv, axis=1)

    @tf.function
    def fwd(qq, vv):
        return forward(qq, vv)

    @tf.function
    def fwd_bwd(qq, vv):
        with tf.GradientTape() as tape:
            tape.watch([qq, vv])
            loss = tf.reduce_sum(forward(qq, vv) * dc)
        return tape.gradient(loss, [qq, vv] + list(layer.trainable_weights))

    if case.mode == "fwd":
        return lambda: fwd(q, val).numpy()
    return lambda: [g.numpy() for g in fwd_bwd(q, val)]


def numpy_runner(case: Case, x) -> Optional[Callable[[], object]]:
    if case.kind == "bahdanau+keys":
        return None
    from fusedrnn import reference_attention as ref

    q, val, dc = x["query"], x["value"], x["d_context"]
    if case.kind in ("dot", "additive"):
        fwd_op = ref.dot_attention_forward if case.kind == "dot" else ref.additive_attention_forward
        bwd_op = ref.dot_attention_backward if case.kind == "dot" else ref.additive_attention_backward
        scale = x["dot_scale"] if case.kind == "dot" else x["add_scale"]
        if case.mode == "fwd":
            return lambda: fwd_op(q, val, scale=scale)
        return lambda: bwd_op(fwd_op(q, val, scale=scale)[2], dc)
    W1, W2, v = x["W1"], x["W2"], x["v"]
    q1 = q[:, :1]

    def fwd():
        pq, pk = q1 @ W1, val @ W2
        c, w, cache = ref.additive_attention_forward(pq, val, pk, scale=v)
        return c, cache, pq, pk

    if case.mode == "fwd":
        return fwd

    def fwd_bwd():
        _, cache, pq, pk = fwd()
        d_pq, d_pk, d_val, d_v = ref.additive_attention_backward(cache, dc[:, :1])
        d_q = d_pq @ W1.T
        dW1 = q1.reshape(B, D).T @ d_pq.reshape(B, D)
        dW2 = val.reshape(-1, D).T @ d_pk.reshape(-1, D)
        return d_q, d_val + d_pk @ W2.T, dW1, dW2, d_v
    return fwd_bwd


RUNNERS = {"fusedrnn": fused_runner, "keras": keras_runner, "numpy": numpy_runner}


def time_case(case: Case, repeats: int, numpy_repeats: int) -> None:
    x = make_inputs(case.tq)
    runners = {}
    for name in PEERS:
        r = RUNNERS[name](case, x)
        if r is not None:
            runners[name] = r
            r()  # warm-up (tf.function tracing, allocations)
            r()
            case.times[name] = []
    for k in range(repeats):
        for name, run in runners.items():
            if name == "numpy" and k >= numpy_repeats:
                continue
            t0 = time.perf_counter()
            run()
            case.times[name].append(time.perf_counter() - t0)


def print_table(cases: List[Case], threads: int, stat: str) -> None:
    peers = list(PEERS[1:])
    reduce = statistics.median if stat == "median" else min
    header = f"{'case':14} {'(B,Tq,Tv,D)':20} {'mode':8} " + " ".join(f"{c + ' ms':>12}" for c in PEERS)
    header += "  " + " ".join(f"{c + '/fused':>13}" for c in peers)
    print(f"\nthreads={threads}  ({stat} of the repeats)")
    print(header)
    print("-" * len(header))
    for c in cases:
        med = {k: reduce(v) * 1e3 for k, v in c.times.items() if v}
        fused = med["fusedrnn"]
        row = f"{c.label} " + " ".join(f"{med[k]:12.3f}" if k in med else f"{'-':>12}" for k in PEERS)
        row += "  " + " ".join(f"{med[k] / fused:12.1f}x" if k in med else f"{'-':>13}" for k in peers)
        print(row)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    cases: List[Case] = []
    for kind in args.cases:
        if kind == "bahdanau":
            cases += [Case("bahdanau", 1, "fwd"), Case("bahdanau", 1, "fwd+bwd"), Case("bahdanau+keys", 1, "fwd")]
            continue
        for tq in args.tq:
            for mode in ("fwd", "fwd+bwd"):
                cases.append(Case(kind, tq, mode))
    for case in cases:
        print(f"timing {case.label.strip()} ...", file=sys.stderr, flush=True)
        time_case(case, args.repeats, args.numpy_repeats)
    print_table(cases, args.threads, "median")
    if args.min_table:
        print_table(cases, args.threads, "min")
    if args.json:
        import platform

        payload = {
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "cases": [{"kind": c.kind, "shape_B_Tq_Tv_D": [B, c.tq, TV, D], "mode": c.mode,
                       "median_s": {k: statistics.median(v) for k, v in c.times.items() if v},
                       "min_s": {k: min(v) for k, v in c.times.items() if v}} for c in cases],
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
