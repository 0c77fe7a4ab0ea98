"""Vectorised scoring of many (context, word) events at once.

An *event* is one prediction ``P(word | context)``. :class:`Events` stores, for
``E`` events, the table rows of every suffix of the context and of every
``(context suffix, word)`` n-gram, so estimators never touch strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fusedrnn.ngram.counts import KeyIndex, NgramCounts, lookup_rows
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

    ``gram`` and ``ctx`` may be :class:`LazyRows`, which build each entry on first use
    (MLE and add-k read only the full-context order).
    """

    word: np.ndarray
    ctx_len: np.ndarray
    gram: Sequence[np.ndarray]
    ctx: Sequence[np.ndarray]

    def __len__(self) -> int:
        return int(self.word.size)


class LazyRows(Sequence):
    """A read-only list of ``n`` arrays, each computed by ``make(k)`` on first access."""

    def __init__(self, n: int, make: Callable[[int], np.ndarray]) -> None:
        self._n = n
        self._make = make
        self._done: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._n))]
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(k)
        if k not in self._done:
            self._done[k] = self._make(k)
        return self._done[k]


def events_from_stream(
    index: list[KeyIndex | None], ids: np.ndarray, positions: np.ndarray, ctx_len: np.ndarray, vocab_size: int
) -> Events:
    """Events predicting ``ids[positions]`` from the ``ctx_len`` tokens before each.

    ``index`` holds the :class:`~fusedrnn.ngram.counts.KeyIndex` of every table.
    ``ctx_len[e] <= positions[e]`` is required (the context stays inside ``ids``).
    """
    order = len(index) - 1
    rows = lookup_rows(index, ids, order, vocab_size)

    def at(j: int) -> np.ndarray:
        """Row of the j-gram that ends just before (j = context) each predicted position."""
        ok = ctx_len >= j
        if j == 0:
            return np.where(ok, 0, -1)
        if ok.all():
            return rows[j][positions - j]
        start = np.where(ok, positions - j, 0)
        return np.where(ok, rows[j][start], -1)

    def gram_at(k: int) -> np.ndarray:
        """Row of the k-gram that ends at each predicted position."""
        if k == 0:
            return np.full(positions.size, -1, dtype=np.int64)
        ok = ctx_len >= k - 1
        if ok.all():
            return rows[k][positions - (k - 1)]
        start = np.where(ok, positions - (k - 1), 0)
        return np.where(ok, rows[k][start], -1)

    return Events(ids[positions].astype(np.int64), ctx_len.astype(np.int64),
                  LazyRows(order + 1, gram_at), LazyRows(order, at))


def events_for_all_words(index: list[KeyIndex | None], context: np.ndarray, vocab_size: int) -> Events:
    """Events ``P(w | context)`` for every id ``w`` in ``0..V-1`` (``context`` already truncated)."""
    order = len(index) - 1
    m = int(context.size)
    rows = lookup_rows(index, context, m, vocab_size)
    words = np.arange(vocab_size, dtype=np.int64)
    ctx_rows = [0] + [int(rows[j][m - j]) for j in range(1, m + 1)]
    gram = [np.full(vocab_size, -1, dtype=np.int64)]
    ctx = []
    for k in range(1, order + 1):
        j = k - 1
        if j > m or ctx_rows[j] < 0:
            gram.append(np.full(vocab_size, -1, dtype=np.int64))
            continue
        ix = index[k]
        assert ix is not None
        gram.append(ix.lookup(ctx_rows[j] * vocab_size + words if k > 1 else words))
    for j in range(order):
        ctx.append(np.full(vocab_size, ctx_rows[j] if j <= m else -1, dtype=np.int64))
    return Events(words, np.full(vocab_size, m, dtype=np.int64), gram, ctx)


def _take(arr: np.ndarray, rows: np.ndarray, fill: float) -> np.ndarray:
    """``arr[rows]`` where ``rows >= 0``, else ``fill`` (a table may be empty: a corpus of
    sentences shorter than ``n - 1`` tokens has no n-grams of the top order)."""
    if arr.size == 0:
        return np.full(rows.shape, fill, dtype=np.result_type(arr, type(fill)))
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
        tot = counts.context_total(k)
        if sel.all():  # every event has this context length (e.g. scoring whole sentences)
            return _take(counts.count[k], ev.gram[k], 0), _take(tot, ev.ctx[k - 1], 0)
        num[sel] = _take(counts.count[k], ev.gram[k][sel], 0)
        den[sel] = _take(tot, ev.ctx[k - 1][sel], 0)
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
