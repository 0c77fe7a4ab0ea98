"""The IMDB movie-review sentiment data set (Maas et al., ACL 2011), encoded the way Keras does.

:func:`load_imdb` returns ``((x_train, y_train), (x_test, y_test))`` with the same conventions,
options and post-processing as ``keras.datasets.imdb.load_data``: each review is a list of word
ids, ``0`` is padding, ``start_char`` (1) opens every review, ``oov_char`` (2) replaces words cut
by ``num_words``/``skip_top``, and real words start at ``index_from`` (3), the most frequent word
getting ``index_from + 1``; the reviews of each split are shuffled with ``numpy.random.RandomState
(seed)``; labels are 1 (positive) and 0 (negative).

Sources, in order of preference when no explicit path is given (each is looked for in
``$FUSEDRNN_DATA`` and then in the user data cache, see :mod:`fusedrnn.datasets.locate`):

1. ``aclImdb.tar.gz`` (or the original ``aclImdb_v1.tar.gz``): the raw reviews, read in streaming
   mode straight from the archive, nothing is extracted to disk;
2. ``aclImdb/``: the same archive extracted (``train/{pos,neg}/*.txt``, ``test/{pos,neg}/*.txt``);
3. ``imdb.npz``: Keras's pre-encoded arrays (then :func:`load_imdb` returns exactly what Keras
   returns for the same options, and :func:`get_word_index` reads ``imdb_word_index.json``).

Encoding of the raw reviews (the *tokenizer*, see :func:`tokenize`):

* the line breaks ``<br />`` (also ``<br>``, ``<br/>``, any case) become spaces; the text is
  lower-cased with :meth:`str.lower`; the typographic apostrophes ``’ ‘ ´`` and the backquote
  become ``'``;
* a word is a maximal run of letters and digits (characters for which :meth:`str.isalnum` is
  true; ``_`` is not one of them) in which single apostrophes may join two such runs
  (``don't``, ``rock'n'roll``); every other character (punctuation, hyphens, quotes, a leading or
  trailing apostrophe, whitespace, symbols) is a separator and is dropped.

The word index is built from the *training* reviews only: words are ranked by how many times they
occur there (rank 1 = the most frequent), ties broken by the words' code-point order (``str``
comparison), so the index is a pure function of the training texts. A test-review word that never
occurs in the training reviews is dropped (Keras's convention: "words that were not seen in the
training set but are in the test set have simply been skipped").

Order of the reviews before the seeded shuffle: in each split positive and negative reviews
alternate (pos, neg, pos, neg, ...), each class sorted by the numeric id in its file name
``<id>_<rating>.txt``. ``limit=N`` keeps the first N reviews of each split in that order, so it is
balanced (``ceil(N/2)`` positive, ``floor(N/2)`` negative) and deterministic; with a limit the
word index is built from those N training reviews only.

Cache: after the first parse of a raw source, the tokenized corpus (word ranks per review, labels,
file ids, ratings, the words and their counts) is saved as one ``.npz`` (written atomically, no
pickles) in ``cache_dir()/imdb`` (``~/.cache/fusedrnn/imdb``), or in the folder named by
``$FUSEDRNN_IMDB_CACHE``, or in the ``cache_dir=`` argument. The file name is keyed by the
source's path, size and modification time (for a folder, every review file's name, size and time),
the ``limit`` and the tokenizer version, so a changed source is parsed again. An unreadable or
inconsistent cache file is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import pickle
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from fusedrnn.datasets import locate
from fusedrnn.datasets.locate import DataNotFoundError, PathLike, find_data_file
from fusedrnn.io_utils import atomic_write

__all__ = [
    "ARCHIVE_NAME", "NPZ_NAME", "CACHE_ENV_VAR", "ImdbCorpus", "ImdbSplit", "load_imdb", "load_corpus",
    "get_word_index", "encode_texts", "decode_ids", "tokenize", "pad_sequences", "imdb_cache_dir", "find_imdb_source",
]

ARCHIVE_NAME = "aclImdb.tar.gz"
ORIGINAL_ARCHIVE_NAME = "aclImdb_v1.tar.gz"
FOLDER_NAME = "aclImdb"
NPZ_NAME = "imdb.npz"
WORD_INDEX_JSON = "imdb_word_index.json"
CACHE_ENV_VAR = "FUSEDRNN_IMDB_CACHE"
ARCHIVE_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"

# Bump when the tokenizer, the ordering or the cache layout changes: old cache files are then ignored.
TOKENIZER_VERSION = 1
_CACHE_FORMAT = 1

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'"})
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_SPLITS = ("train", "test")


# ----------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------

def tokenize(text: str) -> List[str]:
    """The words of one review, by the rule in the module docstring (``<br />`` removed, lower-cased,
    letters/digits with inner apostrophes kept, everything else a separator)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    return _WORD.findall(_BR.sub(" ", text).lower().translate(_APOSTROPHES))


# ----------------------------------------------------------------------------------------------
# the tokenized corpus
# ----------------------------------------------------------------------------------------------

@dataclass
class ImdbSplit:
    """One split of the tokenized corpus, reviews in the canonical order (see module docstring).

    ``ranks``: int32 (total_words,), the word ranks (1 = most frequent training word) of all
    reviews one after another; ``offsets``: int64 (n + 1,), review ``i`` is
    ``ranks[offsets[i]:offsets[i + 1]]``; ``labels``: int64 (n,), 1 = pos, 0 = neg;
    ``file_ids``/``ratings``: int32 (n,), from the file name ``<id>_<rating>.txt`` (``-1`` when the
    source is ``imdb.npz``, which has no file names).
    """

    ranks: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    file_ids: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def review(self, i: int) -> np.ndarray:
        """Word ranks of review `i` (int32)."""
        return self.ranks[self.offsets[i]:self.offsets[i + 1]]


@dataclass
class ImdbCorpus:
    """The tokenized IMDB corpus: `train`, `test` (:class:`ImdbSplit`), `words` (rank ``r`` is
    ``words[r - 1]``), `counts` (int64, occurrences of each word in the training reviews) and the
    `source` file it came from."""

    train: ImdbSplit
    test: ImdbSplit
    words: List[str]
    counts: np.ndarray
    source: Path

    def word_index(self) -> Dict[str, int]:
        """word → rank (1 = most frequent), like ``keras.datasets.imdb.get_word_index()``."""
        return {w: i + 1 for i, w in enumerate(self.words)}


class _FirstSeen(dict):
    """word → provisional id in order of first appearance (ids assigned on lookup)."""

    def __missing__(self, key: str) -> int:
        value = self[key] = len(self)
        return value


def _order(entries: Sequence[Tuple[int, int, int, bytes]], limit: Optional[int]) -> List[Tuple[int, int, int, bytes]]:
    """Canonical order of one split's (label, file_id, rating, raw) entries, then the first `limit`."""
    pos = sorted((e for e in entries if e[0] == 1), key=lambda e: (e[1], e[2]))
    neg = sorted((e for e in entries if e[0] == 0), key=lambda e: (e[1], e[2]))
    out = [e for pair in itertools.zip_longest(pos, neg) for e in pair if e is not None]
    return out if limit is None else out[:limit]


def _tokenize_corpus(raw: Mapping[str, Sequence[Tuple[int, int, int, bytes]]], source: Path,
                     limit: Optional[int]) -> ImdbCorpus:
    """Tokenizes the raw reviews of both splits and ranks the training words."""
    vocab = _FirstSeen()
    lookup = vocab.__getitem__
    provisional = {}
    meta = {}
    for split in _SPLITS:
        entries = _order(raw[split], limit)
        if not entries:
            raise ValueError(f"{source}: no {split} reviews found (expected {split}/pos/*.txt and {split}/neg/*.txt)")
        lengths = np.empty(len(entries), dtype=np.int64)
        chunks: List[np.ndarray] = []
        for i, (_, _, _, data) in enumerate(entries):
            words = tokenize(data.decode("utf-8", errors="replace"))
            if split == "train":
                ids = np.fromiter(map(lookup, words), dtype=np.int64, count=len(words))
            else:  # words unseen in training are dropped (marked -1 here)
                ids = np.fromiter(map(vocab.get, words, itertools.repeat(-1)), dtype=np.int64, count=len(words))
                ids = ids[ids >= 0]
            lengths[i] = ids.size
            chunks.append(ids)
        provisional[split] = (np.concatenate(chunks) if chunks else np.zeros(0, np.int64), lengths)
        meta[split] = entries
        if split == "train":
            vocab = dict(vocab)  # frozen: test lookups must not add words
    first_seen = list(vocab)
    counts = np.bincount(provisional["train"][0], minlength=len(first_seen)).astype(np.int64)
    # rank by (-count, word): sort by word first, then a stable sort by descending count
    by_word = sorted(range(len(first_seen)), key=first_seen.__getitem__)
    by_word = np.asarray(by_word, dtype=np.int64)
    order = by_word[np.argsort(-counts[by_word], kind="stable")]
    rank_of = np.empty(len(first_seen), dtype=np.int32)
    rank_of[order] = np.arange(1, len(first_seen) + 1, dtype=np.int32)
    words = [first_seen[i] for i in order]
    splits = {}
    for split in _SPLITS:
        flat, lengths = provisional[split]
        entries = meta[split]
        offsets = np.zeros(len(entries) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        splits[split] = ImdbSplit(
            ranks=rank_of[flat] if flat.size else np.zeros(0, np.int32),
            offsets=offsets,
            labels=np.array([e[0] for e in entries], dtype=np.int64),
            file_ids=np.array([e[1] for e in entries], dtype=np.int32),
            ratings=np.array([e[2] for e in entries], dtype=np.int32),
        )
    return ImdbCorpus(train=splits["train"], test=splits["test"], words=words, counts=counts[order], source=source)


def _read_archive(path: Path) -> Dict[str, List[Tuple[int, int, int, bytes]]]:
    """(label, file_id, rating, raw bytes) of every review in a ``.tar.gz``, streamed (no extraction)."""
    raw: Dict[str, List[Tuple[int, int, int, bytes]]] = {s: [] for s in _SPLITS}
    try:
        with tarfile.open(path, mode="r|*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                m = _MEMBER.search(member.name)
                if m is None:
                    continue
                f = tf.extractfile(member)
                if f is None:
                    continue
                raw[m.group(1)].append((int(m.group(2) == "pos"), int(m.group(3)), int(m.group(4)), f.read()))
    except (tarfile.TarError, EOFError, OSError, zlib.error, TypeError) as err:  # TypeError: tarfile on a cut gzip header
        raise ValueError(f"{path}: not a readable IMDB archive ({err})") from None
    return raw


def _review_files(folder: Path) -> List[Tuple[str, int, int, int, Path]]:
    """(split, label, file_id, rating, path) of every review file of an extracted ``aclImdb/``."""
    out = []
    for split in _SPLITS:
        for cls in ("pos", "neg"):
            d = folder / split / cls
            if not d.is_dir():
                continue
            with os.scandir(d) as it:
                for e in it:
                    m = re.fullmatch(r"(\d+)_(\d+)\.txt", e.name)
                    if m and e.is_file():
                        out.append((split, int(cls == "pos"), int(m.group(1)), int(m.group(2)), Path(e.path)))
    return out


def _read_folder(folder: Path) -> Dict[str, List[Tuple[int, int, int, bytes]]]:
    raw: Dict[str, List[Tuple[int, int, int, bytes]]] = {s: [] for s in _SPLITS}
    for split, label, fid, rating, p in _review_files(folder):
        raw[split].append((label, fid, rating, p.read_bytes()))
    return raw


# ----------------------------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------------------------

def imdb_cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """The folder of the tokenized-corpus cache: `cache_dir` if given, else ``$FUSEDRNN_IMDB_CACHE``,
    else ``fusedrnn.datasets.locate.cache_dir() / "imdb"`` (``~/.cache/fusedrnn/imdb``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return locate.cache_dir() / "imdb"


def _source_key(source: Path, limit: Optional[int]) -> str:
    h = hashlib.sha256()
    h.update(f"v{TOKENIZER_VERSION}/{_CACHE_FORMAT}|{source.resolve()}|limit={limit}|".encode())
    if source.is_dir():
        for split, label, fid, rating, p in sorted(_review_files(source), key=lambda r: r[:4]):
            st = p.stat()
            h.update(f"{split}/{label}/{fid}_{rating}:{st.st_size}:{st.st_mtime_ns};".encode())
    else:
        st = source.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _cache_path(source: Path, limit: Optional[int], cache_dir: Optional[PathLike]) -> Tuple[Path, str]:
    key = _source_key(source, limit)
    tag = "all" if limit is None else f"limit{limit}"
    return imdb_cache_dir(cache_dir) / f"corpus-{tag}-{key}.npz", key


def _text_bytes(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-8"), dtype=np.uint8)


def _save_cache(path: Path, key: str, corpus: ImdbCorpus) -> None:
    arrays = {"format": np.array([_CACHE_FORMAT], dtype=np.int64), "key": _text_bytes(key),
              "words": _text_bytes("\n".join(corpus.words)), "counts": corpus.counts}
    for split in _SPLITS:
        s: ImdbSplit = getattr(corpus, split)
        for field in ("ranks", "offsets", "labels", "file_ids", "ratings"):
            arrays[f"{split}_{field}"] = getattr(s, field)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _load_cache(path: Path, key: str, source: Path) -> Optional[ImdbCorpus]:
    """The cached corpus, or None when the file is missing, unreadable, stale or inconsistent."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"][0]) != _CACHE_FORMAT or z["key"].tobytes().decode("utf-8") != key:
                return None
            words_blob = z["words"].tobytes().decode("utf-8")
            words = words_blob.split("\n") if words_blob else []
            counts = z["counts"]
            splits = {}
            for split in _SPLITS:
                s = ImdbSplit(*(z[f"{split}_{f}"] for f in ("ranks", "offsets", "labels", "file_ids", "ratings")))
                n = s.labels.shape[0]
                ok = (s.offsets.shape == (n + 1,) and s.file_ids.shape == (n,) and s.ratings.shape == (n,)
                      and s.offsets[0] == 0 and s.offsets[-1] == s.ranks.shape[0] and n > 0
                      and bool(np.all(np.diff(s.offsets) >= 0))
                      and (s.ranks.size == 0 or (s.ranks.min() >= 1 and s.ranks.max() <= len(words)))
                      and bool(np.all((s.labels == 0) | (s.labels == 1))))
                if not ok:
                    return None
                splits[split] = s
            if counts.shape != (len(words),):
                return None
    except Exception:  # noqa: BLE001 -- any damage to the cache file means "parse again"
        return None
    return ImdbCorpus(train=splits["train"], test=splits["test"], words=words, counts=counts, source=source)


# ----------------------------------------------------------------------------------------------
# finding the source
# ----------------------------------------------------------------------------------------------

def _is_extracted_folder(p: Path) -> bool:
    return (p / "train").is_dir() and (p / "test").is_dir()


def find_imdb_source(path: Optional[PathLike] = None) -> Path:
    """The IMDB source to read: `path` itself (an archive, an extracted ``aclImdb`` folder, an
    ``imdb.npz``, or a folder holding one of them), else the first of ``aclImdb.tar.gz``,
    ``aclImdb_v1.tar.gz``, ``aclImdb/``, ``imdb.npz`` in ``$FUSEDRNN_DATA`` and the user data cache.
    Raises :class:`DataNotFoundError` naming the files and where to put them."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir() and _is_extracted_folder(p):
            return p
    alternatives = (ORIGINAL_ARCHIVE_NAME, FOLDER_NAME, NPZ_NAME)
    try:
        found = find_data_file(ARCHIVE_NAME, path, what="the IMDB movie reviews", url=ARCHIVE_URL,
                               alternatives=alternatives)
    except DataNotFoundError as err:
        raise DataNotFoundError(
            f"{err}\nAny of these is accepted: {ARCHIVE_NAME} (the raw reviews; {ORIGINAL_ARCHIVE_NAME} from {ARCHIVE_URL} "
            f"works too), the extracted folder {FOLDER_NAME}/ (with train/ and test/), or Keras's pre-encoded "
            f"{NPZ_NAME} ({NPZ_URL}).") from None
    if found.is_dir() and not _is_extracted_folder(found):
        raise DataNotFoundError(f"{found}: not an extracted IMDB folder (expected {found}/train/pos/*.txt, "
                                f"{found}/test/neg/*.txt, ...)")
    return found


def _check_limit(limit: Optional[int]) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit: expected a positive int or None, got {limit!r}")
    return int(limit)


def load_corpus(path: Optional[PathLike] = None, *, limit: Optional[int] = None, cache: bool = True,
                cache_dir: Optional[PathLike] = None) -> ImdbCorpus:
    """The tokenized raw corpus (``aclImdb.tar.gz`` or extracted ``aclImdb/``) in canonical order,
    from the cache when possible (see the module docstring). Parsing the full archive takes a few
    seconds; the cached load well under one. Raises ``ValueError`` if `path` is Keras's
    ``imdb.npz`` (it has no raw text: use :func:`load_imdb`)."""
    limit = _check_limit(limit)
    source = find_imdb_source(path)
    if source.suffix == ".npz":
        raise ValueError(f"{source}: Keras's pre-encoded {NPZ_NAME} holds no raw reviews; load_corpus needs "
                         f"{ARCHIVE_NAME} or an extracted {FOLDER_NAME}/ folder")
    cpath = key = None
    if cache:
        cpath, key = _cache_path(source, limit, cache_dir)
        hit = _load_cache(cpath, key, source)
        if hit is not None:
            return hit
    raw = _read_folder(source) if source.is_dir() else _read_archive(source)
    corpus = _tokenize_corpus(raw, source, limit)
    if cache:
        try:
            _save_cache(cpath, key, corpus)
        except OSError:  # a read-only cache folder must not stop the load
            pass
    return corpus


# ----------------------------------------------------------------------------------------------
# Keras's imdb.npz
# ----------------------------------------------------------------------------------------------

_PICKLE_ALLOWED = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
})


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy object arrays of plain Python data and nothing else (no code can run)."""

    def find_class(self, module: str, name: str):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    """The arrays of an ``.npz``; object arrays are unpickled with a loader that only builds arrays."""
    fmt = np.lib.format
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                buf = io.BytesIO(zf.read(name))
                version = fmt.read_magic(buf)
                read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                _, _, dtype = read_header(buf)
                if dtype.hasobject:  # the pickle stream starts right after the header
                    out[name[:-4]] = _ArrayOnlyUnpickler(buf).load()
                else:
                    buf.seek(0)
                    out[name[:-4]] = fmt.read_array(buf, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, pickle.UnpicklingError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    return out


def _npz_splits(path: Path, limit: Optional[int]) -> Tuple[ImdbSplit, ImdbSplit]:
    arrays = _read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not Keras's {NPZ_NAME} (missing arrays {', '.join(missing)})")
    out = []
    for split in _SPLITS:
        xs, ys = arrays[f"x_{split}"], np.asarray(arrays[f"y_{split}"])
        if len(xs) != len(ys):
            raise ValueError(f"{path}: x_{split} and y_{split} differ in length ({len(xs)} vs {len(ys)})")
        idx = np.arange(len(xs))
        if limit is not None:
            pos, neg = idx[ys == 1], idx[ys != 1]
            chosen = [i for pair in itertools.zip_longest(pos, neg) for i in pair if i is not None][:limit]
            idx = np.sort(np.asarray(chosen, dtype=np.int64))
        lengths = np.fromiter((len(xs[i]) for i in idx), dtype=np.int64, count=len(idx))
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(xs[i] for i in idx), dtype=np.int64, count=int(offsets[-1]))
        none = np.full(len(idx), -1, dtype=np.int32)
        out.append(ImdbSplit(ranks=flat, offsets=offsets, labels=ys[idx], file_ids=none, ratings=none.copy()))
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------
# Keras's post-processing
# ----------------------------------------------------------------------------------------------

def _ragged(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """1-D object array of Python lists of ints (Keras's format for x)."""
    out = np.empty(len(lengths), dtype=object)
    bounds = np.cumsum(lengths)[:-1] if len(lengths) else []
    for i, part in enumerate(np.split(flat, bounds) if len(lengths) else []):
        out[i] = part.tolist()
    return out


def _gather(split: ImdbSplit, perm: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(flat values, lengths) of the reviews of `split` taken in the order `perm`."""
    lengths = np.diff(split.offsets)[perm]
    starts = split.offsets[:-1][perm]
    total = int(lengths.sum())
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return split.ranks[np.repeat(starts, lengths) + within].astype(np.int64), lengths


def _with_start(flat: np.ndarray, lengths: np.ndarray, start_char: int) -> Tuple[np.ndarray, np.ndarray]:
    new_lengths = lengths + 1
    out = np.empty(int(new_lengths.sum()), dtype=np.int64)
    first = np.cumsum(new_lengths) - new_lengths
    mask = np.ones(out.size, dtype=bool)
    mask[first] = False
    out[first] = start_char
    out[mask] = flat
    return out, new_lengths


def _keras_pipeline(train: ImdbSplit, test: ImdbSplit, *, num_words, skip_top, maxlen, seed, start_char, oov_char,
                    index_from):
    """Shuffle, start char, index offset, maxlen filter and num_words/skip_top cut, as Keras does."""
    rng = np.random.RandomState(seed)
    parts = []
    for split in (train, test):
        perm = np.arange(len(split))
        rng.shuffle(perm)
        flat, lengths = _gather(split, perm)
        if start_char is not None:
            flat, lengths = _with_start(flat + index_from, lengths, start_char)
        elif index_from:
            flat = flat + index_from
        labels = split.labels[perm]
        if maxlen:
            keep = lengths < maxlen
            flat = flat[np.repeat(keep, lengths)]
            lengths, labels = lengths[keep], labels[keep]
        parts.append([flat, lengths, labels])
    if maxlen and (len(parts[0][1]) == 0 or len(parts[1][1]) == 0):
        raise ValueError(f"maxlen: after keeping only the reviews shorter than maxlen={maxlen}, no review is left; "
                         "increase maxlen")
    if not num_words:
        num_words = max((int(p[0].max()) for p in parts if p[0].size), default=0)
    for p in parts:
        flat, lengths = p[0], p[1]
        cut = (flat < skip_top) | (flat >= num_words)
        if oov_char is not None:
            flat = np.where(cut, oov_char, flat)
        else:
            rows = np.repeat(np.arange(len(lengths)), lengths)
            flat = flat[~cut]
            lengths = np.bincount(rows[~cut], minlength=len(lengths)).astype(np.int64)
        p[0], p[1] = flat, lengths
    (ftr, ltr, ytr), (fte, lte, yte) = parts
    return (_ragged(ftr, ltr), np.asarray(ytr, dtype=np.int64)), (_ragged(fte, lte), np.asarray(yte, dtype=np.int64))


def _check_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int{' or None' if allow_none else ''}, got {value!r}")


def load_imdb(path: Optional[PathLike] = None, num_words: Optional[int] = None, skip_top: int = 0,
              maxlen: Optional[int] = None, seed: int = 113, start_char: Optional[int] = 1, oov_char: Optional[int] = 2,
              index_from: int = 3, limit: Optional[int] = None, cache: bool = True,
              cache_dir: Optional[PathLike] = None):
    """The IMDB sentiment data, as ``keras.datasets.imdb.load_data`` returns it.

    Args:
        path: an ``aclImdb.tar.gz``, an extracted ``aclImdb/`` folder, Keras's ``imdb.npz``, or a
            folder holding one of them; None searches ``$FUSEDRNN_DATA`` and the user data cache
            (tar, then folder, then npz).
        num_words: keep word ids ``< num_words`` (ids count the reserved ones, so the
            ``num_words - index_from`` most frequent words survive); others become `oov_char`
            (or are dropped when `oov_char` is None). None or 0: Keras's rule, ``num_words`` = the
            largest id present, which (a Keras quirk kept for parity) turns that one id into OOV.
        skip_top: ids ``< skip_top`` also become `oov_char` (this includes the start char, as in Keras).
        maxlen: if set (and non-zero), keep only the reviews whose encoded length (start char
            included) is ``< maxlen``; ValueError if a split is left empty.
        seed: both splits are shuffled with one ``numpy.random.RandomState(seed)``, train first.
        start_char: id put at the start of every review (None: none).
        oov_char: id for words cut by `num_words`/`skip_top` (None: drop them).
        index_from: word of rank ``r`` gets id ``r + index_from``.
        limit: use only the first `limit` reviews of each split (balanced pos/neg, deterministic;
            see the module docstring); the word index is then built from those training reviews.
        cache: read/write the tokenized-corpus cache (raw sources only).
        cache_dir: folder of that cache (default ``$FUSEDRNN_IMDB_CACHE`` or ``~/.cache/fusedrnn/imdb``).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: ``x_*`` 1-D object arrays of Python lists of
        ints (ragged; pad with :func:`pad_sequences`), ``y_*`` int64 arrays of 0/1 (1 = positive).
        Full data: 25,000 reviews per split (fewer with `maxlen`).
    """
    for name, value, none_ok in (("num_words", num_words, True), ("skip_top", skip_top, False),
                                 ("maxlen", maxlen, True), ("seed", seed, True), ("start_char", start_char, True),
                                 ("oov_char", oov_char, True), ("index_from", index_from, False)):
        _check_int(name, value, none_ok)
    limit = _check_limit(limit)
    source = find_imdb_source(path)
    if source.suffix == ".npz":
        train, test = _npz_splits(source, limit)
    else:
        corpus = load_corpus(source, limit=limit, cache=cache, cache_dir=cache_dir)
        train, test = corpus.train, corpus.test
    return _keras_pipeline(train, test, num_words=num_words, skip_top=skip_top, maxlen=maxlen, seed=seed,
                           start_char=start_char, oov_char=oov_char, index_from=index_from)


def get_word_index(path: Optional[PathLike] = None, *, limit: Optional[int] = None, cache: bool = True,
                   cache_dir: Optional[PathLike] = None) -> Dict[str, int]:
    """word → rank (1 = most frequent training word), consistent with :func:`load_imdb` for the
    same `path` and `limit`: a word of rank ``r`` has id ``r + index_from`` there.

    For a raw source the index comes from the (cached) tokenized corpus. For Keras's ``imdb.npz``
    it is Keras's ``imdb_word_index.json``, looked for beside the npz and then in the usual places;
    `path` may also name that ``.json`` directly.
    """
    if path is not None and Path(path).suffix == ".json":
        return _read_word_index_json(find_data_file(WORD_INDEX_JSON, path, what="Keras's IMDB word index"))
    source = find_imdb_source(path)
    if source.suffix == ".npz":
        beside = source.parent / WORD_INDEX_JSON
        found = beside if beside.is_file() else find_data_file(
            WORD_INDEX_JSON, None, what=f"Keras's IMDB word index (needed with {source.name})",
            url=NPZ_URL.replace(NPZ_NAME, WORD_INDEX_JSON))
        return _read_word_index_json(found)
    return load_corpus(source, limit=limit, cache=cache, cache_dir=cache_dir).word_index()


def _read_word_index_json(path: Path) -> Dict[str, int]:
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable word-index JSON file ({err})") from None
    if not isinstance(index, dict):
        raise ValueError(f"{path}: expected a JSON object word -> rank")
    return {str(k): int(v) for k, v in index.items()}


# ----------------------------------------------------------------------------------------------
# encoding user text
# ----------------------------------------------------------------------------------------------

def encode_texts(texts: Iterable[str], word_index: Mapping[str, int], num_words: Optional[int] = None,
                 skip_top: int = 0, start_char: Optional[int] = 1, oov_char: Optional[int] = 2, index_from: int = 3,
                 unknown: str = "skip") -> List[List[int]]:
    """Encodes raw texts like :func:`load_imdb` encodes the reviews: same tokenizer, ids
    ``rank + index_from``, `start_char` first, ids outside ``[skip_top, num_words)`` → `oov_char`
    (dropped if `oov_char` is None); `num_words` None means no upper cut.

    `unknown`: what to do with a word absent from `word_index`: ``"skip"`` drops it (the loader's
    rule for test reviews), ``"oov"`` writes `oov_char`.

    Returns one list of ints per text (pad with :func:`pad_sequences` before a model).
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts: expected a list of strings, got a single string (wrap it in a list)")
    if unknown not in ("skip", "oov"):
        raise ValueError(f"unknown: expected 'skip' or 'oov', got {unknown!r}")
    if unknown == "oov" and oov_char is None:
        raise ValueError("unknown='oov' needs an oov_char")
    for name, value, none_ok in (("num_words", num_words, True), ("skip_top", skip_top, False),
                                 ("start_char", start_char, True), ("oov_char", oov_char, True),
                                 ("index_from", index_from, False)):
        _check_int(name, value, none_ok)
    out = []
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{k}]: expected str, got {type(text).__name__}")
        ids: List[Optional[int]] = [] if start_char is None else [start_char]
        for w in tokenize(text):
            r = word_index.get(w)
            if r is not None:
                ids.append(int(r) + index_from)
            elif unknown == "oov":
                ids.append(None)  # unknown words are OOV whatever the cut says
        row = []
        for i in ids:
            if i is None:
                row.append(oov_char)
            elif skip_top <= i and (not num_words or i < num_words):
                row.append(i)
            elif oov_char is not None:
                row.append(oov_char)
        out.append(row)
    return out


def decode_ids(ids: Iterable[int], word_index: Mapping[str, int], index_from: int = 3, start_char: Optional[int] = 1,
               oov_char: Optional[int] = 2, pad: int = 0) -> str:
    """The words of an id sequence joined by spaces (``[START]``/``[OOV]`` for those ids, padding
    skipped, ``[?<id>]`` for ids with no word): for looking at encoded reviews."""
    words = {r + index_from: w for w, r in word_index.items()}
    parts = []
    for i in ids:
        i = int(i)
        if i == pad:
            continue
        if start_char is not None and i == start_char:
            parts.append("[START]")
        elif oov_char is not None and i == oov_char:
            parts.append("[OOV]")
        else:
            parts.append(words.get(i, f"[?{i}]"))
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------
# padding
# ----------------------------------------------------------------------------------------------

def pad_sequences(sequences, maxlen: Optional[int] = None, dtype="int32", padding: str = "pre",
                  truncating: str = "pre", value=0) -> np.ndarray:
    """Pads/truncates a list of sequences into one array, like ``keras.utils.pad_sequences``.

    Args:
        sequences: a list (or 1-D object array) of sequences of numbers (lists or arrays); items may
            also be fixed-shape vectors (then the output has those trailing dimensions).
        maxlen: output length; None = the longest sequence.
        dtype: output dtype (``object`` or a string dtype for string data).
        padding: ``"pre"`` puts the padding `value` before the sequence, ``"post"`` after it.
        truncating: ``"pre"`` drops the start of a sequence longer than `maxlen`, ``"post"`` its end.
        value: the padding value.

    Returns:
        array of shape ``(len(sequences), maxlen) + item_shape`` and dtype `dtype`.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding: expected 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating: expected 'pre' or 'post', got {truncating!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError("sequences: expected a list of sequences, got a non-sized object")
    n = len(sequences)
    try:
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
    except TypeError:
        bad = next(i for i, s in enumerate(sequences) if not hasattr(s, "__len__"))
        raise ValueError(f"sequences[{bad}]: expected a sequence, got {type(sequences[bad]).__name__}") from None
    if maxlen is None:
        maxlen = int(lengths.max()) if n else 0
    else:
        _check_int("maxlen", maxlen)
        if maxlen < 0:
            raise ValueError(f"maxlen: expected >= 0, got {maxlen}")
        maxlen = int(maxlen)
    is_text = dtype is object or np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype), np.bytes_)
    if isinstance(value, str) and not is_text:
        raise ValueError(f"value: a string padding value needs dtype=object or a string dtype, got dtype={dtype!r}")

    item_shape: Tuple[int, ...] = ()
    first = next((s for s, k in zip(sequences, lengths) if k), None)
    if first is not None:
        item_shape = np.asarray(first).shape[1:]

    total = int(lengths.sum())
    kept = np.minimum(lengths, maxlen)
    if item_shape == () and not is_text:
        flat = None
        try:
            flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=dtype, count=total)
        except (TypeError, ValueError):
            flat = None  # items that are not plain numbers: fall back to the per-sequence path
        if flat is not None:
            out = np.full((n, maxlen), value, dtype=dtype)
            starts = np.cumsum(lengths) - lengths
            # first kept element of each sequence, in flat coordinates
            src0 = starts + (lengths - kept if truncating == "pre" else 0)
            col0 = (maxlen - kept) if padding == "pre" else np.zeros(n, dtype=np.int64)
            m = int(kept.sum())
            within = np.arange(m, dtype=np.int64) - np.repeat(np.cumsum(kept) - kept, kept)
            rows = np.repeat(np.arange(n, dtype=np.int64), kept)
            out[rows, np.repeat(col0, kept) + within] = flat[np.repeat(src0, kept) + within]
            return out

    out = np.full((n, maxlen) + tuple(item_shape), value, dtype=dtype)
    for i, s in enumerate(sequences):
        k = int(kept[i])
        if k == 0:
            continue
        part = s[-k:] if truncating == "pre" else s[:k]
        part = np.asarray(part, dtype=dtype)
        if part.shape[1:] != item_shape:
            raise ValueError(f"sequences[{i}]: items of shape {part.shape[1:]}, expected {item_shape} "
                             "(the shape of the first non-empty sequence's items)")
        if padding == "pre":
            out[i, maxlen - k:] = part
        else:
            out[i, :k] = part
    return out
