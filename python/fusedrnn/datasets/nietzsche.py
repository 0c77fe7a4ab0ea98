"""The Nietzsche text of the Keras character-level LSTM example, and its character windows.

The text ships with fusedrnn (``fusedrnn/data/nietzsche.txt``, 600,901 bytes): :func:`load_text`
reads it as UTF-8 (universal newlines) and lower-cases it, giving 600,893 characters with 57
distinct ones. :class:`CharVocab` maps characters to ids (sorted by code point), and
:func:`make_windows` cuts the id sequence into the (window, next character) training pairs of the
Keras example: windows of ``maxlen`` characters starting every ``step`` characters (200,285
windows for the full text at 40/3).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from fusedrnn.datasets.locate import PathLike, find_data_file

__all__ = ["TEXT_NAME", "TEXT_URL", "CharVocab", "load_text", "make_windows", "train_val_split", "shipped_text_path"]

TEXT_NAME = "nietzsche.txt"
TEXT_URL = "https://s3.amazonaws.com/text-datasets/nietzsche.txt"

T = TypeVar("T", str, np.ndarray, list)


def shipped_text_path():
    """The copy of ``nietzsche.txt`` shipped inside the package (an importlib.resources Traversable)."""
    return resources.files("fusedrnn").joinpath("data", TEXT_NAME)


def load_text(path: Optional[PathLike] = None, *, lower: bool = True) -> str:
    """The Nietzsche corpus as one string, lower-cased unless ``lower=False``.

    `path` None: the copy shipped with the package (or, if an installation lacks it,
    ``nietzsche.txt`` in ``$FUSEDRNN_DATA`` or the user data cache). Otherwise `path` is the text
    file itself or a folder holding ``nietzsche.txt`` (any UTF-8 text file works: it becomes the
    corpus). Raises :class:`DataNotFoundError` if the file is missing, ``ValueError`` if it is not
    UTF-8.
    """
    if path is None:
        shipped = shipped_text_path()
        if shipped.is_file():
            return _decode(shipped.read_bytes(), str(shipped), lower)
    found = find_data_file(TEXT_NAME, path, what="the Nietzsche text", url=TEXT_URL)
    return _decode(Path(found).read_bytes(), str(found), lower)


def _decode(data: bytes, where: str, lower: bool) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not UTF-8 text ({err})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() in text mode
    return text.lower() if lower else text


class CharVocab:
    """Characters ↔ ids: the distinct characters sorted by code point, id = position.

    ``encode`` raises ``ValueError`` naming the first character that is not in the vocabulary
    (and its position) unless ``errors="ignore"`` (then such characters are dropped).
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars: expected single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars: duplicate characters")
        if not chars:
            raise ValueError("chars: the vocabulary is empty")
        self.chars: List[str] = sorted(chars)
        self.char_to_id = {c: i for i, c in enumerate(self.chars)}
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._table = np.full(int(codes.max()) + 1, -1, dtype=np.int32)  # code point -> id, -1 = unknown
        self._table[codes] = np.arange(len(self.chars), dtype=np.int32)
        self._chars_arr = np.array(self.chars, dtype="<U1")

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of the distinct characters of `text`."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))

    def __repr__(self) -> str:
        return f"CharVocab({len(self.chars)} chars)"

    def __contains__(self, ch: object) -> bool:
        return ch in self.char_to_id

    def encode(self, text: str, errors: str = "strict") -> np.ndarray:
        """The ids of the characters of `text`: int32 array of shape ``(len(text),)`` (shorter
        with ``errors="ignore"``, which drops unknown characters)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if errors not in ("strict", "ignore"):
            raise ValueError(f"errors: expected 'strict' or 'ignore', got {errors!r}")
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4").astype(np.int64)
        ids = np.full(codes.shape, -1, dtype=np.int32)
        inside = codes < self._table.size
        ids[inside] = self._table[codes[inside]]
        bad = ids < 0
        if bad.any():
            if errors == "ignore":
                return ids[~bad]
            pos = int(np.argmax(bad))
            ch = text[pos]
            raise ValueError(f"text: character {ch!r} (U+{ord(ch):04X}) at position {pos} is not in the vocabulary "
                             f"of {len(self.chars)} characters; use errors='ignore' to drop such characters")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of an id sequence (any integer array-like, shape (n,))."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"ids: expected a 1-D sequence, got shape {arr.shape}")
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= len(self.chars):
            bad = arr[(arr < 0) | (arr >= len(self.chars))][0]
            raise ValueError(f"ids: id {int(bad)} is outside the vocabulary (0..{len(self.chars) - 1})")
        return "".join(self._chars_arr[arr].tolist())

    def to_json(self) -> str:
        """A JSON string that :meth:`from_json` turns back into an equal vocabulary."""
        return json.dumps({"type": "CharVocab", "version": 1, "chars": self.chars}, ensure_ascii=True)

    @classmethod
    def from_json(cls, data: str) -> "CharVocab":
        """The vocabulary saved by :meth:`to_json` (a JSON string)."""
        try:
            obj = json.loads(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"data: not a CharVocab JSON string ({err})") from None
        if not isinstance(obj, dict) or obj.get("type") != "CharVocab" or not isinstance(obj.get("chars"), list):
            raise ValueError("data: not a CharVocab JSON object (expected {'type': 'CharVocab', 'chars': [...]})")
        if obj.get("version") != 1:
            raise ValueError(f"data: unsupported CharVocab version {obj.get('version')!r}")
        return cls(obj["chars"])


def make_windows(ids, maxlen: int = 40, step: int = 3) -> Tuple[np.ndarray, np.ndarray]:
    """(window, next id) pairs: window ``k`` is ``ids[k*step : k*step + maxlen]`` and its target is
    ``ids[k*step + maxlen]``, for every start ``0, step, 2*step, ... < len(ids) - maxlen`` (as the
    Keras example's ``range(0, len(text) - maxlen, step)``).

    Args:
        ids: 1-D integer array-like of length n.
    Returns:
        ``x`` int32 ``(N, maxlen)`` and ``y`` int32 ``(N,)``, ``N = ceil((n - maxlen) / step)``
        (0 when ``n <= maxlen``).
    """
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids: expected a 1-D sequence, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
    for name, v in (("maxlen", maxlen), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    arr = arr.astype(np.int32, copy=False)
    starts = np.arange(0, max(arr.size - maxlen, 0), step, dtype=np.int64)
    x = arr[starts[:, None] + np.arange(maxlen, dtype=np.int64)]
    y = arr[starts + maxlen]
    return x.reshape(len(starts), maxlen), y


def train_val_split(text: T, val_fraction: float = 0.05) -> Tuple[T, T]:
    """(train, val): the last ``floor(len(text) * val_fraction)`` items are held out as `val`, the
    rest is `train`. Works on a string, list or 1-D array (slices of it are returned)."""
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction: expected 0 <= val_fraction < 1, got {val_fraction!r}")
    n = len(text)
    cut = n - int(n * float(val_fraction))
    return text[:cut], text[cut:]

