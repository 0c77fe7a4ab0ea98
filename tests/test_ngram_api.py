"""API behaviour: bad input, unseen events, explain, generate."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import fusedrnn.ngram
from fusedrnn.ngram import NgramModel

CORPUS = ["i am sam", "sam i am", "i do not like green eggs and ham"]


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"order": 0}, ValueError, "order"),
        ({"order": 2.5}, TypeError, "order"),
        ({"level": "byte"}, ValueError, "level"),
        ({"estimator": "good-turing"}, ValueError, "estimator"),
        ({"estimator": 3}, TypeError, "estimator"),
        ({"estimator": "add-k", "k": 0}, ValueError, "k"),
        ({"discount": 1.5}, ValueError, "discount"),
        ({"estimator": "modified-kneser-ney", "discounts": (0.5, 1.0)}, ValueError, "discounts"),
        ({"estimator": "modified-kneser-ney", "discounts": (0.5, 2.5, 1.0)}, ValueError, "discounts"),
        ({"alpha": 0}, ValueError, "alpha"),
        ({"convention": "kenlm"}, ValueError, "convention"),
        ({"convention": "textbook"}, ValueError, "replaced by 'srilm'"),
        ({"unk_cutoff": 0}, ValueError, "unk_cutoff"),
    ],
)
def test_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        NgramModel(**kwargs)


def test_bad_fit_input():
    lm = NgramModel(2)
    with pytest.raises(ValueError, match="texts: the training corpus is empty"):
        lm.fit([])
    with pytest.raises(ValueError, match="texts"):
        lm.fit(["", "   "])
    with pytest.raises(TypeError, match="texts: expected an iterable of sentences, got a single str"):
        lm.fit("i am sam")
    with pytest.raises(TypeError, match="texts"):
        lm.fit([1, 2])
    with pytest.raises(ValueError, match="not fitted"):
        lm.prob("a")
    with pytest.raises(TypeError, match="word"):
        NgramModel(2).fit(CORPUS).prob(["i"], ["<s>"])


def test_mle_unseen_is_zero_and_infinite_perplexity():
    lm = NgramModel(2, "word", "mle").fit(CORPUS)
    assert lm.prob("ham", ["i"]) == 0.0
    assert lm.prob("am", ["never-seen"]) == 0.0  # unseen context
    assert lm.logprob("i ham") == -math.inf
    with pytest.warns(RuntimeWarning, match="probability 0 under the mle estimator"):
        ev = lm.evaluate(["i ham", "i am sam"])
    assert ev.perplexity == math.inf and ev.n_zero == 1 and ev.n_events == 7
    with pytest.warns(RuntimeWarning):
        assert lm.perplexity(["i ham"]) == math.inf
    text = str(lm.explain("i ham"))
    assert "unseen" in text and "perplexity = inf" in text
    assert lm.perplexity(["i am sam"]) < math.inf


@pytest.mark.parametrize("est", ["add-k", "laplace", "kneser-ney", "modified-kneser-ney", "katz"])
def test_smoothed_never_zero(est):
    lm = NgramModel(3, "word", est, k=0.1).fit(CORPUS)
    for w in ["ham", "zebra", "</s>"]:
        assert lm.prob(w, ["never", "seen"]) > 0
        assert lm.prob(w, ["i", "am"]) > 0
    assert math.isfinite(lm.perplexity(["zebra zebra ham i"]))


def test_oov_counted(seed):
    lm = NgramModel(2, "word", "kneser-ney").fit(CORPUS)
    ev = lm.evaluate(["i like zebras", "sam"])
    assert ev.n_oov == 1 and ev.n_events == 6 and ev.n_zero == 0
    assert ev.cross_entropy == pytest.approx(math.log2(ev.perplexity))


def test_explain_factors():
    lm = NgramModel(3, "word", "mle").fit(CORPUS)
    ex = lm.explain("i am sam")
    assert [f.word for f in ex.factors] == ["i", "am", "sam", "</s>"]
    assert ex.factors[0].context == ("<s>",)  # one <s> at every order (SRILM/KenLM)
    # c(<s> i) = 2 of c(<s> •) = 3; c(<s> i am) = 1 of 2; c(i am sam) = 1 of 2; c(am sam </s>) = 1 of 1
    assert [(f.count, f.context_count) for f in ex.factors] == [(2, 3), (1, 2), (1, 2), (1, 1)]
    assert ex.prob == pytest.approx(2 / 3 * 1 / 2 * 1 / 2 * 1)
    assert ex.log2prob == pytest.approx(lm.logprob("i am sam"))
    text = str(ex)
    assert "P(i | <s>)" in text and "c(<s> i)/c(<s> \u2022) = 2/3" in text
    # NLTK's convention keeps n-1 <s>: c(<s> <s> i) = 2 of c(<s> <s> •) = 3
    nl = NgramModel(3, "word", "mle", convention="nltk").fit(CORPUS).explain("i am sam")
    assert nl.factors[0].context == ("<s>", "<s>")
    assert "c(<s> <s> i)/c(<s> <s> \u2022) = 2/3" in str(nl)
    kn = NgramModel(3, "word", "kneser-ney").fit(CORPUS)
    ex2 = kn.explain("i like ham")
    assert "backed off" in str(ex2) and ex2.factors[1].matched_order < 3
    oov = kn.explain("i like zebras")
    assert "out of vocabulary" in str(oov)
    ch = NgramModel(2, "char", "laplace").fit(["ab ba"])
    assert "P(\u2423 | b)" in str(ch.explain("b a"))


def test_generate(seed):
    rng_data = random.Random(seed)
    data = [" ".join(rng_data.choice("a b c d".split()) for _ in range(rng_data.randint(1, 6))) for _ in range(20)]
    lm = NgramModel(3, "word", "kneser-ney").fit(data)
    out1 = lm.generate(30, rng=seed)
    out2 = lm.generate(30, rng=np.random.default_rng(seed))
    assert out1 == out2
    toks = out1.split()
    assert all(t in {"a", "b", "c", "d"} for t in toks)
    assert len(toks) + out1.count("\n") == 30
    # temperature -> 0 is greedy: same output for different seeds when the argmax is unique
    greedy = NgramModel(3, "word", "kneser-ney").fit(["a b c d"] * 5 + ["a c"])
    g1 = greedy.generate(9, seed_text="a", temperature=1e-3, rng=seed)
    g2 = greedy.generate(9, seed_text="a", temperature=1e-3, rng=seed + 1)
    assert g1 == g2 == "b c d\na b c d\n"
    ch = NgramModel(4, "char", "mle").fit(["hello world"])
    assert ch.generate(11, rng=seed) == "hello world"  # MLE on one sentence is deterministic
    with pytest.raises(ValueError, match="temperature"):
        lm.generate(5, temperature=0)
    with pytest.raises(ValueError, match="n: must be >= 0"):
        lm.generate(-1)


def test_package_exports():
    for name in fusedrnn.ngram.__all__:
        assert hasattr(fusedrnn.ngram, name)
    assert "kneser-ney" in fusedrnn.ngram.ESTIMATORS


def test_fit_is_vectorised_no_token_loop(monkeypatch):
    """fit/perplexity never iterate tokens in Python: poison Vocabulary.id_of (the only
    per-token Python lookup, used for short contexts) and run both on a long corpus."""
    from fusedrnn.ngram import vocab as vocab_mod

    def banned(self, token):
        raise AssertionError("per-token Python lookup in fit/perplexity")

    rng = np.random.default_rng(0)
    text = ["".join(rng.choice(list("abcde "), size=5000))]
    monkeypatch.setattr(vocab_mod.Vocabulary, "id_of", banned)
    lm = NgramModel(5, "char", "kneser-ney").fit(text)
    assert math.isfinite(lm.perplexity(text))
    words = [" ".join(rng.choice(["alpha", "beta", "gamma", "<s>"], size=50)) for _ in range(100)]
    wl = NgramModel(4, "word", "modified-kneser-ney").fit(words)
    assert math.isfinite(wl.perplexity(words))
    assert math.isfinite(wl.perplexity([w.split() for w in words]))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ALPHABET = st.sampled_from(list("ab\u00e9\u4e2d") + [" ", "\t", "\n", "\u00a0", "\u3000", "\x1c", "<s>", "</s>",
                                                     "<UNK>", "\U0001F600"])


@settings(max_examples=80, deadline=None)
@given(sents=st.lists(st.lists(_ALPHABET, max_size=12).map("".join), min_size=1, max_size=6),
       test=st.lists(_ALPHABET, max_size=12).map("".join), n=st.integers(1, 3))
def test_vectorised_word_split_matches_str_split(sents, test, n):
    """The code-point tokeniser splits exactly like str.split(); strings == token lists."""
    from fusedrnn.ngram.vocab import flatten_sentences

    wt, lengths = flatten_sentences(sents, "word")
    expect = [s.split() for s in sents]
    assert lengths.tolist() == [len(e) for e in expect]
    assert wt.strings(np.arange(wt.size)) == [t for e in expect for t in e]
    if not any(expect):
        return
    a = NgramModel(n, "word", "kneser-ney").fit(sents)
    b = NgramModel(n, "word", "kneser-ney").fit(expect)
    assert a.vocab.tokens == b.vocab.tokens
    assert a.logprob(test) == b.logprob(test.split())
    # a literal "<s>" / "<UNK>" token is the special symbol, as in NLTK
    ids = a.vocab.encode([test])[0]
    toks = test.split()
    for t, i in zip(toks, ids.tolist()):
        assert a.vocab.tokens[i] == (t if t in a.vocab else "<UNK>")
