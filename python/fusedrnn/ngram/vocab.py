"""Token vocabulary: maps sentences of words or characters to integer id arrays.

A batch of sentences becomes one flat ``int64`` array of ids plus one array of
sentence lengths, with no Python bytecode run per token:

* characters: the text is encoded once as UTF-32 (``np.frombuffer``) and mapped
  through a direct lookup table indexed by code point;
* words: the sentences are split with ``str.split`` (``map``), flattened with
  ``itertools.chain`` and mapped to ids with ``np.fromiter(map(dict.get, ...))``,
  one C-level dictionary lookup per token against a dictionary of the distinct
  types (the input already is one Python ``str`` per token, so this is the
  cheapest exact mapping; hashing code points in NumPy was nearly 3x slower).

Ids ``0 .. m-1`` are the regular tokens (sorted), followed by three special ids:

* ``unk_id`` for ``<UNK>`` (out-of-vocabulary tokens),
* ``bos_id`` for ``<s>`` (sentence-start padding),
* ``eos_id`` for ``</s>`` (sentence-end padding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
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
_SENTENCE_TYPES = frozenset((str, list, tuple))
_NOT_STR = "texts: every token must be a str"


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
    if set(map(type, out)) <= _SENTENCE_TYPES:  # the common case, checked in C
        return out
    for s in out:
        if not isinstance(s, (str, list, tuple)):
            raise TypeError(
                f"{name}: each sentence must be a str or a list/tuple of str tokens, "
                f"got {type(s).__name__}"
            )
    return out


@dataclass
class WordTokens:
    """The word tokens of a batch of sentences, in order.

    Attributes:
        tokens: every token of every sentence (one flat list of ``str``).
    """

    tokens: list[str]

    @property
    def size(self) -> int:
        return len(self.tokens)

    def strings(self, index: np.ndarray) -> list[str]:
        """The token strings at ``index``."""
        t = self.tokens
        return [t[i] for i in np.asarray(index, dtype=np.int64).tolist()]


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def flatten_sentences(texts: Sequence[Sentence], level: Level) -> tuple[WordTokens | np.ndarray, np.ndarray]:
    """All tokens of all sentences and the number of tokens per sentence.

    Returns ``(tokens, lengths)``: for ``level="char"`` ``tokens`` is a ``uint32``
    array of code points; for ``level="word"`` a :class:`WordTokens`. ``lengths``
    is ``int64`` with one entry per sentence. Word tokens given in lists are
    type-checked later, by :meth:`Vocabulary.build` (on the distinct tokens) and
    :meth:`Vocabulary.encode_raw` (on the tokens that are not in the vocabulary).
    """
    types = set(map(type, texts))
    all_str = types <= {str} or all(isinstance(s, str) for s in texts)
    if level == "char" and all_str:
        joined = "".join(texts)  # type: ignore[arg-type]
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return _codes(joined), lengths
    if level == "word" and all_str:
        token_lists = list(map(str.split, texts))  # type: ignore[arg-type]
    else:
        token_lists = [split_sentence(s, level) if isinstance(s, str) else s for s in texts]
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = list(chain.from_iterable(token_lists))
    if level == "char":
        if not all(map(str.__instancecheck__, flat)):
            raise TypeError(_NOT_STR)
        tok_len = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
        if tok_len.size and not np.all(tok_len == 1):
            raise ValueError("texts: character-level tokens must be single characters")
        return _codes("".join(flat)), lengths
    return WordTokens(flat), lengths


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
        flat = raw.tokens
        try:
            distinct = set(flat)
        except TypeError:  # an unhashable token
            raise TypeError(_NOT_STR) from None
        if not all(map(str.__instancecheck__, distinct)):
            raise TypeError(_NOT_STR)
        regular = sorted(distinct - _SPECIAL_SET)
        vocab = cls(regular, level, presorted=True)
        # every token is in the index; a literal "<s>" etc. gets the special id
        ids = np.fromiter(map(vocab._index.__getitem__, flat), dtype=np.int64, count=len(flat))
        if unk_cutoff <= 1:
            return vocab, ids
        keep = np.bincount(ids, minlength=len(vocab)) >= unk_cutoff
        m = len(regular)
        cut = cls(list(compress(regular, keep[:m].tolist())), level, presorted=True)
        new_id = np.full(len(vocab), cut.unk_id, dtype=np.int64)  # rare tokens become <UNK>
        new_id[np.flatnonzero(keep[:m])] = np.arange(len(cut) - 3, dtype=np.int64)
        for old, new in ((vocab.bos_id, cut.bos_id), (vocab.eos_id, cut.eos_id)):
            if keep[old]:  # a literal "<s>" / "</s>" seen at least unk_cutoff times
                new_id[old] = new
        return cut, new_id[ids]

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
        # one C-level dictionary lookup per token (specials are recognised by their spelling)
        flat = raw.tokens
        try:
            ids = np.fromiter(map(self._index.get, flat, repeat(self.unk_id)), dtype=np.int64, count=len(flat))
        except TypeError:  # an unhashable token
            raise TypeError(_NOT_STR) from None
        unknown = np.flatnonzero(ids == self.unk_id).tolist()  # only these can be non-str
        if unknown and not all(map(str.__instancecheck__, map(flat.__getitem__, unknown))):
            raise TypeError(_NOT_STR)
        return ids

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
