"""Vectorised n-gram counting on padded id streams.

The n-grams of each order ``k`` are kept as a *table*: a sorted ``int64`` key
array with one entry per distinct k-gram type. A k-gram's key is
``prefix_index * V + last_token`` where ``prefix_index`` is the row of its
(k-1)-gram prefix in table ``k-1`` and ``V`` the vocabulary size, so tables form
a trie. Table 0 is the empty context (one row), table 1 has one row per
vocabulary id.

Tables hold every k-gram type that occurs in the padded stream (so every context
of a counted n-gram has a row); ``count[k]`` holds how many of its occurrences
were *counted* (see :class:`Padding`), which may be 0 for rows that only serve
as contexts.

Everything is NumPy, with no sort of ``int64`` keys (NumPy's comparison sorts cost
about 50-90 ns per element here):

* the distinct keys of an order are found with a direct table (a ``bool`` array
  over the key range) when the range is small, else with an LSD radix sort whose
  passes are NumPy's counting sort of ``uint16`` digits (:func:`radix_argsort`);
* a key is turned into its row by a :class:`KeyIndex`: the same direct table, or
  an open-addressing hash table whose inserts and probes run as whole-array
  operations. Fitting builds one per order and scoring reuses it.
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
        word[k]: ``(m_k,)`` last token id.
        index[k]: :class:`KeyIndex` of ``keys[k]`` (``None`` for ``k = 0``).
        suffix[k]: ``(m_k,)`` row of the (k-1)-gram suffix (drop first token) in table ``k-1``
            (a property, computed on first use: only the back-off estimators need it).
    """

    order: int
    vocab_size: int
    keys: list[np.ndarray]
    count: list[np.ndarray]
    prefix: list[np.ndarray]
    word: list[np.ndarray]
    index: list["KeyIndex | None"] = field(default_factory=list, repr=False)
    _totals: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _suffix: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def suffix(self) -> list[np.ndarray]:
        """Rows of the suffixes, one lookup per row: the suffix of ``(w1..wk)`` is
        ``(w2..wk)``, whose key is ``suffix(w1..w_{k-1}) * V + wk``; it always has a row
        (it occurs in the stream wherever the k-gram does)."""
        if self._suffix is None:
            V = self.vocab_size
            suf = [np.zeros(1, dtype=np.int64), np.zeros(self.size(1), dtype=np.int64)]
            for k in range(2, self.order + 1):
                if k == 2:  # the row of a unigram is its id
                    suf.append(self.word[2].copy())
                    continue
                ix = self.index[k - 1]
                assert ix is not None
                suf.append(ix.lookup(suf[k - 1][self.prefix[k]] * V + self.word[k]))
            self._suffix = suf
        return self._suffix

    def first_word(self, k: int) -> np.ndarray:
        """``(m_k,)`` int64: the first token id of every row of table ``k`` (follows the prefix rows)."""
        rows = np.arange(self.size(k), dtype=np.int64)
        for j in range(k, 1, -1):
            rows = self.prefix[j][rows]
        return self.word[1][rows]

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


# Direct tables are used for key ranges up to _DENSE_PER_KEY * (number of keys) + _DENSE_MIN
# entries, never above _DENSE_MAX (int32 entries: 64 MB). A fitted model keeps them for scoring.
_DENSE_PER_KEY = 4
_DENSE_MIN = 1 << 16
_DENSE_MAX = 1 << 24
_HASH_LOAD_BITS = 2
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio (Fibonacci hashing)


def use_direct_table(key_range: int, n_keys: int) -> bool:
    """Whether a key range is small enough for a direct table, given ``n_keys`` keys to place."""
    return key_range <= min(_DENSE_MAX, _DENSE_PER_KEY * n_keys + _DENSE_MIN)


def radix_argsort(key: np.ndarray, key_range: int) -> np.ndarray:
    """Stable ``argsort`` of ``int64`` keys in ``[0, key_range)``.

    Least-significant-digit radix sort with 16-bit digits: each pass is NumPy's
    stable argsort of a ``uint16`` array, which is a counting sort (linear time).
    A 31-bit key takes two passes, about 4x faster than a stable argsort of the keys.
    """
    bits = max(int(key_range - 1).bit_length(), 1)
    perm: np.ndarray | None = None
    for shift in range(0, bits, 16):
        digit = (key >> shift).astype(np.uint16) if shift else key.astype(np.uint16)
        if perm is not None:
            digit = digit[perm]
        p = np.argsort(digit, kind="stable")
        perm = p if perm is None else perm[p]
    assert perm is not None
    return perm


class KeyIndex:
    """Row of every key of one sorted table: ``lookup(q)`` gives the row of ``q`` or -1.

    Either a direct table (``int32`` array over the key range, ``table[key] = row``)
    or an open-addressing hash table: ``2**b > 4 m`` slots holding rows, Fibonacci
    hashing (top ``b`` bits of ``key * 0x9E37...``), linear probing. Insertion and
    lookup are vectorised: every round handles all keys still probing at once, and
    at load factor <= 1/4 a key present in the table is found in about 1.2 probes.

    Args:
        keys: ``(m,)`` sorted distinct ``int64`` keys in ``[0, key_range)``.
        key_range: exclusive upper bound of the keys.
        direct: a direct table already built (``key_range + 1`` entries, the last -1),
            else one is built if :func:`use_direct_table` allows and a hash table otherwise.
    """

    def __init__(self, keys: np.ndarray, key_range: int, direct: np.ndarray | None = None) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        self.keys = keys
        self.key_range = int(key_range)
        m = int(keys.size)
        if direct is None and use_direct_table(self.key_range, m):
            direct = np.full(self.key_range + 1, -1, dtype=np.int32)
            direct[keys] = np.arange(m, dtype=np.int32)
        # the extra last entry is -1, so that the query -1 ("no such key") finds no row
        self.direct = direct
        if direct is not None:
            return
        bits = max((m << _HASH_LOAD_BITS).bit_length(), 4)  # load factor <= 2**-_HASH_LOAD_BITS
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        slots = np.full(1 << bits, -1, dtype=np.int32)
        pending = np.arange(m, dtype=np.int64)
        s = self._home(keys)
        while pending.size:
            free = slots[s] < 0
            slots[s[free]] = pending[free]  # keys racing for one slot: one of them wins it
            lost = slots[s] != pending
            pending = pending[lost]
            s = (s[lost] + 1) & self._mask
        self.slots = slots

    @property
    def is_direct(self) -> bool:
        return self.direct is not None

    def _home(self, q: np.ndarray) -> np.ndarray:
        return ((q.view(np.uint64) * _HASH_MULT) >> self._shift).astype(np.intp)

    def lookup(self, q: np.ndarray) -> np.ndarray:
        """``(N,)`` int64 rows of the keys ``q`` (each in ``[0, key_range)`` or -1); -1 if absent."""
        q = np.ascontiguousarray(q, dtype=np.int64)
        if self.direct is not None:
            return self.direct[q].astype(np.int64)  # q = -1 reads the final -1
        keys = self.keys
        if keys.size == 0:
            return np.full(q.size, -1, dtype=np.int64)
        s = self._home(q)
        r = self.slots[s].astype(np.int64)
        occupied = r >= 0
        found = occupied & (keys[r] == q)  # r = -1 reads the last key; masked by `occupied`
        todo = np.flatnonzero(occupied & ~found & (q >= 0))
        r[~found] = -1
        s = s[todo]
        while todo.size:  # the home slot holds another key: probe the next slots
            s = (s + 1) & self._mask
            rr = self.slots[s].astype(np.int64)
            occupied = rr >= 0
            hit = occupied & (keys[rr] == q[todo])
            r[todo[hit]] = rr[hit]
            more = occupied & ~hit
            todo, s = todo[more], s[more]
        return r


def index_tables(keys: list[np.ndarray], vocab_size: int) -> list[KeyIndex | None]:
    """A :class:`KeyIndex` for every table ``k >= 1`` of ``keys`` (entry 0 is ``None``)."""
    out: list[KeyIndex | None] = [None]
    for k in range(1, len(keys)):
        out.append(KeyIndex(keys[k], keys[k - 1].size * vocab_size))
    return out


def count_ngrams(stream: PaddedStream, order: int, vocab_size: int, padding: Padding) -> NgramCounts:
    """Build the tables of orders ``1..order`` from a padded stream (all NumPy)."""
    ids, pos, rem = stream.ids, stream.pos, stream.rem
    V = vocab_size
    T = int(ids.size)
    all_counted = padding.count_from <= 0  # NLTK: every n-gram of the padded sentence
    keys = [np.zeros(1, dtype=np.int64)]
    count = [np.array([T], dtype=np.int64)]
    zero1 = np.zeros(1, dtype=np.int64)
    prefix, word = [zero1], [zero1]
    keys.append(np.arange(V, dtype=np.int64))
    count.append(np.bincount(ids if all_counted else ids[pos >= padding.count_from], minlength=V))
    prefix.append(np.zeros(V, dtype=np.int64))
    word.append(np.arange(V, dtype=np.int64))
    index: list[KeyIndex | None] = [None, KeyIndex(keys[1], V)]
    row_prev = ids  # row in table k-1 of the (k-1)-gram starting at each position
    starts = np.arange(T, dtype=np.int64)
    for k in range(2, order + 1):
        starts = starts[rem[starts] >= k]  # positions where a k-gram fits in its sentence
        key = row_prev[starts] * V + ids[starts + (k - 1)]
        key_range = keys[k - 1].size * V
        if use_direct_table(key_range, key.size):
            seen = np.zeros(key_range, dtype=bool)
            seen[key] = True
            uniq = np.flatnonzero(seen)
            direct = np.full(key_range + 1, -1, dtype=np.int32)
            direct[uniq] = np.arange(uniq.size, dtype=np.int32)
            inv = direct[key].astype(np.int64)
            idx = KeyIndex(uniq, key_range, direct)
        else:
            perm = radix_argsort(key, key_range)
            ks = key[perm]
            new = np.empty(ks.size, dtype=bool)
            new[:1] = True
            np.not_equal(ks[1:], ks[:-1], out=new[1:])
            inv = np.empty(key.size, dtype=np.int64)
            inv[perm] = np.cumsum(new) - 1
            uniq = ks[new]
            idx = KeyIndex(uniq, key_range)
        if all_counted:
            cnt = np.bincount(inv, minlength=uniq.size)
        else:
            counted = pos[starts] >= padding.count_from - (k - 1)  # n-gram ends at a counted position
            cnt = np.bincount(inv[counted], minlength=uniq.size)
        row = np.full(T, -1, dtype=np.int64)
        row[starts] = inv
        keys.append(uniq)
        count.append(cnt.astype(np.int64, copy=False))
        pre, last = np.divmod(uniq, V)
        prefix.append(pre)
        word.append(last)
        index.append(idx)
        row_prev = row
    return NgramCounts(order, V, keys, count, prefix, word, index)


def lookup_rows(index: list[KeyIndex | None], ids: np.ndarray, max_k: int, vocab_size: int) -> list[np.ndarray]:
    """Rows of the k-grams *starting* at every position of ``ids``.

    Returns a list indexed by ``k = 0..max_k`` of ``(T,)`` int64 arrays; entry
    ``[k][p]`` is the row in table ``k`` of ``ids[p:p+k]`` or -1 when that k-gram
    is not in the table (or runs past the end). ``[0]`` is all zeros (root).
    ``index`` holds the :class:`KeyIndex` of each table (see :func:`index_tables`).
    """
    T = ids.size
    rows = [np.zeros(T, dtype=np.int64)]
    if max_k >= 1:
        rows.append(ids.astype(np.int64, copy=True))
    for k in range(2, max_k + 1):
        cur = np.full(T, -1, dtype=np.int64)
        n_start = T - k + 1
        if n_start > 0:
            p = rows[k - 1][:n_start]
            q = np.where(p >= 0, p * vocab_size + ids[k - 1:], -1)
            ix = index[k]
            assert ix is not None
            cur[:n_start] = ix.lookup(q)
        rows.append(cur)
    return rows
