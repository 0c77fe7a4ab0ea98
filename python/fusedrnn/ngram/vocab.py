"""Token vocabulary: maps sentences of words or characters to integer id arrays.

Every conversion here is vectorised: a batch of sentences becomes one flat
``int64`` array of ids plus one array of sentence lengths, built with NumPy
(``np.unique`` / ``np.searchsorted``) rather than a Python loop over tokens.

Ids ``0 .. m-1`` are the regular tokens (sorted), followed by three special ids:

* ``unk_id`` for ``<UNK>`` (out-of-vocabulary tokens),
* ``bos_id`` for ``<s>`` (sentence-start padding),
* ``eos_id`` for ``</s>`` (sentence-end padding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

UNK = "<UNK>"
BOS = "<s>"
EOS = "</s>"
SPECIALS = (UNK, BOS, EOS)
_SPECIAL_SET = frozenset(SPECIALS)
_DENSE_CHARS = 1 << 17  # code points below this are mapped through a dense table

Level = Literal["word", "char"]
Sentence = Union[str, Sequence[str]]

LEVELS = ("word", "char")


def check_level(level: object) -> Level:
    """Return ``level`` if it is ``"word"`` or ``"char"``, else raise ``ValueError``."""
    if level not in LEVELS:
        raise ValueError(f"level: expected 'word' or 'char', got {level!r}")
    return level  # type: ignore[return-value]


def split_sentence(sentence: Sentence, level: Level) -> list[str]:
    """Tokens of one sentence: ``str.split()`` words or characters; sequences are kept."""
    if isinstance(sentence, str):
        return sentence.split() if level == "word" else list(sentence)
    if isinstance(sentence, (bytes, bytearray)):
        raise TypeError("sentence: expected str or a sequence of str tokens, got bytes")
    return list(sentence)


def as_sentence_list(texts: object, name: str = "texts") -> list[Sentence]:
    """Check that ``texts`` is an iterable of sentences (not one bare string)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{name}: expected an iterable of sentences, got a single {type(texts).__name__}; "
            f"wrap it in a list, e.g. [{texts[:20]!r}]"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(f"{name}: expected an iterable of sentences, got {type(texts).__name__}")
    out = list(texts)
    for s in out:
        if not isinstance(s, (str, list, tuple)):
            raise TypeError(
                f"{name}: each sentence must be a str or a list/tuple of str tokens, "
                f"got {type(s).__name__}"
            )
    return out


# Unicode whitespace as str.split() sees it (all such code points are below U+3001).
_WS_LIMIT = 0x3001
_WS = np.array([chr(c).isspace() for c in range(_WS_LIMIT)], dtype=bool)
_P = 0x100000001B3  # odd, so invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)


@dataclass
class WordTokens:
    """Word tokens stored as Unicode code points (no per-token Python objects).

    Attributes:
        text: the string the code points come from.
        codes: ``(M,)`` uint32 code points of ``text``.
        start: ``(N,)`` int64 offset of each token in ``codes``.
        length: ``(N,)`` int64 number of characters of each token.
        hash: ``(N,)`` uint64 hash of each token (see :func:`hash_tokens`).
    """

    text: str
    codes: np.ndarray
    start: np.ndarray
    length: np.ndarray
    hash: np.ndarray

    @property
    def size(self) -> int:
        return int(self.start.size)

    def strings(self, index: np.ndarray) -> list[str]:
        """The token strings at ``index`` (a Python list; use for types, not for every token)."""
        t = self.text
        return [t[a:a + n] for a, n in zip(self.start[index].tolist(), self.length[index].tolist())]


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def hash_tokens(codes: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``(N,)`` uint64 polynomial hashes ``sum_i c_i P**i`` (mod 2**64) of code-point runs.

    Vectorised over all characters with one prefix sum: a run's sum is the
    difference of two prefix sums times ``P**-start``. Equal strings get equal
    hashes; callers resolve collisions by comparing code points.
    """
    n = start.size
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    m = codes.size
    with np.errstate(over="ignore"):
        pw = np.empty(m + 1, dtype=np.uint64)
        pw[0] = 1
        if m:
            np.cumprod(np.full(m, _P, dtype=np.uint64), out=pw[1:])
        inv = np.empty(m + 1, dtype=np.uint64)
        inv[0] = 1
        if m:
            np.cumprod(np.full(m, _P_INV, dtype=np.uint64), out=inv[1:])
        pref = np.zeros(m + 1, dtype=np.uint64)
        np.cumsum(codes.astype(np.uint64) * pw[:m], out=pref[1:])
        h = (pref[start + length] - pref[start]) * inv[start]
        h = h + length.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return h


def tokens_equal(codes_a: np.ndarray, start_a: np.ndarray, len_a: np.ndarray,
                 codes_b: np.ndarray, start_b: np.ndarray, len_b: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: token ``i`` of A equals token ``i`` of B (vectorised over characters)."""
    n = start_a.size
    same_len = len_a == len_b
    total = int(len_a.sum())
    if n == 0 or total == 0:
        return same_len
    tok = np.repeat(np.arange(n, dtype=np.int64), len_a)
    off = np.arange(total, dtype=np.int64) - (np.cumsum(len_a) - len_a)[tok]
    ok_tok = same_len[tok]
    ca = codes_a[start_a[tok] + off]
    cb = codes_b[np.where(ok_tok, start_b[tok] + off, 0)]
    bad = np.bincount(tok[ok_tok & (ca != cb)], minlength=n)
    return same_len & (bad == 0)


def word_tokens_from_list(flat: list[str]) -> WordTokens:
    """:class:`WordTokens` of a list of token strings (joined in C, no per-token Python code)."""
    text = "".join(flat)
    length = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
    start = np.zeros(len(flat), dtype=np.int64)
    if len(flat) > 1:
        np.cumsum(length[:-1], out=start[1:])
    codes = _codes(text)
    return WordTokens(text, codes, start, length, hash_tokens(codes, start, length))


def _word_tokens_from_strings(sents: Sequence[str]) -> tuple[WordTokens, np.ndarray]:
    """Whitespace-split every sentence at once; returns tokens and tokens per sentence."""
    text = "\n".join(sents)
    codes = _codes(text)
    ws = np.zeros(codes.size, dtype=bool)
    small = codes < _WS_LIMIT
    ws[small] = _WS[codes[small]]
    word = ~ws
    edges = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    start = np.flatnonzero(edges == 1).astype(np.int64)
    end = np.flatnonzero(edges == -1).astype(np.int64)
    length = end - start
    sent_len = np.fromiter(map(len, sents), dtype=np.int64, count=len(sents))
    sent_start = np.zeros(len(sents), dtype=np.int64)
    if len(sents) > 1:
        np.cumsum(sent_len[:-1] + 1, out=sent_start[1:])
    owner = np.searchsorted(sent_start, start, side="right") - 1
    per_sent = np.bincount(owner, minlength=len(sents)).astype(np.int64)
    return WordTokens(text, codes, start, length, hash_tokens(codes, start, length)), per_sent


def flatten_sentences(texts: Sequence[Sentence], level: Level) -> tuple[WordTokens | np.ndarray, np.ndarray]:
    """All tokens of all sentences and the number of tokens per sentence.

    Returns ``(tokens, lengths)``: for ``level="char"`` ``tokens`` is a ``uint32``
    array of code points; for ``level="word"`` a :class:`WordTokens`. ``lengths``
    is ``int64`` with one entry per sentence.
    """
    all_str = all(isinstance(s, str) for s in texts)
    if level == "char" and all_str:
        joined = "".join(texts)  # type: ignore[arg-type]
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return _codes(joined), lengths
    if level == "word" and all_str:
        wt, lengths = _word_tokens_from_strings(texts)  # type: ignore[arg-type]
        return wt, lengths
    token_lists = [split_sentence(s, level) if isinstance(s, str) else s for s in texts]
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = list(chain.from_iterable(token_lists))
    if not all(map(str.__instancecheck__, flat)):
        raise TypeError("texts: every token must be a str")
    if level == "char":
        tok_len = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
        if tok_len.size and not np.all(tok_len == 1):
            raise ValueError("texts: character-level tokens must be single characters")
        return _codes("".join(flat)), lengths
    return word_tokens_from_list(flat), lengths


class Vocabulary:
    """Sorted set of regular tokens plus ``<UNK>``, ``<s>``, ``</s>``.

    Args:
        regular: the regular tokens (unique); for ``level="char"`` single characters.
        level: ``"word"`` or ``"char"``.
    """

    def __init__(self, regular: Sequence[str], level: Level, *, presorted: bool = False) -> None:
        self.level: Level = check_level(level)
        if not presorted:
            regular = sorted(set(regular) - set(SPECIALS) if level == "word" else set(regular))
        self.tokens: list[str] = list(regular) + list(SPECIALS)
        m = len(regular)
        self.unk_id, self.bos_id, self.eos_id = m, m + 1, m + 2
        self._index = {t: i for i, t in enumerate(self.tokens)}
        if level == "char":
            if any(len(t) != 1 for t in regular):
                raise ValueError("regular: character-level tokens must be single characters")
            self._keys: np.ndarray = np.array([ord(t) for t in regular], dtype=np.uint32)
        else:
            # every token, specials included, so that a literal "<s>" in the input maps to bos_id
            self._wt = word_tokens_from_list(self.tokens)
            self._hash_order = np.argsort(self._wt.hash, kind="stable")
            self._hash_sorted = self._wt.hash[self._hash_order]
            self._use_hash = bool(np.all(np.diff(self._hash_sorted) != 0))

    @classmethod
    def from_tokens(cls, raw: WordTokens | np.ndarray, level: Level, unk_cutoff: int = 1) -> "Vocabulary":
        """Build from the tokens returned by :func:`flatten_sentences`.

        Tokens seen fewer than ``unk_cutoff`` times are left out (they map to ``<UNK>``).
        """
        return cls.build(raw, level, unk_cutoff)[0]

    @classmethod
    def build(cls, raw: WordTokens | np.ndarray, level: Level, unk_cutoff: int = 1) -> tuple["Vocabulary", np.ndarray]:
        """``(vocabulary, ids of raw)`` in one pass (see :meth:`from_tokens`)."""
        if level == "char":
            assert isinstance(raw, np.ndarray)
            if raw.size and int(raw.max()) < _DENSE_CHARS:
                counts = np.bincount(raw, minlength=1)
                uniq = np.flatnonzero(counts >= unk_cutoff)
            else:
                u, c = np.unique(raw, return_counts=True)
                uniq = u[c >= unk_cutoff]
            regular = uniq.astype(np.uint32).tobytes().decode("utf-32-le")
            vocab = cls(list(regular), level)
            return vocab, vocab.encode_raw(raw)
        assert isinstance(raw, WordTokens)
        if raw.size == 0:
            vocab = cls([], level)
            return vocab, np.zeros(0, dtype=np.int64)
        h = raw.hash
        order = np.argsort(h, kind="stable")
        hs = h[order]
        new = np.empty(hs.size, dtype=bool)
        new[0] = True
        np.not_equal(hs[1:], hs[:-1], out=new[1:])
        inv = np.empty(h.size, dtype=np.int64)
        inv[order] = np.cumsum(new) - 1
        reps = order[new]  # one token index per distinct hash
        rep_of = reps[inv]
        if not bool(np.all(tokens_equal(raw.codes, raw.start, raw.length,
                                        raw.codes, raw.start[rep_of], raw.length[rep_of]))):
            # two different tokens share a 64-bit hash: group by the strings instead
            names = np.array(raw.strings(np.arange(raw.size)))
            uniq, inv, counts = np.unique(names, return_inverse=True, return_counts=True)
            vocab = cls(uniq[counts >= unk_cutoff].tolist(), level)
            return vocab, vocab.encode_raw(raw)
        counts = np.bincount(inv)
        keep = np.flatnonzero(counts >= unk_cutoff)
        kept = raw.strings(reps[keep])
        srt = np.array(sorted(range(len(kept)), key=kept.__getitem__), dtype=np.int64)
        names = [kept[i] for i in srt.tolist()]
        special = np.array([t in _SPECIAL_SET for t in names], dtype=bool) if names else np.zeros(0, bool)
        regular_pos = np.flatnonzero(~special)
        vocab = cls([names[i] for i in regular_pos.tolist()], level, presorted=True)
        gid = np.full(reps.size, vocab.unk_id, dtype=np.int64)
        gid[keep[srt[regular_pos]]] = np.arange(regular_pos.size, dtype=np.int64)
        for i in np.flatnonzero(special).tolist():  # literal "<s>" etc. in the text
            gid[keep[srt[i]]] = vocab._index[names[i]]
        return vocab, gid[inv]

    def __len__(self) -> int:
        """Number of ids (regular tokens + 3 specials)."""
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def id_of(self, token: str) -> int:
        """Id of one token (``unk_id`` if unknown)."""
        return self._index.get(token, self.unk_id)

    def encode_raw(self, raw: WordTokens | np.ndarray) -> np.ndarray:
        """Ids (``int64``) of the tokens returned by :func:`flatten_sentences`."""
        if self.level == "char":
            assert isinstance(raw, np.ndarray)
            keys = self._keys
            if raw.size == 0:
                return np.zeros(0, dtype=np.int64)
            if keys.size == 0:
                return np.full(raw.shape, self.unk_id, dtype=np.int64)
            top = int(raw.max())
            if top < _DENSE_CHARS:  # direct lookup table over code points
                lut = np.full(max(top, int(keys[-1])) + 1, self.unk_id, dtype=np.int64)
                lut[keys] = np.arange(keys.size, dtype=np.int64)
                return lut[raw]
            pos = np.minimum(np.searchsorted(keys, raw), keys.size - 1)
            return np.where(keys[pos] == raw, pos, self.unk_id).astype(np.int64)
        assert isinstance(raw, WordTokens)
        if raw.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not self._use_hash:  # two vocabulary entries share a hash (practically never)
            return np.array([self.id_of(t) for t in raw.strings(np.arange(raw.size))], dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._hash_sorted, raw.hash), self._hash_sorted.size - 1)
        cand = self._hash_order[pos]
        hit = self._hash_sorted[pos] == raw.hash
        vt = self._wt
        same = tokens_equal(raw.codes, raw.start, raw.length, vt.codes, vt.start[cand], vt.length[cand])
        return np.where(hit & same, cand, self.unk_id).astype(np.int64)

    def encode(self, texts: Sequence[Sentence]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)`` for a list of sentences; unknown tokens become ``unk_id``."""
        raw, lengths = flatten_sentences(texts, self.level)
        return self.encode_raw(raw), lengths

    def encode_tokens(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of a short list of tokens (specials are recognised by their spelling)."""
        return np.fromiter((self.id_of(t) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Token strings for ids."""
        return [self.tokens[int(i)] for i in ids]
