"""Vectorised scoring of many (context, word) events at once.

An *event* is one prediction ``P(word | context)``. :class:`Events` stores, for
``E`` events, the table rows of every suffix of the context and of every
``(context suffix, word)`` n-gram, so estimators never touch strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusedrnn.ngram.counts import NgramCounts, lookup_rows
from fusedrnn.ngram.estimators import BackoffTables, mle_add_k


@dataclass
class Events:
    """Rows describing ``E`` prediction events of a model of order ``n``.

    Attributes:
        word: ``(E,)`` predicted token ids.
        ctx_len: ``(E,)`` context length used (``0 .. n-1``).
        gram: list over ``k = 0..n``; ``gram[k]`` is ``(E,)``, the row in table ``k``
            of the last ``k-1`` context tokens followed by the word (-1: no row or
            ``k > ctx_len + 1``). ``gram[0]`` is unused.
        ctx: list over ``j = 0..n-1``; ``ctx[j]`` is ``(E,)``, the row in table ``j``
            of the last ``j`` context tokens (-1: no row or ``j > ctx_len``).
    """

    word: np.ndarray
    ctx_len: np.ndarray
    gram: list[np.ndarray]
    ctx: list[np.ndarray]

    def __len__(self) -> int:
        return int(self.word.size)


def events_from_stream(
    keys: list[np.ndarray], ids: np.ndarray, positions: np.ndarray, ctx_len: np.ndarray, vocab_size: int
) -> Events:
    """Events predicting ``ids[positions]`` from the ``ctx_len`` tokens before each.

    ``ctx_len[e] <= positions[e]`` is required (the context stays inside ``ids``).
    """
    order = len(keys) - 1
    rows = lookup_rows(keys, ids, order, vocab_size)
    gram = [np.full(positions.size, -1, dtype=np.int64)]
    ctx = []
    for k in range(1, order + 1):
        ok = ctx_len >= k - 1
        if ok.all():
            gram.append(rows[k][positions - (k - 1)])
        else:
            start = np.where(ok, positions - (k - 1), 0)
            gram.append(np.where(ok, rows[k][start], -1))
    for j in range(order):
        ok = ctx_len >= j
        if j == 0:
            ctx.append(np.where(ok, 0, -1))
        elif ok.all():
            ctx.append(rows[j][positions - j])
        else:
            start = np.where(ok, positions - j, 0)
            ctx.append(np.where(ok, rows[j][start], -1))
    return Events(ids[positions].astype(np.int64), ctx_len.astype(np.int64), gram, ctx)


def events_for_all_words(keys: list[np.ndarray], context: np.ndarray, vocab_size: int) -> Events:
    """Events ``P(w | context)`` for every id ``w`` in ``0..V-1`` (``context`` already truncated)."""
    order = len(keys) - 1
    m = int(context.size)
    rows = lookup_rows(keys, context, m, vocab_size)
    words = np.arange(vocab_size, dtype=np.int64)
    ctx_rows = [0] + [int(rows[j][m - j]) for j in range(1, m + 1)]
    gram = [np.full(vocab_size, -1, dtype=np.int64)]
    ctx = []
    for k in range(1, order + 1):
        j = k - 1
        if j > m or ctx_rows[j] < 0:
            gram.append(np.full(vocab_size, -1, dtype=np.int64))
            continue
        table = keys[k]
        key = ctx_rows[j] * vocab_size + words if k > 1 else words
        idx = np.minimum(np.searchsorted(table, key), max(table.size - 1, 0))
        gram.append(np.where(table[idx] == key, idx, -1) if table.size else np.full(vocab_size, -1))
    for j in range(order):
        ctx.append(np.full(vocab_size, ctx_rows[j] if j <= m else -1, dtype=np.int64))
    return Events(words, np.full(vocab_size, m, dtype=np.int64), gram, ctx)


def _take(arr: np.ndarray, rows: np.ndarray, fill: float) -> np.ndarray:
    ok = rows >= 0
    return np.where(ok, arr[np.where(ok, rows, 0)], fill)


def backoff_scores(tables: BackoffTables, ev: Events) -> np.ndarray:
    """``(E,)`` probabilities by the ARPA back-off rule (see :mod:`estimators`)."""
    order = len(tables.prob) - 1
    p = _take(tables.prob[1], ev.gram[1], 0.0)
    for k in range(2, order + 1):
        active = ev.ctx_len >= k - 1
        g = ev.gram[k]
        found = active & (g >= 0)
        backed = active & (g < 0)
        p = np.where(found, _take(tables.prob[k], g, 0.0), p)
        bw = _take(tables.bow[k - 1], ev.ctx[k - 1], tables.default_bow)
        p = np.where(backed, bw * p, p)
    return p


def top_counts(counts: NgramCounts, ev: Events) -> tuple[np.ndarray, np.ndarray]:
    """``(c(context word), c(context •))`` at the full context length of each event."""
    num = np.zeros(len(ev), dtype=np.int64)
    den = np.zeros(len(ev), dtype=np.int64)
    for k in range(1, counts.order + 1):
        sel = ev.ctx_len == k - 1
        if not sel.any():
            continue
        num[sel] = _take(counts.count[k], ev.gram[k][sel], 0).astype(np.int64)
        tot = counts.context_total(k).astype(np.int64)
        den[sel] = _take(tot, ev.ctx[k - 1][sel], 0).astype(np.int64)
    return num, den


def count_scores(counts: NgramCounts, ev: Events, k: float, vocab_size: int) -> np.ndarray:
    """``(E,)`` MLE (``k = 0``) or add-k probabilities at each event's full context."""
    num, den = top_counts(counts, ev)
    return mle_add_k(num, den, k, vocab_size)


def matched_order(counts: NgramCounts | None, tables: BackoffTables | None, ev: Events) -> np.ndarray:
    """``(E,)`` the longest order ``k`` whose n-gram (last k-1 context tokens + word) was seen.

    'Seen' means a positive count (fitted models) or a listed entry with non-zero
    probability (models read from ARPA). 0 when not even the unigram was seen.
    """
    out = np.zeros(len(ev), dtype=np.int64)
    order = len(ev.gram) - 1
    for k in range(1, order + 1):
        g = ev.gram[k]
        if counts is not None:
            seen = _take(counts.count[k], g, 0) > 0
        else:
            assert tables is not None
            seen = _take(tables.prob[k], g, 0.0) > 0
        out = np.where(seen & (ev.ctx_len >= k - 1), k, out)
    return out
