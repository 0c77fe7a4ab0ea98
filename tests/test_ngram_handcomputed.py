"""Hand-computed examples for every estimator, and where NLTK differs from the textbook.

Corpus used by most tests: sentences "a b", "a c", "b". With the default convention
(SRILM/KenLM: one <s> at every order) the padded sentences are "<s> a b </s>", "<s> a c </s>",
"<s> b </s>" and the predicted vocabulary is {a, b, c, </s>, <UNK>} (|V| = 5). "Textbook"
below names the default's formulas, as opposed to NLTK's.
"""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from fusedrnn.ngram import NgramModel

CORPUS = ["a b", "a c", "b"]


def approx(x: F | float):
    return pytest.approx(float(x), rel=1e-12, abs=1e-15)


def test_mle_and_laplace_textbook():
    mle = NgramModel(2, "word", "mle").fit(CORPUS)
    # c(<s> a) = 2, c(<s> •) = 3; c(a b) = 1, c(a •) = 2; c(b </s>) = 2, c(b •) = 2
    assert mle.prob("a", ["<s>"]) == approx(F(2, 3))
    assert mle.prob("b", ["a"]) == approx(F(1, 2))
    assert mle.prob("</s>", ["b"]) == approx(F(1, 1))
    assert mle.prob("c", ["b"]) == 0.0
    # unigram: counts a 2, b 2, c 1, </s> 3 (no <s>) -> N = 8
    assert mle.prob("</s>") == approx(F(3, 8))
    assert mle.prob("<s>") == 0.0
    lap = NgramModel(2, "word", "laplace").fit(CORPUS)
    assert lap.vocabulary_size == 5
    assert lap.prob("b", ["a"]) == approx(F(1 + 1, 2 + 5))
    assert lap.prob("c", ["b"]) == approx(F(0 + 1, 2 + 5))
    assert lap.prob("zzz", ["qq"]) == approx(F(1, 5))  # unseen context: uniform
    addk = NgramModel(2, "word", "add-k", k=0.5).fit(CORPUS)
    assert addk.prob("a", ["<s>"]) == approx((2 + 0.5) / (3 + 0.5 * 5))
    # sentence probability: P(a|<s>) P(b|a) P(</s>|b) = 2/3 * 1/2 * 1
    assert mle.logprob("a b") == pytest.approx(np.log2(1 / 3), rel=1e-12)


def test_kneser_ney_textbook_bigram():
    """Interpolated KN, D = 0.5, uniform floor 1/|V| below the continuation unigram.

    Continuation counts N1+(• w): a 1, b 2 ({a, <s>}), c 1, </s> 2 ({b, c}); total 6.
    P1(w) = max(N1+(• w) - D, 0)/6 + D * 4/6 * 1/5.
    """
    lm = NgramModel(2, "word", "kneser-ney", discount=0.5).fit(CORPUS)
    p1 = {"a": F(9, 60), "b": F(19, 60), "c": F(9, 60), "</s>": F(19, 60), "<UNK>": F(4, 60)}
    for w, p in p1.items():
        assert lm.prob(w) == approx(p), w
    # P(a | <s>) = (2 - .5)/3 + .5 * 2/3 * P1(a)
    assert lm.prob("a", ["<s>"]) == approx(F(3, 2) / 3 + F(1, 2) * F(2, 3) * p1["a"])
    # P(b | a) = (1 - .5)/2 + .5 * 2/2 * P1(b) = 49/120
    assert lm.prob("b", ["a"]) == approx(F(49, 120))
    # P(</s> | b) = (2 - .5)/2 + .5 * 1/2 * P1(</s>) = 199/240
    assert lm.prob("</s>", ["b"]) == approx(F(199, 240))
    # unseen word: only the floor, P(zz | a) = .5 * 2/2 * 4/60
    assert lm.prob("zz", ["a"]) == approx(F(1, 30))
    expect = np.log2(float(F(11, 20) * F(49, 120) * F(199, 240)))
    assert lm.logprob("a b") == pytest.approx(expect, rel=1e-12)


def test_kneser_ney_trigram_one_bos():
    """Trigram, D = 0.5 at every order, one <s> per sentence (SRILM/KenLM):
    "<s> a b </s>", "<s> a c </s>", "<s> b </s>".

    Unigram level as in the bigram test: P1 = a 9/60, b 19/60, c 9/60, </s> 19/60, <UNK> 4/60.
    Bigram level: nothing precedes "<s> a" and "<s> b", so they keep their raw counts 2 and 1
    (continuation counts would be 0); the others use N1+(• g) over the trigrams:
    a b 1, a c 1, b </s> 2 ({a, <s>}), c </s> 1.
      context <s>: T = 3, gamma = .5 * 2/3 = 1/3: P2(a|<s>) = 1.5/3 + 1/3 * 9/60 = 11/20,
                   P2(b|<s>) = .5/3 + 1/3 * 19/60 = 49/180
      context a:   T = 2, gamma = 1/2:  P2(b|a) = .5/2 + 1/2 * 19/60 = 49/120
      context b:   T = 2, gamma = 1/4:  P2(</s>|b) = 1.5/2 + 1/4 * 19/60 = 199/240
    Trigram level (raw counts):
      context <s> a: T = 2, gamma = 1/2: P3(b|<s> a) = .5/2 + 1/2 * 49/120 = 109/240
      context a b:   T = 1, gamma = 1/2: P3(</s>|a b) = .5 + 1/2 * 199/240 = 439/480
      context <s> b: T = 1, gamma = 1/2: P3(c|<s> b) = 1/2 * P2(c|b) = 1/2 * 1/4 * 9/60 = 3/160
    """
    lm = NgramModel(3, "word", "kneser-ney", discount=0.5).fit(CORPUS)
    assert lm.prob("a", ["<s>"]) == approx(F(11, 20))
    assert lm.prob("b", ["<s>"]) == approx(F(49, 180))
    assert lm.prob("b", ["<s>", "a"]) == approx(F(109, 240))
    assert lm.prob("</s>", ["a", "b"]) == approx(F(439, 480))
    assert lm.prob("c", ["<s>", "b"]) == approx(F(3, 160))
    assert lm.logprob("a b") == pytest.approx(np.log2(float(F(11, 20) * F(109, 240) * F(439, 480))), rel=1e-12)
    assert lm.distribution(["<s>"]).sum() == pytest.approx(1.0, rel=1e-12)
    # Katz and MLE use raw counts at every order: P(a | <s>) = c(<s> a)/c(<s> •) = 2/3
    assert NgramModel(3, "word", "mle").fit(CORPUS).prob("a", ["<s>"]) == approx(F(2, 3))
    assert [f.context for f in lm.explain("a b").factors] == [("<s>",), ("<s>", "a"), ("a", "b")]


def test_kneser_ney_nltk_differs_from_textbook():
    """NLTK: no uniform floor, so an unseen word gets probability 0 even under KN.

    NLTK unigram level: N1+(• w)/N1+(• •) = a 1/6, b 2/6, c 1/6, </s> 2/6, <s> 0, <UNK> 0.
    """
    lm = NgramModel(2, "word", "kneser-ney", discount=0.5, convention="nltk").fit(CORPUS)
    assert lm.prob("b") == approx(F(2, 6))
    assert lm.prob("b", ["a"]) == approx(F(1, 2) / 2 + F(1, 2) * 1 * F(2, 6))  # 5/12
    assert lm.prob("zz", ["a"]) == 0.0
    textbook = NgramModel(2, "word", "kneser-ney", discount=0.5).fit(CORPUS)
    assert textbook.prob("zz", ["a"]) > 0


def test_kneser_ney_nltk_not_normalised_after_bos():
    """NLTK's gamma counts the *raw* followers of a lower-order context but divides by
    continuation counts. Corpus ["a"], trigram, D = 0.1, context (<s>,):
    raw followers {<s>, a} -> 2, continuation N1+(• <s> a) = 1, N1+(• <s> <s>) = 0,
    so sum_w P(w | <s>) = (1 - D) + 2 D * 1 = 1 + D = 1.1. The textbook form sums to 1.
    """
    nl = NgramModel(3, "word", "kneser-ney", convention="nltk").fit(["a"])
    assert nl.distribution(["<s>"]).sum() == pytest.approx(1.1, rel=1e-12)
    nltk_lm = pytest.importorskip("nltk.lm")
    from nltk.lm.preprocessing import padded_everygram_pipeline

    ref = nltk_lm.KneserNeyInterpolated(3)
    ref.fit(*padded_everygram_pipeline(3, [["a"]]))
    total = sum(ref.score(w, ("<s>",)) for w in ["a", "<s>", "</s>", "<UNK>"])
    assert total == pytest.approx(1.1, rel=1e-12)
    tb = NgramModel(3, "word", "kneser-ney", discount=0.1).fit(["a"])
    assert tb.distribution(["<s>"]).sum() == pytest.approx(1.0, rel=1e-12)


def test_nltk_padding_and_vocabulary_differ_from_textbook():
    """NLTK pads n-1 </s> and counts every everygram, so <s> is a predicted unigram and
    |V| includes <s> and </s>; textbook: one </s>, <s> only as context."""
    nl = NgramModel(3, "word", "mle", convention="nltk").fit(["a b"])
    # padded "<s> <s> a b </s> </s>": unigram counts <s> 2, a 1, b 1, </s> 2 -> N = 6
    assert nl.prob("<s>") == approx(F(2, 6))
    assert nl.prob("</s>", ["</s>"]) == approx(F(1, 1))
    assert NgramModel(3, "word", "laplace", convention="nltk").fit(["a b"]).vocabulary_size == 5
    tb = NgramModel(3, "word", "mle").fit(["a b"])
    # textbook: predicted tokens a, b, </s> -> N = 3
    assert tb.prob("<s>") == 0.0
    assert tb.prob("</s>") == approx(F(1, 3))
    assert NgramModel(3, "word", "laplace").fit(["a b"]).vocabulary_size == 4
    # NLTK scores the extra "</s> </s>" event: 4 predictions instead of 3
    assert nl.evaluate(["a b"]).n_events == 4
    assert tb.evaluate(["a b"]).n_events == 3


def test_modified_kneser_ney_bigram():
    """Modified KN with D1 = .5, D2 = 1, D3+ = 1.5 for every order.

    Unigram: N1+(• w) = a 1, b 2, c 1, </s> 2 (total 6); gamma = (.5*2 + 1*2)/6 = 1/2;
    P1(w) = (N1+ - D)/6 + 1/2 * 1/5 -> a 11/60, b 16/60, c 11/60, </s> 16/60, <UNK> 6/60.
    """
    lm = NgramModel(2, "word", "modified-kneser-ney", discounts=(0.5, 1.0, 1.5)).fit(CORPUS)
    for w, p in {"a": F(11, 60), "b": F(16, 60), "c": F(11, 60), "</s>": F(16, 60), "<UNK>": F(6, 60)}.items():
        assert lm.prob(w) == approx(p), w
    # context <s>: a twice (D2 = 1), b once (D1 = .5): gamma = 1.5/3
    assert lm.prob("a", ["<s>"]) == approx(F(1, 3) + F(1, 2) * F(11, 60))
    # context a: b once, c once: gamma = 1/2 -> P(b|a) = .5/2 + .5 * 16/60
    assert lm.prob("b", ["a"]) == approx(F(23, 60))


def test_modified_kneser_ney_estimated_discounts():
    """D1 = 1 - 2Y n2/n1 etc. with Y = n1/(n1 + 2 n2), from the count-of-counts of each order."""
    from fusedrnn.ngram.estimators import mkn_discounts

    a = np.array([1, 1, 1, 1, 2, 2, 3, 4, 0])  # n1 4, n2 2, n3 1, n4 1
    y = 4 / (4 + 4)
    d1, d2, d3 = mkn_discounts(a)
    assert d1 == pytest.approx(1 - 2 * y * 2 / 4)
    assert d2 == pytest.approx(2 - 3 * y * 1 / 2)
    assert d3 == pytest.approx(3 - 4 * y * 1 / 1)


def test_katz_unigram_good_turing():
    """Order 1, one sentence "x y z w u u v v v" (+ </s>): r = 1 for x y z w </s> (n1 = 5),
    u 2 (n2 = 1), v 3 (n3 = 1). d1 = (2 n2/n1)/1 = 0.4; d2 = (3 n3/n2)/2 = 1.5 > 1 and
    d3 = 0 are invalid -> 1. N = 10. Seen mass .2 + .2 + .3 = .7; the remaining .3 goes
    to the unseen <UNK>: alpha = .3 / (1 - 7/8) and P(<UNK>) = alpha/8 = .3."""
    lm = NgramModel(1, "word", "katz").fit(["x y z w u u v v v"])
    assert lm.prob("x") == approx(0.04)
    assert lm.prob("</s>") == approx(0.04)
    assert lm.prob("u") == approx(0.2)
    assert lm.prob("v") == approx(0.3)
    assert lm.prob("never-seen") == approx(0.3)


def test_katz_reserves_mass_when_no_count_is_discounted():
    """Six sentences "q u": every count is 6 > 5, so Good-Turing discounts nothing.
    Unigram: P(q) = 6/19 (one pseudo-count reserved), P(<UNK>) = 1/19.
    Bigram context q: P(u|q) = 6/7, alpha(q) = (1/7)/(1 - 6/19) = 19/91, so
    P(</s>|q) = 19/91 * 6/19 = 6/91 and P(<UNK>|q) = 1/91."""
    lm = NgramModel(2, "word", "katz").fit(["q u"] * 6)
    assert lm.prob("q") == approx(F(6, 19))
    assert lm.prob("zz") == approx(F(1, 19))
    assert lm.prob("u", ["q"]) == approx(F(6, 7))
    assert lm.prob("</s>", ["q"]) == approx(F(6, 91))
    assert lm.prob("zz", ["q"]) == approx(F(1, 91))
    assert lm.distribution(["q"]).sum() == pytest.approx(1.0, rel=1e-12)


def test_stupid_backoff_scores():
    """S(b|a) = 1/2 (seen); S(a|b) = 0.4 * c(a)/N = 0.4 * 2/8; sum over w after b is 1.25."""
    lm = NgramModel(2, "word", "stupid-backoff").fit(CORPUS)
    assert lm.prob("b", ["a"]) == approx(F(1, 2))
    assert lm.prob("a", ["b"]) == approx(0.4 * 2 / 8)
    assert lm.distribution(["b"]).sum() == pytest.approx(1.0 + 0.4 * 5 / 8, rel=1e-12)
    lm2 = NgramModel(3, "word", "stupid-backoff", alpha=0.5).fit(CORPUS)
    # unseen trigram context (c, a) and unseen bigram (a, a): 0.5 * 0.5 * c(a)/N
    assert lm2.prob("a", ["c", "a"]) == approx(0.25 * 2 / 8)
