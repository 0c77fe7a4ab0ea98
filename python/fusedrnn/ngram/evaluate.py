"""Character-level perplexity / bits-per-character comparison (``fusedrnn evaluate lm``)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fusedrnn.io_utils import atomic_write
from fusedrnn.ngram.model import NgramModel

DEFAULT_ESTIMATORS = ("mle", "add-k", "kneser-ney")


@dataclass
class LmRow:
    """One row of the comparison table.

    Attributes:
        model: display name (``"kneser-ney"``, ``"char LSTM"``, ...).
        order: n-gram order, or ``None`` for neural models.
        perplexity: per-character perplexity on the held-out text (``inf`` for unseen events,
            ``None`` when not available).
        bits_per_char: ``log2(perplexity)`` (``None`` when not available).
        note: free text shown in the table (e.g. why a row has no numbers).
    """

    model: str
    order: int | None
    perplexity: float | None
    bits_per_char: float | None
    note: str = ""


def split_holdout(text: str, holdout: float) -> tuple[str, str]:
    """``(train, test)``: the last ``holdout`` fraction of ``text`` is held out."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout: must be in (0, 1), got {holdout!r}")
    cut = int(round(len(text) * (1.0 - holdout)))
    train, test = text[:cut], text[cut:]
    if not train or not test:
        raise ValueError("holdout: the text is too short to split into train and test parts")
    return train, test


def ngram_rows(
    train: str,
    test: str,
    orders: Sequence[int],
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    k: float = 0.01,
    progress: Callable[[str], None] | None = None,
) -> list[LmRow]:
    """Fit character n-gram models on ``train`` (one sequence) and score ``test``.

    Every character of ``test`` plus the final ``</s>`` is one prediction (the first
    one from the context ``<s>``: the default SRILM/KenLM convention); bits per
    character is the mean ``-log2 P`` over them.
    """
    rows = []
    for est in estimators:
        for n in orders:
            model = NgramModel(n, "char", est, k=k).fit([train])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ev = model.evaluate([test])
            name = f"add-k (k={k:g})" if model.estimator == "add-k" else model.estimator
            note = f"{ev.n_zero} unseen events" if ev.n_zero else ""
            rows.append(LmRow(name, n, ev.perplexity, ev.cross_entropy, note))
            if progress is not None:
                progress(f"{name} n={n}")
    return rows


def _fmt(x: float | None, digits: int) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def format_table(rows: Sequence[LmRow]) -> str:
    """Plain-text (Markdown-compatible) table of the rows."""
    head = "| model | n | perplexity | bits/char | note |\n|---|---:|---:|---:|---|"
    body = [
        f"| {r.model} | {'' if r.order is None else r.order} | {_fmt(r.perplexity, 3)} "
        f"| {_fmt(r.bits_per_char, 4)} | {r.note} |"
        for r in rows
    ]
    return "\n".join([head] + body)


def plot_perplexity(rows: Sequence[LmRow], path: str | os.PathLike[str], title: str = "") -> None:
    """PNG plot of perplexity against n, one line per n-gram estimator (written atomically).

    Infinite perplexities (MLE with unseen events) are left out of the lines and
    marked along the top edge; neural models with numbers are horizontal lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [r.model for r in rows if r.order is not None]
    finite_all = [r.perplexity for r in rows if r.perplexity is not None and math.isfinite(r.perplexity)]
    top = max(finite_all) * 1.5 if finite_all else 10.0
    for name in dict.fromkeys(names):
        pts = [r for r in rows if r.model == name and r.order is not None]
        fin = [r for r in pts if r.perplexity is not None and math.isfinite(r.perplexity)]
        line = ax.plot([r.order for r in fin], [r.perplexity for r in fin], marker="o", label=name)
        inf = [r.order for r in pts if r.perplexity is not None and math.isinf(r.perplexity)]
        if inf:
            ax.scatter(inf, [top] * len(inf), marker="^", color=line[0].get_color(),
                       label=f"{name}: infinite (drawn at top)")
    for r in rows:
        if r.order is None and r.perplexity is not None and math.isfinite(r.perplexity):
            ax.axhline(r.perplexity, linestyle="--", label=r.model)
    ax.set_yscale("log")
    ax.set_xlabel("n (n-gram order)")
    ax.set_ylabel("held-out perplexity per character")
    ax.set_title(title or "Character n-gram models: perplexity against n")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=120)
    finally:
        plt.close(fig)
