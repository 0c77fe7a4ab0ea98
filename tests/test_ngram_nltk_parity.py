"""Exact parity of fusedrnn.ngram (convention="nltk") with nltk.lm on random corpora."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

nltk_lm = pytest.importorskip("nltk.lm")
from nltk.lm import MLE, KneserNeyInterpolated, Laplace, Lidstone, StupidBackoff, Vocabulary  # noqa: E402
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline  # noqa: E402
from nltk.util import ngrams  # noqa: E402

from fusedrnn.ngram import NgramModel  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"


@pytest.fixture(scope="module")
def nietzsche_lines() -> list[str]:
    if not DATA.is_file():
        pytest.skip(f"Nietzsche corpus not found at {DATA} (expected <repo>/../shared/data/nietzsche.txt)")
    return DATA.read_text(encoding="utf-8").lower().split("\n")

REL = 1e-9

word = st.sampled_from(["a", "b", "c", "d", "e"])
sentence = st.lists(word, min_size=1, max_size=7)
corpus = st.lists(sentence, min_size=2, max_size=12)
test_sentence = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "zz"]), min_size=0, max_size=6)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _close(a: float, b: float) -> bool:
    if a == b:
        return True
    return abs(a - b) <= REL * max(abs(a), abs(b))


def _nltk_model(kind: str, n: int, train, cutoff: int = 1):
    vocab = Vocabulary(unk_cutoff=cutoff)
    if kind == "mle":
        lm = MLE(n, vocabulary=vocab)
    elif kind == "laplace":
        lm = Laplace(n, vocabulary=vocab)
    elif kind == "lidstone":
        lm = Lidstone(0.3, n, vocabulary=vocab)
    elif kind == "kn":
        lm = KneserNeyInterpolated(n, vocabulary=vocab)
    else:
        lm = StupidBackoff(order=n, vocabulary=vocab)
    grams, vtext = padded_everygram_pipeline(n, train)
    lm.fit(grams, vtext)
    return lm


MINE = {"mle": "mle", "laplace": "laplace", "lidstone": "add-k", "kn": "kneser-ney", "stupid": "stupid-backoff"}


def _events(test, n):
    out = []
    for s in test:
        out += list(ngrams(list(pad_both_ends(s, n=n)), n)) if n > 1 else [(w,) for w in s]
    return out


def _check(kind, n, train, test, cutoff=1, level="word"):
    lm = _nltk_model(kind, n, train, cutoff)
    mine = NgramModel(n, level, MINE[kind], k=0.3, convention="nltk", unk_cutoff=cutoff).fit(train)
    assert mine.vocabulary_size == len(lm.vocab)
    evs = _events(test, n)
    # every test n-gram plus all shorter contexts of it
    for e in evs:
        for j in range(len(e)):
            ctx, w = e[j:-1], e[-1]
            a = lm.score(w, ctx)
            b = mine.prob(w, list(ctx))
            assert _close(a, b), (kind, n, ctx, w, a, b)
    if evs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pa = lm.perplexity(evs)
            pb = mine.perplexity(test)
        assert (math.isinf(pa) and math.isinf(pb)) or _close(pa, pb), (pa, pb)


@FAST
@given(train=corpus, test=st.lists(test_sentence, min_size=1, max_size=4), n=st.integers(1, 4),
       kind=st.sampled_from(["mle", "laplace", "lidstone", "stupid"]))
def test_count_estimators_match_nltk(train, test, n, kind):
    _check(kind, n, train, test)


@FAST
@given(train=corpus, test=st.lists(test_sentence, min_size=1, max_size=3), n=st.integers(2, 4))
def test_kneser_ney_matches_nltk(train, test, n):
    _check("kn", n, train, test)


@FAST
@given(train=corpus, test=st.lists(test_sentence, min_size=1, max_size=3), n=st.integers(1, 3),
       kind=st.sampled_from(["mle", "laplace", "kn"]))
def test_unk_cutoff_matches_nltk(train, test, n, kind):
    if kind == "kn" and n == 1:
        n = 2
    _check(kind, n, train, test, cutoff=2)


@FAST
@given(train=st.lists(st.text(alphabet="ab c", min_size=1, max_size=10), min_size=2, max_size=8),
       test=st.lists(st.text(alphabet="ab cx", min_size=0, max_size=8), min_size=1, max_size=3),
       n=st.integers(2, 5), kind=st.sampled_from(["mle", "laplace", "kn"]))
def test_char_level_matches_nltk(train, test, n, kind):
    _check(kind, n, [list(s) for s in train], [list(s) for s in test], level="char")
    # str sentences at char level are the same as lists of characters
    a = NgramModel(n, "char", MINE[kind], convention="nltk").fit(train)
    b = NgramModel(n, "char", MINE[kind], convention="nltk").fit([list(s) for s in train])
    assert a.logprob(test[0]) == b.logprob(list(test[0]))


def test_nietzsche_prefix_parity(nietzsche_lines):
    """Real text: the first 300 lines, 3-gram words, MLE / Laplace / KN probabilities of 400 n-grams."""
    train = [line.split() for line in nietzsche_lines[:300] if line.strip()]
    test = train[:40]
    for kind in ("mle", "laplace", "kn"):
        lm = _nltk_model(kind, 3, train)
        mine = NgramModel(3, "word", MINE[kind], convention="nltk").fit(train)
        evs = _events(test, 3)[:400]
        for e in evs:
            assert _close(lm.score(e[-1], e[:-1]), mine.prob(e[-1], list(e[:-1])))
        assert _close(lm.perplexity(evs), 2.0 ** -(sum(math.log2(mine.prob(e[-1], list(e[:-1]))) for e in evs)
                                                   / len(evs)))
