"""Nietzsche text loader: README numbers, shipped copy, CharVocab, windows, split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fusedrnn.datasets import nietzsche
from fusedrnn.datasets.locate import DataNotFoundError

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
SHARED_TEXT = SHARED / "nietzsche.txt"
README_SHA256 = "dd2d7bcc4ac56f5196cc427f5a47b02cb60360a420e46d355c676bf11c9f1fb4"


@pytest.fixture(scope="module")
def text():
    return nietzsche.load_text()


def test_readme_numbers(text):
    assert len(text) == 600_893
    vocab = nietzsche.CharVocab.from_text(text)
    assert len(vocab) == 57
    assert text == text.lower()
    x, y = nietzsche.make_windows(vocab.encode(text), maxlen=40, step=3)
    assert x.shape == (200_285, 40) and y.shape == (200_285,)
    assert x.dtype == np.int32 and y.dtype == np.int32
    assert vocab.decode(x[-1]) + vocab.decode(y[-1:]) == text[3 * 200_284: 3 * 200_284 + 41]


def test_shipped_copy_checksum():
    data = nietzsche.shipped_text_path().read_bytes()
    assert len(data) == 600_901
    assert hashlib.sha256(data).hexdigest() == README_SHA256


@pytest.mark.skipif(not SHARED_TEXT.is_file(), reason=f"shared nietzsche.txt not found at {SHARED_TEXT}")
def test_shipped_equals_shared(text):
    assert hashlib.sha256(SHARED_TEXT.read_bytes()).hexdigest() == README_SHA256
    assert nietzsche.load_text(SHARED_TEXT) == text
    assert nietzsche.load_text(SHARED) == text  # a folder holding nietzsche.txt
    assert nietzsche.load_text(SHARED_TEXT, lower=False).lower() == text


def test_explicit_path_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FUSEDRNN_DATA", str(tmp_path / "no-data"))
    own = tmp_path / "mine.txt"
    own.write_bytes("Hello\r\nWORLD\u00e9\n".encode("utf-8"))
    assert nietzsche.load_text(own) == "hello\nworld\u00e9\n"
    with pytest.raises(DataNotFoundError, match="missing.txt"):
        nietzsche.load_text(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt"):
        nietzsche.load_text(tmp_path / "latin1.txt")


def test_vocab_round_trip(text):
    vocab = nietzsche.CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.chars == sorted(set(text)) and vocab.char_to_id["\n"] == 0
    again = nietzsche.CharVocab.from_json(vocab.to_json())
    assert again == vocab and again.chars == vocab.chars
    np.testing.assert_array_equal(again.encode(text[:1000]), ids[:1000])
    assert vocab.decode([]) == "" and vocab.encode("").shape == (0,)


def test_vocab_errors():
    vocab = nietzsche.CharVocab.from_text("abc ")
    with pytest.raises(ValueError, match=r"'Z' \(U\+005A\) at position 2"):
        vocab.encode("abZc")
    with pytest.raises(ValueError, match="U\\+1F600"):
        vocab.encode("a\U0001F600")
    np.testing.assert_array_equal(vocab.encode("aZb\u20acc", errors="ignore"), vocab.encode("abc"))
    with pytest.raises(ValueError, match="errors"):
        vocab.encode("a", errors="replace")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([0, 4])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([-1])
    with pytest.raises(TypeError, match="ids"):
        vocab.decode(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="CharVocab"):
        nietzsche.CharVocab.from_json('{"chars": ["a"]}')
    with pytest.raises(ValueError, match="data"):
        nietzsche.CharVocab.from_json("not json")
    with pytest.raises(ValueError, match="duplicate"):
        nietzsche.CharVocab(["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        nietzsche.CharVocab(["ab"])


def test_windows_random(rng, seed):
    for _ in range(20):
        n = int(rng.integers(0, 300))
        maxlen = int(rng.integers(1, 50))
        step = int(rng.integers(1, 7))
        ids = rng.integers(0, 60, size=n)
        x, y = nietzsche.make_windows(ids, maxlen=maxlen, step=step)
        starts = list(range(0, n - maxlen, step))
        assert x.shape == (len(starts), maxlen) and y.shape == (len(starts),), (seed, n, maxlen, step)
        assert x.dtype == np.int32 and y.dtype == np.int32
        for k, s in enumerate(starts):
            np.testing.assert_array_equal(x[k], ids[s:s + maxlen], err_msg=f"seed {seed}")
            assert y[k] == ids[s + maxlen], seed
    with pytest.raises(ValueError, match="maxlen"):
        nietzsche.make_windows([1, 2, 3], maxlen=0)
    with pytest.raises(ValueError, match="step"):
        nietzsche.make_windows([1, 2, 3], step=0)
    with pytest.raises(ValueError, match="ids"):
        nietzsche.make_windows(np.zeros((2, 2), dtype=int))


def test_train_val_split(text):
    train, val = nietzsche.train_val_split(text, 0.05)
    assert train + val == text and len(val) == int(len(text) * 0.05)
    a, b = nietzsche.train_val_split(np.arange(10), 0.25)
    np.testing.assert_array_equal(a, np.arange(8))
    np.testing.assert_array_equal(b, [8, 9])
    assert nietzsche.train_val_split("abc", 0.0) == ("abc", "")
    with pytest.raises(ValueError, match="val_fraction"):
        nietzsche.train_val_split("abc", 1.0)
