"""IMDB loader: counts, Keras's encoding conventions, padding, cache, sources, errors.

The full 50,000-review archive is parsed once per session (``full_cache``); everything else uses
``limit=`` subsets. No test touches the network or the user's real cache folder.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fusedrnn.datasets import imdb
from fusedrnn.datasets.locate import DataNotFoundError

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
ARCHIVE = SHARED / "aclImdb.tar.gz"
LIMIT = 200

needs_archive = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"shared IMDB archive not found at {ARCHIVE}")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Default cache and data folders point into tmp: the user's ~/.cache is never read or written."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(imdb.CACHE_ENV_VAR, str(tmp_path / "imdb-cache"))
    monkeypatch.setenv("FUSEDRNN_DATA", str(tmp_path / "no-data"))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("imdb-cache")


@pytest.fixture(scope="session")
def full_corpus(session_cache):
    if not ARCHIVE.is_file():
        pytest.skip(f"shared IMDB archive not found at {ARCHIVE}")
    t0 = time.perf_counter()
    corpus = imdb.load_corpus(ARCHIVE, cache_dir=session_cache)
    print(f"parsed the full IMDB archive in {time.perf_counter() - t0:.1f} s")
    return corpus


@pytest.fixture(scope="session")
def small_corpus(session_cache):
    if not ARCHIVE.is_file():
        pytest.skip(f"shared IMDB archive not found at {ARCHIVE}")
    return imdb.load_corpus(ARCHIVE, limit=LIMIT, cache_dir=session_cache)


@pytest.fixture(scope="session")
def subset_folder(tmp_path_factory, small_corpus):
    """The LIMIT-sized subset of the archive extracted to tmp/aclImdb (only the chosen review files)."""
    wanted = set()
    for split in ("train", "test"):
        s = getattr(small_corpus, split)
        for lab, fid, rating in zip(s.labels, s.file_ids, s.ratings):
            wanted.add(f"{split}/{'pos' if lab else 'neg'}/{fid}_{rating}.txt")
    root = tmp_path_factory.mktemp("extract") / "aclImdb"
    with tarfile.open(ARCHIVE, "r|gz") as tf:
        for m in tf:
            rel = m.name.split("aclImdb/", 1)[-1]
            if m.isfile() and rel in wanted:
                dest = root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tf.extractfile(m).read())
    assert sum(1 for _ in root.rglob("*.txt")) == 2 * LIMIT
    return root


def _same(a, b):
    (xa, ya), (xta, yta) = a
    (xb, yb), (xtb, ytb) = b
    assert list(map(list, xa)) == list(map(list, xb))
    assert list(map(list, xta)) == list(map(list, xtb))
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(yta, ytb)


def _perm(n, seed=113):
    """The order Keras's shuffle gives for the first split."""
    p = np.arange(n)
    np.random.RandomState(seed).shuffle(p)
    return p


# ------------------------------------------------------------------------------------------
# tokenizer
# ------------------------------------------------------------------------------------------

def test_tokenize_rule():
    text = "A <br />Don't STOP-me,<br/>rock'n'roll!! 'quoted' it\u2019s _under_score 42nd <BR>caf\u00e9 ''x'' a''b"
    assert imdb.tokenize(text) == ["a", "don't", "stop", "me", "rock'n'roll", "quoted", "it's", "under",
                                   "score", "42nd", "café", "x", "a", "b"]
    assert imdb.tokenize("") == []
    with pytest.raises(TypeError, match="text"):
        imdb.tokenize(b"bytes")


# ------------------------------------------------------------------------------------------
# full archive
# ------------------------------------------------------------------------------------------

@needs_archive
def test_full_counts_and_labels(full_corpus, session_cache):
    assert len(full_corpus.train) == 25_000 and len(full_corpus.test) == 25_000
    (x, y), (xt, yt) = imdb.load_imdb(ARCHIVE, cache_dir=session_cache)  # cache hit
    assert x.shape == (25_000,) and xt.shape == (25_000,) and x.dtype == object
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert int(y.sum()) == 12_500 and int(yt.sum()) == 12_500
    assert all(s[0] == 1 for s in x[:500]) and all(min(s) >= 1 for s in xt[:500])
    # file-name ratings agree with the labels: pos >= 7, neg <= 4
    for s in (full_corpus.train, full_corpus.test):
        assert np.all(s.ratings[s.labels == 1] >= 7) and np.all(s.ratings[s.labels == 0] <= 4)
    # canonical order: pos/neg alternate, each class by file id
    assert list(full_corpus.train.labels[:4]) == [1, 0, 1, 0]
    assert np.all(np.diff(full_corpus.train.file_ids[full_corpus.train.labels == 1]) > 0)


@needs_archive
def test_full_word_index(full_corpus, session_cache):
    wi = imdb.get_word_index(ARCHIVE, cache_dir=session_cache)
    assert wi == full_corpus.word_index()
    assert sorted(wi.values()) == list(range(1, len(wi) + 1))
    assert [w for w, r in sorted(wi.items(), key=lambda kv: kv[1])[:3]] == ["the", "and", "a"]
    counts, words = full_corpus.counts, full_corpus.words
    assert np.all(np.diff(counts) <= 0)
    ties = np.flatnonzero(counts[1:] == counts[:-1])
    assert all(words[i] < words[i + 1] for i in ties)  # equal counts: code-point order
    # counts are the training occurrences: they add up to the number of training tokens
    assert int(counts.sum()) == full_corpus.train.ranks.size
    # test words unseen in training were dropped, so every test rank is a training word
    assert full_corpus.test.ranks.max() <= len(words)


# ------------------------------------------------------------------------------------------
# Keras conventions
# ------------------------------------------------------------------------------------------

@needs_archive
def test_encoding_conventions(small_corpus, session_cache):
    def load(**kw):
        return imdb.load_imdb(ARCHIVE, limit=LIMIT, cache_dir=session_cache, **kw)

    big = 10**9  # no num_words cut
    (x, y), (xt, yt) = load(num_words=big)
    # num_words=None: Keras takes num_words = the largest id, which then itself becomes OOV
    (xq, _), (xtq, _) = load()
    top = max(max(s) for s in list(x) + list(xt))
    assert [list(s) for s in xq] == [[2 if w == top else w for w in s] for s in x]
    assert len(x) == LIMIT and len(xt) == LIMIT and int(y.sum()) == LIMIT // 2
    perm = _perm(LIMIT)
    for j in (0, 7, LIMIT - 1):  # shuffled review j is canonical review perm[j], ranks + 3 after a 1
        assert x[j] == [1] + [r + 3 for r in small_corpus.train.review(perm[j]).tolist()]
        assert y[j] == small_corpus.train.labels[perm[j]]

    (xn, _), (xtn, _) = load(num_words=100)
    for a, b in zip(x, xn):
        assert b == [w if w < 100 else 2 for w in a]
    assert max(max(s) for s in xn) < 100 and any(2 in s for s in xn)

    (xs, _), _ = load(skip_top=10, num_words=1000)
    for a, b in zip(x, xs):  # the start char 1 < skip_top also becomes OOV (as in Keras)
        assert b == [w if 10 <= w < 1000 else 2 for w in a]

    (xi, _), _ = load(index_from=5, num_words=big)
    for a, b in zip(x, xi):
        assert b[0] == 1 and b[1:] == [w + 2 for w in a[1:]]

    (xd, _), _ = load(num_words=50, oov_char=None)
    for a, b in zip(x, xd):
        assert b == [w for w in a if w < 50]

    (xnostart, _), _ = load(start_char=None, num_words=big)
    for a, b in zip(x, xnostart):
        assert b == a[1:]

    (xm, ym), (xtm, ytm) = load(maxlen=150, num_words=big)
    keep = [len(s) < 150 for s in x]
    assert [list(s) for s in xm] == [s for s, k in zip(x, keep) if k]
    np.testing.assert_array_equal(ym, y[np.array(keep)])
    assert all(len(s) < 150 for s in xtm) and len(ytm) == len(xtm)
    with pytest.raises(ValueError, match="maxlen"):
        load(maxlen=2)

    (xo, _), _ = load(seed=7, num_words=big)
    assert sorted(map(tuple, xo)) == sorted(map(tuple, x)) and list(map(list, xo)) != list(map(list, x))


@needs_archive
def test_bad_arguments(session_cache):
    with pytest.raises(ValueError, match="limit"):
        imdb.load_imdb(ARCHIVE, limit=0, cache_dir=session_cache)
    with pytest.raises(TypeError, match="num_words"):
        imdb.load_imdb(ARCHIVE, num_words="10", limit=LIMIT, cache_dir=session_cache)


def _write_keras_npz(path, corpus):
    """An npz laid out like Keras's imdb.npz (object arrays of lists of word ranks)."""
    arrays = {}
    for split in ("train", "test"):
        s = getattr(corpus, split)
        xs = np.empty(len(s), dtype=object)
        for i in range(len(s)):
            xs[i] = s.review(i).tolist()
        arrays[f"x_{split}"] = xs
        arrays[f"y_{split}"] = s.labels.astype(np.int64)
    np.savez(path, **arrays)


@needs_archive
def test_pipeline_matches_keras(small_corpus, session_cache, tmp_path, monkeypatch):
    """Our load_imdb on an imdb.npz == keras.datasets.imdb.load_data on it == our load from the tar."""
    keras_imdb = pytest.importorskip("keras.src.datasets.imdb")
    npz = tmp_path / "imdb.npz"
    _write_keras_npz(npz, small_corpus)
    monkeypatch.setattr(keras_imdb, "get_file", lambda *a, **k: str(npz))  # no download: our file
    options = [{}, {"num_words": 500}, {"num_words": 300, "skip_top": 20, "seed": 3}, {"maxlen": 180},
               {"start_char": None, "index_from": 0}, {"oov_char": None, "num_words": 200}, {"index_from": 7}]
    for kw in options:
        ref = keras_imdb.load_data(**kw)
        ours_npz = imdb.load_imdb(npz, **kw)
        ours_tar = imdb.load_imdb(ARCHIVE, limit=LIMIT, cache_dir=session_cache, **kw)
        _same(ours_npz, ref)
        _same(ours_tar, ref)
        assert ours_npz[0][0].dtype == object and ours_npz[0][1].dtype == ref[0][1].dtype


@needs_archive
def test_npz_word_index_and_limit(small_corpus, tmp_path):
    npz = tmp_path / "imdb.npz"
    _write_keras_npz(npz, small_corpus)
    with pytest.raises(DataNotFoundError, match="imdb_word_index.json"):
        imdb.get_word_index(npz)
    (tmp_path / "imdb_word_index.json").write_text('{"the": 1, "and": 2}')
    assert imdb.get_word_index(npz) == {"the": 1, "and": 2}
    (x, y), _ = imdb.load_imdb(npz, limit=10)
    assert len(x) == 10 and int(y.sum()) == 5


def test_npz_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    arr = np.empty(1, dtype=object)
    arr[0] = Evil()
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    bad = tmp_path / "imdb.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            zf.writestr(name + ".npy", buf.getvalue())
    with pytest.raises(ValueError, match="refusing"):
        imdb.load_imdb(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        imdb.load_imdb(tmp_path / "junk.npz")


# ------------------------------------------------------------------------------------------
# sources: tar vs folder, search order, missing data
# ------------------------------------------------------------------------------------------

@needs_archive
def test_tar_and_folder_agree(subset_folder, session_cache, tmp_path):
    from_tar = imdb.load_imdb(ARCHIVE, limit=LIMIT, cache_dir=session_cache, num_words=2000)
    _same(imdb.load_imdb(subset_folder, limit=LIMIT, cache=False, num_words=2000), from_tar)
    _same(imdb.load_imdb(subset_folder, cache=False, num_words=2000), from_tar)  # folder holds just the subset
    _same(imdb.load_imdb(subset_folder.parent, cache=False, num_words=2000), from_tar)  # a folder holding aclImdb/
    # a tar.gz of the subset, read in streaming mode
    small_tar = tmp_path / "aclImdb.tar.gz"
    with tarfile.open(small_tar, "w:gz") as tf:
        tf.add(subset_folder, arcname="aclImdb")
    _same(imdb.load_imdb(small_tar, cache=False, num_words=2000), from_tar)
    assert not (tmp_path / "aclImdb").exists()  # nothing was extracted


@needs_archive
def test_search_order(subset_folder, small_corpus, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("FUSEDRNN_DATA", str(data))
    _write_keras_npz(data / "imdb.npz", small_corpus)
    assert imdb.find_imdb_source() == data / "imdb.npz"
    (data / "aclImdb").symlink_to(subset_folder, target_is_directory=True)
    assert imdb.find_imdb_source() == data / "aclImdb"
    (data / "aclImdb.tar.gz").symlink_to(ARCHIVE.resolve())
    assert imdb.find_imdb_source() == data / "aclImdb.tar.gz"
    assert imdb.find_imdb_source(subset_folder) == subset_folder


def test_missing_data_message(tmp_path, monkeypatch):
    with pytest.raises(DataNotFoundError) as err:
        imdb.load_imdb()
    msg = str(err.value)
    for part in ("aclImdb.tar.gz", "aclImdb/", "imdb.npz", str(tmp_path / "no-data"), str(tmp_path / "xdg"),
                 "FUSEDRNN_DATA", "--data", "https://"):
        assert part in msg, (part, msg)
    with pytest.raises(DataNotFoundError, match="nowhere"):
        imdb.load_imdb(tmp_path / "nowhere" / "aclImdb.tar.gz")
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "imdb-cache").exists()


def test_not_an_archive(tmp_path):
    bad = tmp_path / "aclImdb.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValueError, match="aclImdb.tar.gz"):
        imdb.load_imdb(bad, cache_dir=tmp_path / "c")
    # a well-formed archive cut in the middle
    src = tmp_path / "src" / "aclImdb"
    for split in ("train", "test"):
        for cls in ("pos", "neg"):
            (src / split / cls).mkdir(parents=True)
            for i in range(30):
                (src / split / cls / f"{i}_{8 if cls == 'pos' else 2}.txt").write_bytes(os.urandom(3000).hex().encode())
    whole = tmp_path / "whole.tar.gz"
    with tarfile.open(whole, "w:gz") as tf:
        tf.add(src, arcname="aclImdb")
    (x, y), _ = imdb.load_imdb(whole, cache=False)
    assert len(x) == 60 and int(y.sum()) == 30
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.tar.gz"):
        imdb.load_imdb(cut, cache=False)
    empty = tmp_path / "empty" / "aclImdb"
    (empty / "train").mkdir(parents=True)
    (empty / "test").mkdir()
    with pytest.raises(ValueError, match="no train reviews"):
        imdb.load_imdb(empty, cache=False)


# ------------------------------------------------------------------------------------------
# cache
# ------------------------------------------------------------------------------------------

@needs_archive
def test_cache_hit_does_not_parse(small_corpus, session_cache, monkeypatch):
    first = imdb.load_imdb(ARCHIVE, limit=LIMIT, cache_dir=session_cache)

    def boom(*a, **k):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(imdb, "_read_archive", boom)
    monkeypatch.setattr(imdb, "_tokenize_corpus", boom)
    _same(imdb.load_imdb(ARCHIVE, limit=LIMIT, cache_dir=session_cache), first)
    assert imdb.get_word_index(ARCHIVE, limit=LIMIT, cache_dir=session_cache) == small_corpus.word_index()
    files = list(session_cache.glob(f"corpus-limit{LIMIT}-*.npz"))
    assert len(files) == 1


@needs_archive
def test_corrupt_cache_is_rebuilt(subset_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ref = imdb.load_imdb(subset_folder, cache_dir=cache)
    (cfile,) = cache.glob("corpus-*.npz")
    good = cfile.read_bytes()
    calls = []
    real = imdb._tokenize_corpus
    monkeypatch.setattr(imdb, "_tokenize_corpus", lambda *a, **k: calls.append(1) or real(*a, **k))
    for damage in (b"garbage", good[: len(good) // 2], b""):
        cfile.write_bytes(damage)
        _same(imdb.load_imdb(subset_folder, cache_dir=cache), ref)
        assert imdb._load_cache(cfile, imdb._source_key(subset_folder, None), subset_folder) is not None
    assert len(calls) == 3
    # a valid npz with inconsistent contents is rejected too
    with np.load(cfile) as z:
        arrays = dict(z)
    arrays["train_offsets"] = arrays["train_offsets"][::-1].copy()
    np.savez(cfile.with_suffix(""), **arrays)  # np.savez adds .npz back
    _same(imdb.load_imdb(subset_folder, cache_dir=cache), ref)
    assert len(calls) == 4
    # cache=False neither reads nor writes
    _same(imdb.load_imdb(subset_folder, cache_dir=tmp_path / "unused", cache=False), ref)
    assert not (tmp_path / "unused").exists()


def test_env_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(imdb.CACHE_ENV_VAR, str(tmp_path / "elsewhere"))
    assert imdb.imdb_cache_dir() == tmp_path / "elsewhere"
    assert imdb.imdb_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(imdb.CACHE_ENV_VAR)
    assert imdb.imdb_cache_dir() == tmp_path / "xdg" / "fusedrnn" / "imdb"


# ------------------------------------------------------------------------------------------
# encode_texts / decode_ids
# ------------------------------------------------------------------------------------------

@needs_archive
def test_encode_texts_reproduces_loader(subset_folder, small_corpus, session_cache):
    wi = small_corpus.word_index()
    (x, _), (xt, _) = imdb.load_imdb(ARCHIVE, limit=LIMIT, cache_dir=session_cache, num_words=3000)
    perm_train = _perm(LIMIT)
    rng = np.random.RandomState(113)
    rng.shuffle(np.arange(LIMIT))
    perm_test = np.arange(LIMIT)
    rng.shuffle(perm_test)
    for xs, split, perm in ((x, "train", perm_train), (xt, "test", perm_test)):
        s = getattr(small_corpus, split)
        for j in (0, 1, 50):
            k = perm[j]
            f = subset_folder / split / ("pos" if s.labels[k] else "neg") / f"{s.file_ids[k]}_{s.ratings[k]}.txt"
            text = f.read_text(encoding="utf-8")
            assert imdb.encode_texts([text], wi, num_words=3000) == [xs[j]]
    # unknown words: skipped by default, OOV on request
    assert imdb.encode_texts(["the zzqqxx movie"], wi) == [[1, wi["the"] + 3, wi["movie"] + 3]]
    assert imdb.encode_texts(["the zzqqxx movie"], wi, unknown="oov") == [[1, wi["the"] + 3, 2, wi["movie"] + 3]]
    assert imdb.encode_texts(["The MOVIE"], wi, start_char=None, index_from=0) == [[wi["the"], wi["movie"]]]
    decoded = imdb.decode_ids(imdb.encode_texts(["The movie, zzqqxx!"], wi, unknown="oov")[0], wi)
    assert decoded == "[START] the movie [OOV]"
    with pytest.raises(TypeError, match="texts"):
        imdb.encode_texts("a single string", wi)
    with pytest.raises(ValueError, match="unknown"):
        imdb.encode_texts(["x"], wi, unknown="drop")


# ------------------------------------------------------------------------------------------
# pad_sequences
# ------------------------------------------------------------------------------------------

def test_pad_sequences_hand_computed():
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(imdb.pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(imdb.pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(imdb.pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(imdb.pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(imdb.pad_sequences(seqs, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(imdb.pad_sequences(seqs, maxlen=4, padding="post", truncating="post"),
                                  [[1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]])
    np.testing.assert_array_equal(imdb.pad_sequences([[], [7]], maxlen=2), [[0, 0], [0, 7]])
    out = imdb.pad_sequences(seqs)
    assert out.dtype == np.int32 and out.shape == (3, 3)
    assert imdb.pad_sequences([], maxlen=5).shape == (0, 5)
    assert imdb.pad_sequences(seqs, maxlen=0).shape == (3, 0)
    f = imdb.pad_sequences([[0.5, 1.5], [2.5]], dtype="float32", padding="post")
    np.testing.assert_array_equal(f, np.array([[0.5, 1.5], [2.5, 0]], dtype=np.float32))
    vec = imdb.pad_sequences([np.ones((2, 3)), np.zeros((1, 3))], maxlen=3, dtype="float64")
    assert vec.shape == (2, 3, 3) and vec[0, 0].sum() == 0 and vec[0, 1:].sum() == 6
    s = imdb.pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert s.tolist() == [["a", "b"], ["<pad>", "c"]]
    with pytest.raises(ValueError, match="padding"):
        imdb.pad_sequences(seqs, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        imdb.pad_sequences(seqs, truncating="both")
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        imdb.pad_sequences([[1], 5])
    with pytest.raises(ValueError, match="value"):
        imdb.pad_sequences(seqs, value="x")
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        imdb.pad_sequences([np.ones((2, 3)), np.ones((2, 4))])


def test_pad_sequences_vs_keras(rng, seed):
    keras = pytest.importorskip("keras")
    for trial in range(12):
        n = int(rng.integers(1, 40))
        seqs = [rng.integers(-50, 1000, size=int(rng.integers(0, 30))).tolist() for _ in range(n)]
        if trial % 3 == 0:
            seqs = [np.asarray(s, dtype=np.int64) for s in seqs]
        if trial == 0:
            seqs = [[] for _ in range(n)] + [[1, 2]]
        maxlen = None if trial % 4 == 0 else int(rng.integers(1, 35))
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                for dtype, value in (("int32", 0), ("int64", -1), ("float32", 0.5)):
                    kw = dict(maxlen=maxlen, padding=padding, truncating=truncating, dtype=dtype, value=value)
                    ref = keras.utils.pad_sequences(seqs, **kw)
                    got = imdb.pad_sequences(seqs, **kw)
                    assert got.dtype == ref.dtype, (seed, kw)
                    np.testing.assert_array_equal(got, ref, err_msg=f"seed {seed}, trial {trial}, {kw}")


def test_pad_sequences_is_fast(rng):
    lengths = rng.integers(10, 600, size=25_000)
    seqs = [list(range(k)) for k in lengths]
    t0 = time.perf_counter()
    out = imdb.pad_sequences(seqs, maxlen=500)
    elapsed = time.perf_counter() - t0
    assert out.shape == (25_000, 500)
    k = int(np.argmax(lengths))
    assert out[k, -1] == lengths[k] - 1 and out[k, 0] == lengths[k] - 500
    assert elapsed < 5.0, f"padding 25,000 sequences took {elapsed:.2f} s"
