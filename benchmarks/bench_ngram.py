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

Every step is timed as CPU time of this process (``time.process_time``; both
libraries run single-threaded here, and CPU time is far less disturbed than wall
time when other jobs share the machine) and as wall time. The speed-up is computed
from CPU times; the wall-time speed-up is printed next to it. fusedrnn timings are
the best of ``--repeat`` runs, nltk's the best of ``--nltk-repeat`` (default 1: its
fits take seconds). The "max rel diff" column compares the probabilities of the
events both scored.

Run: ``python benchmarks/bench_ngram.py [--data PATH] [--kn-events 300] [--levels word,char]
[--repeat 10] [--nltk-repeat 1]``.
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

import nltk
from nltk.lm import MLE, KneserNeyInterpolated, Laplace
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline
from nltk.util import ngrams

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model  # noqa: E402

ORDER = 5


def _default_data() -> Path:
    env = os.environ.get("FUSEDRNN_DATA")
    if env:
        return Path(env) / "nietzsche.txt"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"


class _Clock:
    """Wall and CPU seconds since construction (``lap`` returns both and restarts)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def _best(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), min(a[1], b[1])


def _mine_probs(model: NgramModel, events: list[tuple[str, ...]]) -> np.ndarray:
    return np.array([model.prob(e[-1], list(e[:-1])) for e in events])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=_default_data(), help="path to nietzsche.txt")
    ap.add_argument("--kn-events", type=int, default=300, help="n-grams nltk KN scores (default 300)")
    ap.add_argument("--repeat", type=int, default=10, help="fusedrnn runs; the best is reported (default 10)")
    ap.add_argument("--nltk-repeat", type=int, default=1,
                    help="nltk runs (fit + perplexity); the best is reported (default 1)")
    ap.add_argument("--levels", default="word,char", help="comma-separated: word, char (default both)")
    ap.add_argument("--check-events", type=int, default=5000,
                    help="n-grams whose probabilities are compared for MLE/Laplace (default 5000)")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"error: {args.data} not found; pass --data PATH", file=sys.stderr)
        return 1
    ap_levels = args.levels.split(",")
    raw_lines = [ln for ln in args.data.read_text(encoding="utf-8").lower().split("\n") if ln.strip()]
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, nltk {nltk.__version__}")
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
    inf2 = (math.inf, math.inf)
    for name, est, cls in (("MLE", "mle", MLE), ("Laplace", "laplace", Laplace),
                           ("Kneser-Ney", "kneser-ney", KneserNeyInterpolated)):
        mine_fit = mine_ppl = inf2
        for _ in range(args.repeat):  # best of --repeat runs (the machine may be shared)
            clock = _Clock()
            mine = NgramModel(ORDER, level, est, convention="nltk").fit(mine_input)
            fit_t = clock.lap()
            ppl_mine = mine.perplexity(mine_input)
            mine_fit, mine_ppl = _best(mine_fit, fit_t), _best(mine_ppl, clock.lap())

        nltk_fit = nltk_ppl = inf2
        for _ in range(max(1, args.nltk_repeat if est != "kneser-ney" else 1)):
            lm = cls(ORDER)
            clock = _Clock()
            lm.fit(*padded_everygram_pipeline(ORDER, lines))
            nltk_fit = _best(nltk_fit, clock.lap())
            if est == "kneser-ney":
                sub = events[: args.kn_events]
                clock = _Clock()
                ref = np.array([lm.score(e[-1], e[:-1]) for e in sub])
                wall, cpu = clock.lap()
                per_event = (wall / len(sub), cpu / len(sub))
                nltk_ppl = (per_event[0] * len(events), per_event[1] * len(events))
            else:
                clock = _Clock()
                ppl_nltk = lm.perplexity(events)
                nltk_ppl = _best(nltk_ppl, clock.lap())
                per_event = (nltk_ppl[0] / len(events), nltk_ppl[1] / len(events))
        if est == "kneser-ney":
            ppl_nltk = float("nan")
            ppl_note = f"{len(sub)} events measured, extrapolated"
            mine_sub = _mine_probs(mine, sub)
            # perplexity of the measured prefix, both ways
            ppl_pre_nltk = 2.0 ** -np.mean(np.log2(ref))
            ppl_pre_mine = 2.0 ** -np.mean(np.log2(mine_sub))
            ppl_rel = abs(ppl_pre_nltk - ppl_pre_mine) / ppl_pre_nltk
        else:
            ppl_note = "whole text"
            stride = max(1, len(events) // args.check_events)
            sub = events[::stride]
            ref = np.array([lm.score(e[-1], e[:-1]) for e in sub])
            mine_sub = _mine_probs(mine, sub)
            ppl_rel = abs(ppl_nltk - ppl_mine) / ppl_nltk
        rel = float(np.max(np.abs(mine_sub - ref) / np.maximum(np.abs(ref), 1e-300)))
        speed_cpu = (nltk_fit[1] + nltk_ppl[1]) / (mine_fit[1] + mine_ppl[1])
        speed_wall = (nltk_fit[0] + nltk_ppl[0]) / (mine_fit[0] + mine_ppl[0])
        rows.append((name, mine_fit, mine_ppl, nltk_fit, nltk_ppl, ppl_note, speed_cpu, speed_wall,
                     ppl_mine, ppl_nltk, rel, ppl_rel, len(sub), per_event[1]))

    print("CPU seconds (wall seconds in parentheses)\n")
    print("| estimator | fusedrnn fit | fusedrnn perplexity | nltk fit | nltk perplexity "
          "| speed-up CPU (wall) | perplexity fusedrnn | perplexity nltk | max rel diff P (events) "
          "| rel diff ppl |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (name, mf, mp, nf, np_, note, sp, spw, pm, pn, rel, prel, ns, pe) in rows:
        pn_s = "n/a" if math.isnan(pn) else f"{pn:.6f}"
        print(f"| {name} | {mf[1]:.3f} ({mf[0]:.3f}) | {mp[1]:.3f} ({mp[0]:.3f}) | {nf[1]:.2f} ({nf[0]:.2f}) "
              f"| {np_[1]:,.1f} ({np_[0]:,.1f}; {note}; {pe * 1e6:,.0f} us/event) "
              f"| {sp:,.0f}x ({spw:,.0f}x) | {pm:.6f} | {pn_s} | {rel:.1e} ({ns}) | {prel:.1e} |")


if __name__ == "__main__":
    raise SystemExit(main())
