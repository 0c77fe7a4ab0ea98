"""The counting and lookup kernels of fusedrnn.ngram.counts, and both paths through them.

Small corpora always take the direct-table path (a key range a few times the
number of n-grams); large ones the radix-sort + hash-table path. Both must give
the same tables and bit-identical probabilities, so the second half forces the
hash path (``_DENSE_MAX = 0``) and compares with the default.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fusedrnn.ngram import NgramModel, read_arpa, write_arpa
from fusedrnn.ngram import counts as counts_mod
from fusedrnn.ngram.counts import KeyIndex, radix_argsort


@pytest.mark.parametrize("key_range", [1, 2, 255, 1 << 16, (1 << 16) + 1, 3_000_017, 1 << 40])
@pytest.mark.parametrize("size", [0, 1, 7, 5000])
def test_radix_argsort_is_a_stable_argsort(key_range, size):
    rng = np.random.default_rng(key_range % 1000 + size)
    # few distinct values, so that stability matters
    pool = rng.integers(0, key_range, size=max(1, size // 10))
    key = rng.choice(pool, size=size).astype(np.int64)
    perm = radix_argsort(key, key_range)
    assert perm.dtype.kind == "i"
    np.testing.assert_array_equal(perm, np.argsort(key, kind="stable"))


def _reference_rows(keys: np.ndarray, q: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(keys, q)
    hit = (pos < keys.size) & (keys[np.minimum(pos, max(keys.size - 1, 0))] == q) if keys.size else pos < 0
    return np.where(hit, pos, -1)


@pytest.mark.parametrize("m", [0, 1, 2, 100, 20_000])
@pytest.mark.parametrize("key_range", [50_000, 1 << 20, 17_685 * 122_313])
def test_key_index_hash_and_direct_agree_with_searchsorted(m, key_range, monkeypatch):
    rng = np.random.default_rng(m + key_range % 97)
    m = min(m, key_range)
    keys = np.sort(rng.choice(key_range, size=m, replace=False)).astype(np.int64)
    present = keys[rng.integers(0, m, size=3000)] if m else np.zeros(0, dtype=np.int64)
    q = np.concatenate([present, rng.integers(0, key_range, size=3000), [-1, 0, key_range - 1]])
    expect = _reference_rows(keys, q)
    expect[q < 0] = -1
    hashed = KeyIndex(keys, key_range, direct=None) if not counts_mod.use_direct_table(key_range, m) else None
    monkeypatch.setattr(counts_mod, "_DENSE_MAX", 0)
    forced_hash = KeyIndex(keys, key_range)
    assert not forced_hash.is_direct
    np.testing.assert_array_equal(forced_hash.lookup(q), expect)
    monkeypatch.setattr(counts_mod, "_DENSE_MAX", 1 << 24)
    if key_range <= 1 << 20:
        direct = np.full(key_range + 1, -1, dtype=np.int32)
        direct[keys] = np.arange(m, dtype=np.int32)
        np.testing.assert_array_equal(KeyIndex(keys, key_range, direct).lookup(q), expect)
    if hashed is not None:
        np.testing.assert_array_equal(hashed.lookup(q), expect)
    assert forced_hash.lookup(np.zeros(0, dtype=np.int64)).shape == (0,)


def test_key_index_colliding_keys():
    """Keys that share a home slot (same top hash bits) are all found by probing."""
    # multiples of 2**56: the hash of i << 56 has only 8 varying bits, so home slots collide
    keys = np.arange(64, dtype=np.int64) << 56
    ix = KeyIndex(keys, int(keys[-1]) + 1)
    assert not ix.is_direct
    np.testing.assert_array_equal(ix.lookup(keys), np.arange(64))
    np.testing.assert_array_equal(ix.lookup(keys + 1), np.full(64, -1))


def _snapshot(lm: NgramModel, test: list) -> list:
    c = lm.counts
    out = [lm.vocab.tokens]
    if c is not None:
        for k in range(lm.order + 1):
            out += [c.keys[k].tolist(), c.count[k].tolist(), c.prefix[k].tolist(),
                    c.suffix[k].tolist(), c.word[k].tolist()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ev = lm.evaluate(test)
    out.append((ev.perplexity, ev.log2prob, ev.n_zero, ev.n_oov))
    out.append([lm.logprob(t) for t in test])
    out.append(lm.distribution(["<s>"] * (lm.order - 1)).tolist())
    return out


words = st.sampled_from(["a", "b", "c", "dd", "é", "<s>", "</s>", "<UNK>"])
sentence = st.lists(words, max_size=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=st.lists(sentence, min_size=1, max_size=12).filter(lambda c: any(c)),
       test=st.lists(st.lists(st.sampled_from(["a", "b", "zz", "<s>"]), max_size=6), min_size=1, max_size=3),
       n=st.integers(1, 5), level=st.sampled_from(["word", "char"]),
       est=st.sampled_from(["mle", "laplace", "add-k", "kneser-ney", "modified-kneser-ney", "katz",
                            "stupid-backoff"]),
       convention=st.sampled_from(["srilm", "nltk"]), cutoff=st.integers(1, 3))
@example(train=[["a"]], test=[[]], n=5, level="word", est="mle", convention="srilm", cutoff=1)  # no 5-gram at all
def test_hash_path_matches_direct_path(train, test, n, level, est, convention, cutoff):
    if level == "char":
        train = ["".join(s) for s in train]
        test = ["".join(s) for s in test]
    else:
        train = [" ".join(s) for s in train]
        test = [" ".join(s) for s in test]

    def fit() -> NgramModel | None:
        try:
            return NgramModel(n, level, est, k=0.3, convention=convention, unk_cutoff=cutoff).fit(train)
        except ValueError:
            return None  # e.g. every token cut off

    direct = fit()
    old = counts_mod._DENSE_MAX
    counts_mod._DENSE_MAX = 0
    try:
        hashed = fit()
        if direct is None:
            assert hashed is None
            return
        assert hashed is not None
        # Every table is hashed, but for an empty key range (no n-gram of that order), whose
        # direct table is the single "absent" entry.
        assert all(ix is None or not ix.is_direct or ix.key_range == 0 for ix in hashed.index)
        try:
            expected = _snapshot(direct, test)
        except ValueError as err:  # e.g. a test set with nothing to score: both must say so
            with pytest.raises(ValueError, match=str(err).split(":")[0]):
                _snapshot(hashed, test)
            return
        assert _snapshot(hashed, test) == expected
    finally:
        counts_mod._DENSE_MAX = old


@pytest.mark.parametrize("dense_max", [0, 1 << 24])
def test_arpa_model_index(tmp_path, dense_max, monkeypatch):
    """A model read from ARPA gets its own index (hash or direct) and scores like the original."""
    corpus = ["a b c a b", "b c a", "c c a b a"]
    lm = NgramModel(3, "word", "kneser-ney").fit(corpus)
    write_arpa(lm, tmp_path / "m.arpa")
    monkeypatch.setattr(counts_mod, "_DENSE_MAX", dense_max)
    lm2 = read_arpa(tmp_path / "m.arpa")
    assert all(ix is None or ix.is_direct == bool(dense_max) for ix in lm2.index)
    for s in ["a b c", "c a zz b"]:
        assert lm2.logprob(s) == pytest.approx(lm.logprob(s), rel=1e-6)


def test_unk_cutoff_with_literal_specials():
    """In fit, the cut-off applies to every token: a literal "</s>" seen twice is the end
    symbol, a literal "<s>" seen once (like "b") becomes <UNK>."""
    from fusedrnn.ngram.vocab import Vocabulary, flatten_sentences

    sents = ["a a b <s>", "a </s> </s> c", "<UNK> d"]
    raw, lengths = flatten_sentences(sents, "word")
    vocab, ids = Vocabulary.build(raw, "word", unk_cutoff=2)
    assert vocab.tokens == ["a", "<UNK>", "<s>", "</s>"]
    assert lengths.tolist() == [4, 4, 2]
    assert vocab.decode(ids) == ["a", "a", "<UNK>", "<UNK>", "a", "</s>", "</s>", "<UNK>", "<UNK>", "<UNK>"]
    vocab1, ids1 = Vocabulary.build(raw, "word", unk_cutoff=1)
    assert vocab1.tokens == ["a", "b", "c", "d", "<UNK>", "<s>", "</s>"]
    assert vocab1.decode(ids1) == raw.tokens


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("bad", [1, ["a"], None, b"a"])
def test_non_str_tokens_are_rejected(level, bad):
    lm = NgramModel(2, level, "mle").fit(["ab a", "b"])
    for call in (lambda: NgramModel(2, level, "mle").fit([["a", bad]]),
                 lambda: lm.perplexity([["a", bad]]),
                 lambda: lm.logprob(["a", bad])):
        with pytest.raises(TypeError, match="every token must be a str"):
            call()


@pytest.mark.parametrize("dense_max", [0, 1 << 24])
@pytest.mark.parametrize("convention", ["srilm", "nltk"])
def test_suffix_rows_by_definition(dense_max, convention, monkeypatch):
    """suffix[k][g] is the row of g without its first token (checked on the token tuples)."""
    monkeypatch.setattr(counts_mod, "_DENSE_MAX", dense_max)
    rng = np.random.default_rng(3)
    corpus = [" ".join(rng.choice(list("abcdefg"), size=int(rng.integers(0, 15)))) for _ in range(40)]
    c = NgramModel(5, "word", "katz", convention=convention).fit(corpus).counts
    grams: list[list[tuple[int, ...]]] = [[()], [(w,) for w in range(c.size(1))]]
    for k in range(2, 6):
        grams.append([grams[k - 1][p] + (w,) for p, w in zip(c.prefix[k].tolist(), c.word[k].tolist())])
        row_of = {g: r for r, g in enumerate(grams[k - 1])}
        assert c.suffix[k].tolist() == [row_of[g[1:]] for g in grams[k]]
