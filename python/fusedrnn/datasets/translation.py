"""Spanish-to-English sentence pairs for the translation reference task.

The data is ``spa-eng/spa.txt`` from manythings.org/anki (Tatoeba sentences, CC-BY 2.0), the
file of the TensorFlow "NMT with attention" tutorial: one pair per line,
``English<TAB>Spanish``, sometimes followed by more tab-separated columns (attribution),
which are ignored. The file is found by :func:`fusedrnn.datasets.locate.find_data_file`: an
explicit path (the file, or a folder holding ``spa.txt`` or ``spa-eng/spa.txt``), then
``$FUSEDRNN_DATA``, then the user cache folder.

Pipeline::

    load_pairs()            -> [(spanish, english), ...]              raw text, file order
    preprocess_sentence()   -> "<start> ¿ todavia estan en casa ? <end>"
    WordTokenizer.fit()     -> word -> index (0 is padding)
    load_translation()      -> TranslationData: int32 (N, Ts) / (N, Tt) arrays, post-padded,
                               tokenizers, a seeded train/validation split

The task translates Spanish (the source) into English (the target).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from fusedrnn.datasets.locate import PathLike, find_data_file

DATA_NAME = "spa-eng/spa.txt"
DATA_URL = "http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip"
DATA_WHAT = "Spanish-English sentence pairs"

START_TOKEN = "<start>"
END_TOKEN = "<end>"
PAD_INDEX = 0

# Marks that are kept as words of their own.
_MARKS = "?.!,¿"
_SPACE_MARKS = re.compile("([" + re.escape(_MARKS) + "])")
_NOT_KEPT = re.compile("[^a-z" + re.escape(_MARKS) + "]+")

_JSON_FORMAT = "fusedrnn.WordTokenizer"
_JSON_VERSION = 1


# --------------------------------------------------------------------------- preprocessing
def preprocess_sentence(s: str) -> str:
    """Normalizes one sentence into space-separated words wrapped in ``<start> ... <end>``.

    Steps, in order: lower-case; Unicode NFD decomposition with the combining marks
    (category ``Mn``) dropped, so accented letters lose their accents (``á`` -> ``a``,
    ``ñ`` -> ``n``); a space on each side of ``? . ! , ¿``; every run of characters other
    than ASCII letters ``a-z`` and those five marks (digits, other punctuation such as
    ``¡``, ``'`` or ``-``, letters with no ASCII base) becomes one space; leading and
    trailing spaces removed; ``<start> `` prepended and `` <end>`` appended.

    >>> preprocess_sentence("¿Todavía están en casa?")
    '<start> ¿ todavia estan en casa ? <end>'
    """
    if not isinstance(s, str):
        raise TypeError(f"s: expected a str, got {type(s).__name__}")
    s = s.lower()
    s = "".join(ch for ch in unicodedata.normalize("NFD", s) if unicodedata.category(ch) != "Mn")
    s = _SPACE_MARKS.sub(r" \1 ", s)
    s = _NOT_KEPT.sub(" ", s).strip()
    return f"{START_TOKEN} {s} {END_TOKEN}" if s else f"{START_TOKEN} {END_TOKEN}"


# --------------------------------------------------------------------------- tokenizer
class WordTokenizer:
    """Maps whitespace-separated words to integer indices and back.

    Index 0 is reserved for padding and never given to a word. With ``oov_token`` set, that
    token gets index 1 and unknown words are encoded as 1; without it (the default),
    encoding a word the tokenizer was not fitted on raises ``ValueError`` listing the
    unknown words. The other words get indices ``1, 2, ...`` (``2, 3, ...`` with an
    ``oov_token``) by **descending frequency** in the fitted sentences, **ties broken by
    ascending code-point order of the word** (``str`` comparison). The indices therefore do
    not depend on the order of the fitted sentences.

    Attributes (after :meth:`fit` or :meth:`from_json`):
        word_index: ``{word: index}``.
        index_word: ``{index: word}``.
        word_counts: ``{word: count in the fitted sentences}``.
        vocab_size: number of indices including padding (``max index + 1``), the size an
            embedding table needs.
    """

    def __init__(self, oov_token: Optional[str] = None):
        if oov_token is not None and (not isinstance(oov_token, str) or not oov_token or oov_token.split() != [oov_token]):
            raise ValueError(f"oov_token: expected None or a non-empty word without whitespace, got {oov_token!r}")
        self.oov_token = oov_token
        self.word_index: Dict[str, int] = {}
        self.index_word: Dict[int, str] = {}
        self.word_counts: Dict[str, int] = {}
        self._fitted = False

    # ---- building
    def fit(self, sentences: Iterable[str]) -> "WordTokenizer":
        """Builds the vocabulary from `sentences` (strings, split on whitespace), replacing any
        previous one. Returns ``self``."""
        if isinstance(sentences, str):
            raise TypeError("sentences: expected an iterable of sentences, got a single str")
        counts: Counter = Counter()
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise TypeError(f"sentences[{i}]: expected a str, got {type(s).__name__}")
            counts.update(s.split())
        words = sorted((w for w in counts if w != self.oov_token), key=lambda w: (-counts[w], w))
        if self.oov_token is not None:
            words.insert(0, self.oov_token)
        self._set_vocabulary(words, [counts.get(w, 0) for w in words])
        return self

    def _set_vocabulary(self, words: Sequence[str], counts: Sequence[int]) -> None:
        self.word_index = {w: i for i, w in enumerate(words, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.word_counts = dict(zip(words, (int(c) for c in counts)))
        self._fitted = True

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("WordTokenizer: not fitted; call fit(sentences) or build it with from_json()")

    @property
    def vocab_size(self) -> int:
        """Number of indices including the padding index 0."""
        return len(self.word_index) + 1

    def __len__(self) -> int:
        return self.vocab_size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordTokenizer):
            return NotImplemented
        return (self.oov_token == other.oov_token and self.word_index == other.word_index
                and self.word_counts == other.word_counts)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size}, oov_token={self.oov_token!r})"

    # ---- encoding
    def _lookup(self, words: Sequence[str], unknown: Dict[str, int], where: int) -> List[int]:
        out = []
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for w in words:
            i = self.word_index.get(w)
            if i is None:
                if oov is None:
                    unknown.setdefault(w, where)
                    continue
                i = oov
            out.append(i)
        return out

    @staticmethod
    def _unknown_error(unknown: Dict[str, int], batch: bool) -> ValueError:
        shown = list(unknown.items())[:20]
        if batch:
            listed = ", ".join(f"{w!r} (sentence {k})" for w, k in shown)
        else:
            listed = ", ".join(repr(w) for w, _ in shown)
        more = f" and {len(unknown) - len(shown)} more" if len(unknown) > len(shown) else ""
        return ValueError(f"{len(unknown)} unknown word(s): {listed}{more}; fit the tokenizer on them "
                          "or give it an oov_token")

    def encode(self, sentence: str) -> np.ndarray:
        """The indices of the words of `sentence` (split on whitespace): int32, shape ``(L,)``.

        Raises ``ValueError`` listing the unknown words when there is no ``oov_token``."""
        self._check_fitted()
        if not isinstance(sentence, str):
            raise TypeError(f"sentence: expected a str, got {type(sentence).__name__}")
        unknown: Dict[str, int] = {}
        ids = self._lookup(sentence.split(), unknown, 0)
        if unknown:
            raise self._unknown_error(unknown, batch=False)
        return np.asarray(ids, dtype=np.int32)

    def encode_batch(self, sentences: Sequence[str], maxlen: Optional[int] = None) -> np.ndarray:
        """Encodes and post-pads `sentences`: int32 array of shape ``(N, T)``, row ``i`` holding
        sentence ``i``'s indices followed by zeros.

        ``T`` is `maxlen`, or the longest sentence's length when `maxlen` is None. A sentence
        longer than `maxlen` raises ``ValueError`` (nothing is truncated silently); unknown
        words raise ``ValueError`` listing them with the first sentence each occurs in."""
        self._check_fitted()
        if isinstance(sentences, str):
            raise TypeError("sentences: expected a sequence of sentences, got a single str")
        unknown: Dict[str, int] = {}
        rows = []
        for k, s in enumerate(sentences):
            if not isinstance(s, str):
                raise TypeError(f"sentences[{k}]: expected a str, got {type(s).__name__}")
            rows.append(self._lookup(s.split(), unknown, k))
        if unknown:
            raise self._unknown_error(unknown, batch=True)
        return pad_post(rows, maxlen)

    # ---- decoding
    def decode(self, ids: Union[Sequence[int], np.ndarray], *, stop_at_end: bool = True,
               strip_markers: bool = True) -> str:
        """The words of the indices `ids` (a 1-D sequence of ints), joined by single spaces.

        Padding (index 0) is dropped wherever it occurs. With `stop_at_end` (the default),
        everything from the first ``<end>`` on is dropped (the rest of a decoder's output).
        With `strip_markers` (the default), ``<start>`` and ``<end>`` themselves are left out,
        which gives the plain sentence to score with BLEU. An index that is not in the
        vocabulary raises ``ValueError``."""
        self._check_fitted()
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"ids: expected a 1-D sequence of indices, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
        words = []
        for i in arr.tolist():
            if i == PAD_INDEX:
                continue
            w = self.index_word.get(i)
            if w is None:
                raise ValueError(f"ids: index {i} is not in the vocabulary (valid: 0 .. {self.vocab_size - 1})")
            if w == END_TOKEN and stop_at_end:
                if not strip_markers:
                    words.append(w)
                break
            if strip_markers and w in (START_TOKEN, END_TOKEN):
                continue
            words.append(w)
        return " ".join(words)

    # ---- serialization
    def to_json(self) -> str:
        """The vocabulary as a JSON string (to store in a checkpoint): the words in index order
        starting at index 1, their counts and the ``oov_token``."""
        self._check_fitted()
        words = [self.index_word[i] for i in range(1, self.vocab_size)]
        return json.dumps({"format": _JSON_FORMAT, "version": _JSON_VERSION, "oov_token": self.oov_token,
                           "words": words, "counts": [self.word_counts[w] for w in words]}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "WordTokenizer":
        """Rebuilds a tokenizer written by :meth:`to_json`; ``ValueError`` on malformed input."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"tokenizer JSON: not valid JSON ({err})") from None
        if not isinstance(d, dict) or d.get("format") != _JSON_FORMAT:
            raise ValueError(f"tokenizer JSON: expected an object with format {_JSON_FORMAT!r}")
        if d.get("version") != _JSON_VERSION:
            raise ValueError(f"tokenizer JSON: unsupported version {d.get('version')!r} (this code reads {_JSON_VERSION})")
        words, counts, oov = d.get("words"), d.get("counts"), d.get("oov_token")
        if not isinstance(words, list) or not all(isinstance(w, str) and w and w.split() == [w] for w in words):
            raise ValueError("tokenizer JSON: 'words' must be a list of non-empty words without whitespace")
        if len(set(words)) != len(words):
            dup = next(w for w, c in Counter(words).items() if c > 1)
            raise ValueError(f"tokenizer JSON: word {dup!r} appears more than once in 'words'")
        if (not isinstance(counts, list) or len(counts) != len(words)
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
            raise ValueError("tokenizer JSON: 'counts' must be a list of non-negative ints, one per word")
        if oov is not None and (not words or words[0] != oov):
            raise ValueError(f"tokenizer JSON: the oov_token {oov!r} must be the first word (index 1)")
        tok = cls(oov_token=oov)
        tok._set_vocabulary(words, counts)
        return tok


def pad_post(rows: Sequence[Sequence[int]], maxlen: Optional[int] = None) -> np.ndarray:
    """Stacks integer sequences into an int32 ``(N, T)`` array, each row followed by zeros.

    ``T`` is `maxlen` or the longest row's length; a row longer than `maxlen` raises
    ``ValueError`` naming it."""
    longest = max((len(r) for r in rows), default=0)
    if maxlen is None:
        maxlen = longest
    elif not isinstance(maxlen, (int, np.integer)) or isinstance(maxlen, bool) or maxlen < 0:
        raise ValueError(f"maxlen: expected None or a non-negative int, got {maxlen!r}")
    out = np.zeros((len(rows), int(maxlen)), dtype=np.int32)
    for k, r in enumerate(rows):
        if len(r) > maxlen:
            raise ValueError(f"sentence {k} has {len(r)} words, more than maxlen={maxlen}")
        out[k, :len(r)] = r
    return out


# --------------------------------------------------------------------------- loading
def _resolve(path: Optional[PathLike]) -> Path:
    return find_data_file(DATA_NAME, path, what=DATA_WHAT, url=DATA_URL, alternatives=("spa.txt",))


def load_pairs(path: Optional[PathLike] = None, num_examples: Optional[int] = None) -> List[Tuple[str, str]]:
    """The raw ``(spanish, english)`` pairs of ``spa.txt``, in file order.

    Args:
        path: the file, or a folder holding ``spa.txt`` or ``spa-eng/spa.txt``; None searches
            ``$FUSEDRNN_DATA`` and the user cache (see :mod:`fusedrnn.datasets.locate`).
        num_examples: read only the first this many pairs (all when None or when the file
            has fewer).

    Each non-empty line must read ``English<TAB>Spanish`` with both parts non-empty; further
    tab-separated columns are ignored, empty lines skipped, surrounding whitespace of each
    part removed. Raises :class:`~fusedrnn.datasets.locate.DataNotFoundError` when the file
    is not found and ``ValueError`` naming the file and line number for a malformed line.
    """
    if num_examples is not None and (not isinstance(num_examples, (int, np.integer)) or isinstance(num_examples, bool)
                                     or num_examples < 1):
        raise ValueError(f"num_examples: expected None or a positive int, got {num_examples!r}")
    file = _resolve(path)
    pairs: List[Tuple[str, str]] = []
    with open(file, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{file}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            if lineno == 1:
                line = line.lstrip("\ufeff")
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise ValueError(f"{file}:{lineno}: expected 'English<TAB>Spanish', found no tab in {line[:60]!r}")
            english, spanish = parts[0].strip(), parts[1].strip()
            if not english or not spanish:
                side = "English (1st)" if not english else "Spanish (2nd)"
                raise ValueError(f"{file}:{lineno}: the {side} column is empty in {line[:60]!r}")
            pairs.append((spanish, english))
            if num_examples is not None and len(pairs) >= num_examples:
                break
    return pairs


@dataclass
class TranslationData:
    """Preprocessed, tokenized Spanish->English pairs with a train/validation split.

    Attributes:
        pairs: the ``N`` preprocessed ``(source, target)`` sentences (Spanish, English), each
            ``"<start> ... <end>"``, in file order.
        source: int32 ``(N, Ts)``, source word indices, post-padded with 0.
        target: int32 ``(N, Tt)``, target word indices, post-padded with 0.
        source_tokenizer, target_tokenizer: :class:`WordTokenizer` fitted on all ``N``
            sentences of their language (no out-of-vocabulary words in either split).
        train_idx, val_idx: int64 row indices of the two splits, each sorted ascending;
            together a partition of ``range(N)``.
        seed: the seed the split was drawn with.
    """

    pairs: List[Tuple[str, str]]
    source: np.ndarray
    target: np.ndarray
    source_tokenizer: WordTokenizer
    target_tokenizer: WordTokenizer
    train_idx: np.ndarray
    val_idx: np.ndarray
    seed: Optional[int] = None
    path: Optional[Path] = field(default=None, repr=False)

    @property
    def max_source_len(self) -> int:
        """``Ts``, the longest source sentence in words (with the markers)."""
        return int(self.source.shape[1])

    @property
    def max_target_len(self) -> int:
        """``Tt``, the longest target sentence in words (with the markers)."""
        return int(self.target.shape[1])

    @property
    def source_train(self) -> np.ndarray:
        """int32 ``(N_train, Ts)``."""
        return self.source[self.train_idx]

    @property
    def target_train(self) -> np.ndarray:
        """int32 ``(N_train, Tt)``."""
        return self.target[self.train_idx]

    @property
    def source_val(self) -> np.ndarray:
        """int32 ``(N_val, Ts)``."""
        return self.source[self.val_idx]

    @property
    def target_val(self) -> np.ndarray:
        """int32 ``(N_val, Tt)``."""
        return self.target[self.val_idx]

    def encode_source(self, sentences: Sequence[str]) -> np.ndarray:
        """Preprocesses and encodes raw Spanish `sentences` for the model: int32 ``(n, Ts)``.

        Unknown words raise ``ValueError`` (unless the tokenizer has an ``oov_token``); a
        sentence longer than ``Ts`` raises ``ValueError``."""
        if isinstance(sentences, str):
            sentences = [sentences]
        return self.source_tokenizer.encode_batch([preprocess_sentence(s) for s in sentences], self.max_source_len)

    def decode_target(self, ids: Union[Sequence[int], np.ndarray]) -> str:
        """The English words of one row of target indices, without markers, stopping at ``<end>``."""
        return self.target_tokenizer.decode(ids)


def load_translation(path: Optional[PathLike] = None, num_examples: Optional[int] = 30000, val_fraction: float = 0.2,
                     seed: int = 0) -> TranslationData:
    """Loads, preprocesses, tokenizes and splits the Spanish->English pairs.

    Args:
        path: see :func:`load_pairs`.
        num_examples: use the first this many lines of the file (the file is sorted by
            length, so this keeps the shorter sentences, as the TensorFlow tutorial does);
            None uses all of it.
        val_fraction: share of the pairs put in the validation split, in ``[0, 1)``;
            ``round(N * val_fraction)`` pairs are drawn for it.
        seed: seeds ``numpy.random.default_rng`` for the split; the same seed and data give
            the same split.

    Returns:
        :class:`TranslationData` with int32 arrays ``source (N, Ts)`` and ``target (N, Tt)``,
        post-padded with 0, ``Ts``/``Tt`` being the longest sentence of each language.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    file = _resolve(path)
    raw = load_pairs(file, num_examples)
    if not raw:
        raise ValueError(f"{file}: holds no sentence pairs")
    pairs = [(preprocess_sentence(s), preprocess_sentence(t)) for s, t in raw]
    src_tok = WordTokenizer().fit(p[0] for p in pairs)
    tgt_tok = WordTokenizer().fit(p[1] for p in pairs)
    source = src_tok.encode_batch([p[0] for p in pairs])
    target = tgt_tok.encode_batch([p[1] for p in pairs])
    n = len(pairs)
    n_val = int(round(n * float(val_fraction)))
    if n - n_val < 1:
        raise ValueError(f"val_fraction: {val_fraction} of {n} pairs leaves no training pair")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:n_val]).astype(np.int64)
    train_idx = np.sort(perm[n_val:]).astype(np.int64)
    return TranslationData(pairs=pairs, source=source, target=target, source_tokenizer=src_tok,
                           target_tokenizer=tgt_tok, train_idx=train_idx, val_idx=val_idx, seed=seed, path=file)
