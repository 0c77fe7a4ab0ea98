"""Vectorised n-gram counting on padded id streams.

The n-grams of each order ``k`` are kept as a *table*: a sorted ``int64`` key
array with one entry per distinct k-gram type. A k-gram's key is
``prefix_index * V + last_token`` where ``prefix_index`` is the row of its
(k-1)-gram prefix in table ``k-1`` and ``V`` the vocabulary size, so tables form
a trie and every lookup is one ``np.searchsorted``. Table 0 is the empty
context (one row), table 1 has one row per vocabulary id.

Tables hold every k-gram type that occurs in the padded stream (so every context
of a counted n-gram has a row); ``count[k]`` holds how many of its occurrences
were *counted* (see :class:`Padding`), which may be 0 for rows that only serve
as contexts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Padding:
    """How sentences are padded and which n-grams are counted.

    Attributes:
        n_bos: number of ``<s>`` tokens put before each sentence.
        n_eos: number of ``</s>`` tokens put after each sentence.
        count_from: an n-gram is counted only when it ends at an in-sentence
            position ``>= count_from`` (0: every n-gram of the padded sentence,
            NLTK's ``everygrams``; ``n_bos``: only n-grams ending at a predicted token).
    """

    n_bos: int
    n_eos: int
    count_from: int


@dataclass
class PaddedStream:
    """Sentences padded and concatenated.

    Attributes:
        ids: ``(T,)`` int64 token ids.
        pos: ``(T,)`` int64 position of each token inside its padded sentence.
        rem: ``(T,)`` int64 number of tokens from this one to its sentence end (>= 1).
    """

    ids: np.ndarray
    pos: np.ndarray
    rem: np.ndarray


def pad_stream(
    ids: np.ndarray, lengths: np.ndarray, padding: Padding, bos_id: int, eos_id: int
) -> PaddedStream:
    """Pad every sentence of the flat ``ids`` (split by ``lengths``) and concatenate."""
    lengths = np.asarray(lengths, dtype=np.int64)
    plen = lengths + padding.n_bos + padding.n_eos
    total = int(plen.sum())
    starts = np.zeros(len(plen), dtype=np.int64)
    if len(plen) > 1:
        np.cumsum(plen[:-1], out=starts[1:])
    sent = np.repeat(np.arange(len(plen), dtype=np.int64), plen)
    pos = np.arange(total, dtype=np.int64) - starts[sent]
    out = np.empty(total, dtype=np.int64)
    is_bos = pos < padding.n_bos
    is_eos = pos >= padding.n_bos + lengths[sent]
    out[is_bos] = bos_id
    out[is_eos] = eos_id
    out[~(is_bos | is_eos)] = ids
    rem = plen[sent] - pos
    return PaddedStream(out, pos, rem)


@dataclass
class NgramCounts:
    """Count tables for orders ``0..order``.

    Attributes (lists indexed by order ``k``; entry 0 is the empty context):
        keys[k]: ``(m_k,)`` sorted int64 keys ``prefix * V + word`` (``keys[0]`` = ``[0]``).
        count[k]: ``(m_k,)`` int64 counted occurrences of each k-gram.
        prefix[k]: ``(m_k,)`` row of the (k-1)-gram prefix in table ``k-1``.
        suffix[k]: ``(m_k,)`` row of the (k-1)-gram suffix (drop first token) in table ``k-1``.
        word[k]: ``(m_k,)`` last token id.
    """

    order: int
    vocab_size: int
    keys: list[np.ndarray]
    count: list[np.ndarray]
    prefix: list[np.ndarray]
    suffix: list[np.ndarray]
    word: list[np.ndarray]
    _totals: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def size(self, k: int) -> int:
        """Number of rows of table ``k``."""
        return int(self.keys[k].size)

    def context_total(self, k: int, weights: np.ndarray | None = None) -> np.ndarray:
        """``(m_{k-1},)``: sum over k-grams sharing each (k-1)-gram prefix of ``weights``.

        ``weights`` defaults to ``count[k]`` (giving ``c(context •)``).
        """
        if weights is None:
            if k not in self._totals:
                tot = np.bincount(self.prefix[k], weights=self.count[k], minlength=self.size(k - 1))
                self._totals[k] = np.rint(tot).astype(np.int64)
            return self._totals[k]
        return np.bincount(self.prefix[k], weights=weights, minlength=self.size(k - 1))

    def continuation(self, k: int) -> np.ndarray:
        """``(m_k,)`` int64: ``N1+(• g)``, distinct counted (k+1)-grams whose suffix is ``g``."""
        if k >= self.order:
            raise ValueError(f"k: continuation counts need order k+1 <= {self.order}, got k={k}")
        seen = self.count[k + 1] > 0
        return np.bincount(self.suffix[k + 1][seen], minlength=self.size(k)).astype(np.int64)


def _unique(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sorted unique keys, index of the first occurrence of each, inverse)``.

    A stable sort: on n-gram keys (long runs of structured, repeated values)
    NumPy's stable argsort is about twice as fast as its default quicksort.
    """
    order = np.argsort(key, kind="stable")
    ks = key[order]
    new = np.empty(ks.size, dtype=bool)
    if ks.size:
        new[0] = True
        np.not_equal(ks[1:], ks[:-1], out=new[1:])
    grp = np.cumsum(new) - 1
    inv = np.empty(key.size, dtype=np.int64)
    inv[order] = grp
    return ks[new], order[new], inv


def count_ngrams(stream: PaddedStream, order: int, vocab_size: int, padding: Padding) -> NgramCounts:
    """Build the tables of orders ``1..order`` from a padded stream (all NumPy)."""
    ids, pos, rem = stream.ids, stream.pos, stream.rem
    V = vocab_size
    keys = [np.zeros(1, dtype=np.int64)]
    count = [np.array([int(ids.size)], dtype=np.int64)]
    zero1 = np.zeros(1, dtype=np.int64)
    prefix, suffix, word = [zero1], [zero1], [zero1]
    counted1 = pos >= padding.count_from
    keys.append(np.arange(V, dtype=np.int64))
    count.append(np.bincount(ids[counted1], minlength=V).astype(np.int64))
    prefix.append(np.zeros(V, dtype=np.int64))
    suffix.append(np.zeros(V, dtype=np.int64))
    word.append(np.arange(V, dtype=np.int64))
    row_prev = ids  # row in table k-1 of the (k-1)-gram starting at each position
    for k in range(2, order + 1):
        starts = np.flatnonzero(rem >= k)
        key = row_prev[starts] * V + ids[starts + (k - 1)]
        uniq, first, inv = _unique(key)
        counted = (pos[starts] + (k - 1)) >= padding.count_from
        cnt = np.bincount(inv, weights=counted, minlength=uniq.size).astype(np.int64)
        row = np.full(ids.size, -1, dtype=np.int64)
        row[starts] = inv
        keys.append(uniq)
        count.append(cnt)
        prefix.append(uniq // V)
        word.append(uniq % V)
        suffix.append(row_prev[starts[first] + 1])
        row_prev = row
    return NgramCounts(order, V, keys, count, prefix, suffix, word)


def lookup_rows(counts_keys: list[np.ndarray], ids: np.ndarray, max_k: int, vocab_size: int) -> list[np.ndarray]:
    """Rows of the k-grams *starting* at every position of ``ids``.

    Returns a list indexed by ``k = 0..max_k`` of ``(T,)`` int64 arrays; entry
    ``[k][p]`` is the row in table ``k`` of ``ids[p:p+k]`` or -1 when that k-gram
    is not in the table (or runs past the end). ``[0]`` is all zeros (root).
    """
    T = ids.size
    rows = [np.zeros(T, dtype=np.int64)]
    if max_k >= 1:
        rows.append(ids.astype(np.int64, copy=True))
    for k in range(2, max_k + 1):
        prev = rows[k - 1]
        cur = np.full(T, -1, dtype=np.int64)
        n_start = T - k + 1
        if n_start > 0 and counts_keys[k].size:
            p = prev[:n_start]
            ok = p >= 0
            key = p[ok] * vocab_size + ids[k - 1 :][ok]
            table = counts_keys[k]
            idx = np.searchsorted(table, key)
            idx_c = np.minimum(idx, table.size - 1)
            hit = table[idx_c] == key
            sub = np.where(hit, idx_c, -1)
            tmp = np.full(n_start, -1, dtype=np.int64)
            tmp[ok] = sub
            cur[:n_start] = tmp
        rows.append(cur)
    return rows
