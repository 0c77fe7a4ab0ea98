"""Benchmark: fusedrnn.ngram against nltk.lm, 5-gram, whole Nietzsche text.

Every non-empty lower-cased line is a sentence, tokenised into words
(``str.split``) or into characters (``list(line)``), padded as NLTK's
``padded_everygram_pipeline`` does (``convention="nltk"``), so both libraries
compute the same numbers. Each model is fitted on the whole text
and its perplexity taken over the order-5 n-grams of the whole text.

* MLE and Laplace: nltk.lm is timed on the whole text (fit + perplexity).
* Kneser-Ney: nltk.lm recomputes continuation counts by scanning all n-grams of
  an order for every query, so its perplexity over the whole text would take
  hours; its fit is timed on the whole text and its scoring on the first
  ``--kn-events`` n-grams, reported per event and extrapolated to the whole text
  (marked "extrapolated").

fusedrnn timings are the best of ``--repeat`` runs; nltk runs once.
The "max rel diff" column compares the probabilities of the events both scored.

Run: ``python benchmarks/bench_ngram.py [--data PATH] [--kn-events 300] [--levels word,char]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

try:
    from fusedrnn.ngram import NgramModel
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from fusedrnn.ngram import NgramModel

from nltk.lm import MLE, KneserNeyInterpolated, Laplace
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline
from nltk.util import ngrams

ORDER = 5


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _default_data() -> Path:
    env = os.environ.get("FUSEDRNN_DATA")
    if env:
        return Path(env) / "nietzsche.txt"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"


def _mine_probs(model: NgramModel, events: list[tuple[str, ...]]) -> np.ndarray:
    return np.array([model.prob(e[-1], list(e[:-1])) for e in events])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=_default_data(), help="path to nietzsche.txt")
    ap.add_argument("--kn-events", type=int, default=300, help="n-grams nltk KN scores (default 300)")
    ap.add_argument("--repeat", type=int, default=5, help="fusedrnn runs; the best is reported (default 5)")
    ap.add_argument("--levels", default="word,char", help="comma-separated: word, char (default both)")
    ap.add_argument("--check-events", type=int, default=5000,
                    help="n-grams whose probabilities are compared for MLE/Laplace (default 5000)")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"error: {args.data} not found; pass --data PATH", file=sys.stderr)
        return 1
    ap_levels = args.levels.split(",")
    raw_lines = [ln for ln in args.data.read_text(encoding="utf-8").lower().split("\n") if ln.strip()]
    print(f"machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    for level in ap_levels:
        lines = [ln.split() if level == "word" else list(ln) for ln in raw_lines]
        # fusedrnn takes the same sentences; at char level as strings (split into characters)
        _bench_level(level, lines, raw_lines if level == "char" else lines, args)
    return 0


def _bench_level(level: str, lines: list[list[str]], mine_input: list, args: argparse.Namespace) -> None:
    events = [g for s in lines for g in ngrams(list(pad_both_ends(s, n=ORDER)), ORDER)]
    n_tokens = sum(len(s) for s in lines)
    print(f"\n{level} level: {args.data} -> {len(lines)} sentences, {n_tokens} {level} tokens, "
          f"{len(events)} scored {ORDER}-grams\n")
    rows = []
    for name, est, cls in (("MLE", "mle", MLE), ("Laplace", "laplace", Laplace),
                           ("Kneser-Ney", "kneser-ney", KneserNeyInterpolated)):
        mine_fit = mine_ppl = math.inf
        for _ in range(args.repeat):  # best of --repeat runs (the machine may be shared)
            t0 = time.perf_counter()
            mine = NgramModel(ORDER, level, est, convention="nltk").fit(mine_input)
            t1 = time.perf_counter()
            ppl_mine = mine.perplexity(mine_input)
            t2 = time.perf_counter()
            mine_fit, mine_ppl = min(mine_fit, t1 - t0), min(mine_ppl, t2 - t1)

        lm = cls(ORDER)
        t0 = time.perf_counter()
        lm.fit(*padded_everygram_pipeline(ORDER, lines))
        t1 = time.perf_counter()
        nltk_fit = t1 - t0
        if est == "kneser-ney":
            sub = events[: args.kn_events]
            t1 = time.perf_counter()
            ref = np.array([lm.score(e[-1], e[:-1]) for e in sub])
            t2 = time.perf_counter()
            per_event = (t2 - t1) / len(sub)
            nltk_ppl = per_event * len(events)
            ppl_nltk = float("nan")
            ppl_note = f"{len(sub)} events measured, extrapolated"
            mine_sub = _mine_probs(mine, sub)
            # perplexity of the measured prefix, both ways
            ppl_pre_nltk = 2.0 ** -np.mean(np.log2(ref))
            ppl_pre_mine = 2.0 ** -np.mean(np.log2(mine_sub))
            ppl_rel = abs(ppl_pre_nltk - ppl_pre_mine) / ppl_pre_nltk
        else:
            t1 = time.perf_counter()
            ppl_nltk = lm.perplexity(events)
            t2 = time.perf_counter()
            nltk_ppl = t2 - t1
            per_event = nltk_ppl / len(events)
            ppl_note = "whole text"
            stride = max(1, len(events) // args.check_events)
            sub = events[::stride]
            ref = np.array([lm.score(e[-1], e[:-1]) for e in sub])
            mine_sub = _mine_probs(mine, sub)
            ppl_rel = abs(ppl_nltk - ppl_mine) / ppl_nltk
        rel = float(np.max(np.abs(mine_sub - ref) / np.maximum(np.abs(ref), 1e-300)))
        total_mine = mine_fit + mine_ppl
        total_nltk = nltk_fit + nltk_ppl
        rows.append((name, mine_fit, mine_ppl, nltk_fit, nltk_ppl, ppl_note, total_nltk / total_mine,
                     ppl_mine, ppl_nltk, rel, ppl_rel, len(sub), per_event))

    print(f"| estimator | fusedrnn fit (s) | fusedrnn perplexity (s) | nltk fit (s) | nltk perplexity (s) "
          f"| speed-up (fit+ppl) | perplexity fusedrnn | perplexity nltk | max rel diff P (events) "
          f"| rel diff ppl |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (name, mf, mp, nf, np_, note, sp, pm, pn, rel, prel, ns, pe) in rows:
        pn_s = "n/a" if math.isnan(pn) else f"{pn:.6f}"
        print(f"| {name} | {mf:.3f} | {mp:.3f} | {nf:.2f} | {np_:.1f} ({note}; {pe * 1e6:.0f} us/event) "
              f"| {sp:,.0f}x | {pm:.6f} | {pn_s} | {rel:.1e} ({ns}) | {prel:.1e} |")


if __name__ == "__main__":
    raise SystemExit(main())
