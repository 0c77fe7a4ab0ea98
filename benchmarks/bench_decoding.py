#!/usr/bin/env python3
"""Task timings of issue 21: the translation training step in GFLOP/s next to sgemm, greedy
decoding of the translate task's validation sentences, and text generation in characters/s.

``--what step``: one training step of the ``fusedrnn train translate`` model (built by
bench_tasks.fusedrnn_translate_step: forward, masked loss, backward, Adam on a random batch of
64), timed in rounds interleaved with NumPy's 1024^3 float32 sgemm on the same threads; the
table gives both medians, the step's FLOPs over its median time and that rate as a share of
sgemm's (issue 21 asks for >= 80 %). The step's FLOPs come from the model's shapes (B batch,
Ts source length, Tt target steps, E embedding, U units, V target vocabulary), counting 2*M*N*K
for each (M, K) x (K, N) product of the forward pass and twice that for its backward (the
gradients of both operands), so the step is 3x the forward::

    encoder GRU     Ts steps of (B, E) x (E, 3U) and (B, U) x (U, 3U)   2*B*Ts*3U*(E + U)
    attention keys  (B*Ts, U) x (U, U), once per batch                  2*B*Ts*U*U
    per decoder step (Tt of them):
      query         (B, U) x (U, U)                                     2*B*U*U
      attention     scores v . tanh(q + k_j) and the context sum        2*B*Ts*U + 2*B*Ts*U
      decoder GRU   (B, U + E) x (U + E, 3U) and (B, U) x (U, 3U)       2*B*3U*(2U + E)
    output Dense    (B*Tt, U) x (U, V)                                  2*B*Tt*U*V
    step = 3 * forward

Embedding gathers, the gate math, the loss and Adam's update are element-wise and not counted.
At the task's shapes (B=64, Ts=16, Tt=10, E=256, U=1024, V=4935) that is 81.4 GFLOP, 27.2 of
them in the decoder's single GRU steps.

``--what decode``: greedy decoding of the first ``--sentences`` validation sentences of the
translate task (its defaults: the first 30,000 pairs of spa-eng/spa.txt, 20 % validation, seed
0), with the task's model shapes and random weights (seed 0): the cost does not depend on
training. With ``--decode-batch 256`` (default) in batches of 256 through
seq2seq.decode_batch_greedy, padding columns trimmed, as ``fusedrnn evaluate translate`` does;
with ``--decode-batch 1`` one sentence at a time through seq2seq.greedy_decode, as ``fusedrnn
translate`` does. Every sentence runs the task's maximum target length (11 words) of decoder
steps (no id is taken as <end>), so the work is the same whatever the weights.

``--what sentence``: the latency of translating one sentence, as ``fusedrnn translate`` does:
ms per sentence of seq2seq.greedy_decode and of seq2seq.beam_search (``--beam``, default 4) on
the first ``--latency-sentences`` validation sentences one at a time (padding trimmed), with the
task's model shapes and random weights (seed 0), every sentence decoded to the task's maximum
target length (no <end>, so every beam runs to the end too). The two decoders and a STREAM-like
triad alternate sentence by sentence for ``--latency-rounds`` rounds; the table gives the median
over every sentence and round. Next to it, the weights' traffic: the bytes of the weights one
sentence multiplies (the encoder's input kernel once, its recurrent kernel once per source word,
the attention's W2 once; per output word the attention's W1, the decoder GRU's kernel and
recurrent kernel and the output Dense(V)), over the time, in GB/s, and the triad's rate over
three arrays holding one output word's weight bytes (``bench_latency.triad_of_bytes``).

Where the task model has ``decoding_precision``, greedy decoding also runs with
``decoding_precision = "bfloat16"`` (the GRUs' and the per-word projections' kernels in bfloat16;
its GB/s counts float32 bytes: an equivalent rate, not the bytes read).

``--what textgen``: ``--chars`` characters from the ``fusedrnn train textgen`` model (LSTM(128)
over 40-character windows, Dense(57), random weights, seed 0) through textgen.generate at
temperature 1.0, seeded with the Nietzsche corpus's first 40 characters; each character is one
forward pass over the last 40 characters (the Keras example's loop).

Decoding and generation are one timed pass each (after a short warm-up): sentences or
characters per second. Only the task functions, which exist unchanged before and after the
latency work (commit 29b794d), are called, so the script also runs against the older tree
(``PYTHONPATH=<old tree>/python``); the output names the fusedrnn tree, its commit, and whether
it has the step API (layer.step, ops.PackedWeights); from commit 14e4c7d on, the task code
decodes with ``decoder.step`` and generates text inside ``packed_calls()``.

    python benchmarks/bench_decoding.py                           # step, decode and textgen
    python benchmarks/bench_decoding.py --what decode --sentences 1000 --decode-batch 1
    python benchmarks/bench_decoding.py --what sentence --latency-sentences 40 --beam 4
    python benchmarks/bench_decoding.py --smoke --json out.json   # tiny shapes, a few seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import blas_cores, configure_threads, sgemm_runner, write_json  # noqa: E402
from bench_latency import machine, triad_counted_bytes, triad_of_bytes  # noqa: E402
from bench_tasks import BATCH, TRANSLATE, fusedrnn_translate_step, time_steps  # noqa: E402

WHAT = ("step", "decode", "sentence", "textgen")
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SGEMM_N = 1024
SMOKE_TRANSLATE = {"source_vocab": 9414, "target_vocab": 4935, "source_len": 16, "target_len": 10, "embedding": 16,
                   "units": 32}
TEXTGEN_UNITS = 128
TEXTGEN_MAXLEN = 40


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", nargs="+", default=list(WHAT), choices=WHAT, help="which tasks to time (default: all)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="threads for fusedrnn and NumPy")
    p.add_argument("--rounds", type=int, default=5, help="step: interleaved rounds (default: 5)")
    p.add_argument("--steps", type=int, default=3, help="step: timed steps per round (default: 3)")
    p.add_argument("--sgemms", type=int, default=10, help="step: timed sgemms per round (default: 10)")
    p.add_argument("--sentences", type=int, default=6000, help="decode: validation sentences (default: all 6000)")
    p.add_argument("--decode-batch", type=int, default=256,
                   help="decode: sentences per batch (default: 256 as `evaluate translate`; 1: greedy_decode each)")
    p.add_argument("--latency-sentences", type=int, default=40,
                   help="sentence: validation sentences, each translated alone (default: 40)")
    p.add_argument("--latency-rounds", type=int, default=3, help="sentence: rounds over them (default: 3)")
    p.add_argument("--beam", type=int, default=4, help="sentence: beam width of beam_search (default: 4)")
    p.add_argument("--chars", type=int, default=2000, help="textgen: characters to generate (default: 2000)")
    p.add_argument("--data", default=str(DATA), help="folder with spa-eng/spa.txt and nietzsche.txt "
                                                     "(default: ../shared/data from the project root)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run for tests: step at U=32, E=16, B=8, one round; 8 sentences (3 alone, one round); "
                        "20 characters")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    for name in ("rounds", "steps", "sgemms", "sentences", "decode_batch", "latency_sentences", "latency_rounds",
                 "beam", "chars", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")
    if args.smoke:
        args.rounds, args.steps, args.sgemms = 1, 1, 2
        args.sentences, args.chars = min(args.sentences, 8), min(args.chars, 20)
        args.latency_sentences, args.latency_rounds = min(args.latency_sentences, 3), 1
    return args


def progress(total: int, desc: str, unit: str, enabled: bool):
    """A tqdm bar on stderr (None when disabled or tqdm is missing)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def git(folder: str, *args: str) -> Optional[str]:
    """A git command's output in `folder` (None outside git or without git)."""
    try:
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def tree_info() -> Dict[str, Any]:
    """Which fusedrnn this process imported: its folder; the commit checked out there and the last
    commit that changed the package, its kernels or their build (python/, csrc/, CMakeLists.txt;
    None outside git); whether it has the latency work's step API."""
    import fusedrnn
    from fusedrnn import ops

    folder = os.path.dirname(os.path.abspath(fusedrnn.__file__))
    root = git(folder, "rev-parse", "--show-toplevel")
    code = git(root, "log", "-1", "--format=%h", "--", "python", "csrc", "CMakeLists.txt") if root else None
    step_api = hasattr(ops, "PackedWeights") and hasattr(fusedrnn.GRU, "step")
    return {"path": folder, "head": git(folder, "rev-parse", "--short", "HEAD"), "code_commit": code,
            "step_api": step_api}


# -- the translation training step -----------------------------------------------------------------
def translate_step_flops(batch: int, shapes: Dict[str, int]) -> Dict[str, float]:
    """FLOPs of one training step by part (forward, backward = 2x forward); see the module docstring."""
    B, Ts, Tt = batch, shapes["source_len"], shapes["target_len"]
    E, U, V = shapes["embedding"], shapes["units"], shapes["target_vocab"]
    forward = {
        "encoder_gru": 2 * B * Ts * 3 * U * (E + U),
        "attention_keys": 2 * B * Ts * U * U,
        "decoder_query": Tt * 2 * B * U * U,
        "decoder_attention": Tt * 4 * B * Ts * U,
        "decoder_gru": Tt * 2 * B * 3 * U * (2 * U + E),
        "output_dense": 2 * B * Tt * U * V,
    }
    parts = {k: 3.0 * v for k, v in forward.items()}
    parts["total"] = sum(parts.values())
    return parts


def bench_step(args: argparse.Namespace) -> Dict[str, Any]:
    shapes, batch = (SMOKE_TRANSLATE, 8) if args.smoke else (TRANSLATE, BATCH["translate"])
    step = fusedrnn_translate_step(np.random.default_rng(0), batch, shapes)
    sgemm = sgemm_runner(SGEMM_N)
    step()  # warm-up: first call allocates and packs
    sgemm()
    times: Dict[str, List[float]] = {"step": [], "sgemm": []}
    bar = progress(args.rounds, "translate step", "round", not args.no_progress)
    for _ in range(args.rounds):
        times["step"].extend(time_steps(step, args.steps, 0.1))  # each after a 0.1 s busy pause
        times["sgemm"].extend(time_steps(sgemm, args.sgemms, 0.1))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    flops = translate_step_flops(batch, shapes)
    step_s, sgemm_s = statistics.median(times["step"]), statistics.median(times["sgemm"])
    step_gflops = flops["total"] / step_s / 1e9
    sgemm_gflops = 2.0 * SGEMM_N ** 3 / sgemm_s / 1e9
    return {"batch": batch, "shapes": dict(shapes), "step_ms": step_s * 1e3, "gflop": flops["total"] / 1e9,
            "gflop_by_part": {k: v / 1e9 for k, v in flops.items() if k != "total"},
            "gflops": step_gflops, "sgemm_ms": sgemm_s * 1e3, "sgemm_gflops": sgemm_gflops,
            "percent_of_sgemm": 100.0 * step_gflops / sgemm_gflops, "target_percent": 80.0,
            "steps_timed": len(times["step"]), "sgemms_timed": len(times["sgemm"])}


# -- greedy decoding ------------------------------------------------------------------------------
def task_model(args: argparse.Namespace):
    """(translation data, the task's model with random weights (seed 0), start id): the translate
    task's defaults (the first 30,000 pairs, 20 % validation, seed 0); tiny units with --smoke."""
    from fusedrnn.datasets import translation
    from fusedrnn.tasks.seq2seq import AttentionSeq2Seq
    from fusedrnn.tasks.translate import TranslateConfig

    cfg = TranslateConfig()
    ds = translation.load_translation(Path(args.data) / "spa-eng" / "spa.txt", num_examples=cfg.num_examples,
                                      val_fraction=cfg.val_fraction, seed=cfg.seed)
    embedding, units = ((SMOKE_TRANSLATE["embedding"], SMOKE_TRANSLATE["units"]) if args.smoke
                        else (cfg.embedding_dim, cfg.units))
    model = AttentionSeq2Seq(ds.source_tokenizer.vocab_size, ds.target_tokenizer.vocab_size, embedding, units, seed=0)
    return ds, model, int(ds.target_tokenizer.word_index[translation.START_TOKEN])


def bench_decode(args: argparse.Namespace) -> Dict[str, Any]:
    from fusedrnn.tasks.seq2seq import decode_batch_greedy, greedy_decode
    from fusedrnn.tasks.translate import _trim

    ds, model, start_id = task_model(args)
    no_end = -1  # never produced: every sentence decodes max_length steps, whatever the weights
    max_length = ds.max_target_len
    src = ds.source_val[:args.sentences]
    batch = args.decode_batch

    def decode(rows: np.ndarray) -> int:
        if batch == 1:
            return sum(len(greedy_decode(model, _trim(r[None, :]), start_id, no_end, max_length).ids) for r in rows)
        return sum(len(ids) for ids in decode_batch_greedy(model, _trim(rows), start_id, no_end, max_length))

    decode(src[:min(len(src), batch, 4)])  # warm-up
    bar = progress(len(src), f"greedy decoding (batch {batch})", "sentence", not args.no_progress)
    words = 0
    t0 = time.perf_counter()
    for i in range(0, len(src), batch):
        rows = src[i:i + batch]
        words += decode(rows)
        if bar is not None:
            bar.update(len(rows))
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return {"sentences": len(src), "validation_sentences": len(ds.val_idx), "decode_batch": batch,
            "api": "greedy_decode" if batch == 1 else "decode_batch_greedy", "max_length": max_length,
            "words": words, "units": model.units, "seconds": seconds, "sentences_per_s": len(src) / seconds,
            "words_per_s": words / seconds}


# -- one sentence at a time: latency ----------------------------------------------------------------
def sentence_weight_bytes(model: Any, source_len: int, words: int) -> Dict[str, int]:
    """Bytes of the weights that translating one sentence of `source_len` tokens into `words`
    output words multiplies (see the module docstring); "per_word" is one output word's share."""
    U, E, V = model.units, model.embedding_dim, model.target_vocab
    size = model.dtype.itemsize
    encoder = (E * 3 * U + source_len * U * 3 * U + U * U) * size
    per_word = (U * U + (U + E) * 3 * U + U * 3 * U + U * V) * size
    return {"encoder": encoder, "per_word": per_word, "total": encoder + words * per_word}


def bench_sentence(args: argparse.Namespace) -> Dict[str, Any]:
    from fusedrnn.tasks.seq2seq import beam_search, greedy_decode
    from fusedrnn.tasks.translate import _trim

    ds, model, start_id = task_model(args)
    no_end = -1  # never produced: max_length words, every beam to the end, whatever the weights
    max_length = ds.max_target_len
    sources = [_trim(row[None, :]) for row in ds.source_val[:args.latency_sentences]]
    decoders = {"greedy": lambda src: greedy_decode(model, src, start_id, no_end, max_length),
                "beam": lambda src: beam_search(model, src, start_id, no_end, max_length, beam=args.beam)}
    if hasattr(model, "decoding_precision"):  # the decoding weights in bfloat16 (opt-in)
        def greedy_bf16(src):
            model.decoding_precision = "bfloat16"
            try:
                return greedy_decode(model, src, start_id, no_end, max_length)
            finally:
                model.decoding_precision = "float32"
        decoders["greedy-bf16"] = greedy_bf16
    per_word = sentence_weight_bytes(model, 1, 1)["per_word"]
    triad = triad_of_bytes(per_word)
    for decode in decoders.values():  # warm-up: packing, allocations
        decode(sources[0])
    triad()
    times: Dict[str, List[float]] = {name: [] for name in [*decoders, "triad"]}
    rates: Dict[str, List[float]] = {name: [] for name in decoders}
    words: Dict[str, List[int]] = {name: [] for name in decoders}
    bar = progress(args.latency_rounds * len(sources), "one sentence at a time", "sentence", not args.no_progress)
    for _ in range(args.latency_rounds):
        for src in sources:
            for name, decode in decoders.items():
                t0 = time.perf_counter()
                result = decode(src)
                seconds = time.perf_counter() - t0
                times[name].append(seconds)
                words[name].append(len(result.ids))
                rates[name].append(sentence_weight_bytes(model, src.shape[1], len(result.ids))["total"] / seconds / 1e9)
            t0 = time.perf_counter()
            triad()
            times["triad"].append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    triad_gbs = triad_counted_bytes(per_word) / statistics.median(times["triad"]) / 1e9
    out: Dict[str, Any] = {"sentences": len(sources), "rounds": args.latency_rounds, "beam_width": args.beam,
                           "max_length": max_length, "units": model.units, "target_vocab": model.target_vocab,
                           "mean_source_len": float(np.mean([s.shape[1] for s in sources])),
                           "weight_bytes_per_word": per_word, "triad_gbs": triad_gbs}
    for name in decoders:
        out[name] = {"ms_median": 1e3 * statistics.median(times[name]), "ms_mean": 1e3 * statistics.mean(times[name]),
                     "words": words[name], "weights_gbs_median": statistics.median(rates[name]),
                     "percent_of_triad": 100.0 * statistics.median(rates[name]) / triad_gbs,
                     "timed": len(times[name])}
    return out


# -- text generation ------------------------------------------------------------------------------
def bench_textgen(args: argparse.Namespace) -> Dict[str, Any]:
    from fusedrnn.datasets import nietzsche
    from fusedrnn.tasks import textgen

    text = nietzsche.load_text(Path(args.data) / "nietzsche.txt")
    vocab = nietzsche.CharVocab.from_text(text)
    model = textgen.build_model(len(vocab), TEXTGEN_UNITS, seed=0)
    rng = np.random.default_rng(0)
    seed = text[:TEXTGEN_MAXLEN]
    textgen.generate(model, vocab, seed, 5, 1.0, rng, TEXTGEN_MAXLEN)  # warm-up
    chunk = 100
    bar = progress(args.chars, "text generation", "char", not args.no_progress)
    generated = ""
    t0 = time.perf_counter()
    while len(generated) < args.chars:
        n = min(chunk, args.chars - len(generated))
        generated += textgen.generate(model, vocab, (seed + generated)[-TEXTGEN_MAXLEN:], n, 1.0, rng, TEXTGEN_MAXLEN)
        if bar is not None:
            bar.update(n)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return {"chars": len(generated), "vocab": len(vocab), "units": TEXTGEN_UNITS, "maxlen": TEXTGEN_MAXLEN,
            "seconds": seconds, "chars_per_s": len(generated) / seconds}


# -- output ---------------------------------------------------------------------------------------
def table_rows(results: Dict[str, Dict[str, Any]]) -> List[List[str]]:
    rows = []
    if "step" in results:
        r = results["step"]
        rows.append(["translate training step", f"B={r['batch']}, {r['gflop']:.1f} GFLOP",
                     f"{r['step_ms']:.1f} ms", f"{r['gflops']:.1f} GFLOP/s",
                     f"sgemm {r['sgemm_gflops']:.1f} GFLOP/s: {r['percent_of_sgemm']:.0f} % (target 80 %)"])
    if "decode" in results:
        r = results["decode"]
        rows.append([f"greedy decoding ({r['api']})", f"{r['sentences']} sentences x {r['max_length']} steps, "
                     f"batch {r['decode_batch']}", f"{r['seconds']:.2f} s", f"{r['sentences_per_s']:.1f} sentences/s",
                     f"{r['words_per_s']:.0f} words/s"])
    if "sentence" in results:
        r = results["sentence"]
        for name, api in (("greedy", "greedy_decode"), ("beam", f"beam_search, beam {r['beam_width']}"),
                          ("greedy-bf16", "greedy_decode, bfloat16 weights")):
            if name not in r:
                continue
            d = r[name]
            # (bfloat16: the float32 bytes over the time, an equivalent rate, not the bytes read)
            rows.append([f"one sentence ({api})", f"{r['sentences']} sentences x {r['rounds']} rounds, "
                         f"{r['mean_source_len']:.1f} tokens in, {r['max_length']} words out",
                         f"{d['ms_median']:.1f} ms/sentence (median)",
                         f"{d['weights_gbs_median']:.1f} GB/s of weights{' (float32 bytes)' if 'bf16' in name else ''}",
                         f"triad {r['triad_gbs']:.1f} GB/s: {d['percent_of_triad']:.0f} %"])
    if "textgen" in results:
        r = results["textgen"]
        rows.append(["text generation", f"{r['chars']} chars, LSTM({r['units']}) over {r['maxlen']}",
                     f"{r['seconds']:.2f} s", f"{r['chars_per_s']:.1f} chars/s",
                     f"{1e3 / r['chars_per_s']:.2f} ms/char"])
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    tree = tree_info()
    runners = {"step": bench_step, "decode": bench_decode, "sentence": bench_sentence, "textgen": bench_textgen}
    results = {what: runners[what](args) for what in WHAT if what in args.what}
    header = f"{machine()}; threads={args.threads}; {blas_cores()}"
    tree_line = (f"fusedrnn: {tree['path']} (HEAD {tree['head'] or '?'}, code last changed in "
                 f"{tree['code_commit'] or '?'}; step API "
                 f"{'present' if tree['step_api'] else 'absent'})")
    print(header)
    print(tree_line)
    rows = table_rows(results)
    titles = ["task", "work", "time", "rate", "note"]
    widths = [max(len(x) for x in col) for col in zip(titles, *rows)]
    for row in [titles] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    if args.markdown:
        print("\n| " + " | ".join(titles) + " |\n|" + "---|" * len(titles))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    if args.json:
        write_json(args.json, {"machine": machine(), "threads": args.threads, "blas": blas_cores(), "fusedrnn": tree,
                               "smoke": args.smoke, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
