"""Corpus BLEU: hand-computed cases on both backends, and agreement of the built-in code with
sacrebleu on random corpora (skipped when sacrebleu is not installed)."""

from __future__ import annotations

import math
import sys

import pytest

from fusedrnn.metrics import bleu as bleu_mod
from fusedrnn.metrics import corpus_bleu, sacrebleu_available

HAVE_SACREBLEU = sacrebleu_available()
needs_sacrebleu = pytest.mark.skipif(not HAVE_SACREBLEU, reason="sacrebleu is not installed (pip install sacrebleu)")
BACKENDS = ["builtin", pytest.param("sacrebleu", marks=needs_sacrebleu)]


@pytest.mark.parametrize("backend", BACKENDS)
class TestHandComputed:
    def test_identical_corpus_scores_100(self, backend):
        hyps = ["the cat sat on the mat", "a dog ran in the park today"]
        r = corpus_bleu(hyps, hyps, backend=backend)
        assert r.score == pytest.approx(100.0, abs=1e-12)
        assert r.brevity_penalty == 1.0
        assert r.counts == r.totals == (13, 11, 9, 7)  # 6 + 7 words
        assert r.backend == backend

    def test_all_orders_matching_with_brevity_penalty(self, backend):
        # p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; c = 5 < r = 6 -> BP = exp(1 - 6/5)
        r = corpus_bleu(["a b c d e"], ["a b c d f g"], backend=backend)
        expected = 100.0 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25 * math.exp(1 - 6 / 5)
        assert r.score == pytest.approx(expected, rel=1e-12)
        assert r.counts == (4, 3, 2, 1) and r.totals == (5, 4, 3, 2)
        assert r.precisions == pytest.approx((80.0, 75.0, 200 / 3, 50.0))
        assert (r.hyp_len, r.ref_len) == (5, 6)
        assert float(r) == r.score

    def test_corpus_counts_are_summed_not_sentence_scores_averaged(self, backend):
        hyps = ["a b c d e", "x y z w"]
        refs = ["a b c d f g", "x y z w"]
        # summed: matches (4+4, 3+3, 2+2, 1+1) of (5+4, 4+3, 3+2, 2+1); c = 9, r = 10
        expected = 100.0 * (8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25 * math.exp(1 - 10 / 9)
        r = corpus_bleu(hyps, refs, backend=backend)
        assert r.score == pytest.approx(expected, rel=1e-12)
        mean_of_sentences = (corpus_bleu(hyps[:1], refs[:1], backend=backend).score + 100.0) / 2
        assert abs(r.score - mean_of_sentences) > 1.0

    def test_clipping(self, backend):
        # "the" x4 against a reference holding it once: clipped unigram precision 1/4
        r = corpus_bleu(["the the the the"], ["the cat"], max_order=1, backend=backend)
        assert r.counts == (1,) and r.totals == (4,)
        assert r.score == pytest.approx(25.0, rel=1e-12)

    def test_clipping_uses_the_best_single_reference(self, backend):
        # "the" occurs twice in the second reference: clip at max over references (2), not the sum (3)
        r = corpus_bleu([["the", "the", "the"]], [[["the", "cat"], ["the", "the", "dog"]]], max_order=1, backend=backend)
        assert r.counts == (2,)
        assert r.score == pytest.approx(100 * 2 / 3, rel=1e-12)

    def test_brevity_penalty_short_hypothesis(self, backend):
        r = corpus_bleu(["a b"], ["a b c d"], max_order=2, backend=backend)
        assert r.brevity_penalty == pytest.approx(math.exp(-1.0), rel=1e-12)
        assert r.score == pytest.approx(100 * math.exp(-1.0), rel=1e-12)

    def test_closest_reference_length_prefers_shorter_on_tie(self, backend):
        # hypothesis of 3 words, references of 2 and 4 words: both 1 away, the shorter (2) counts -> BP = 1
        r = corpus_bleu(["a b c"], [[["a", "b"], ["a", "b", "c", "d"]]], max_order=1, backend=backend)
        assert r.ref_len == 2 and r.brevity_penalty == 1.0
        # hypothesis of 2 words, references of 1 and 5 words: 1 is closest -> BP = 1
        r = corpus_bleu(["a b"], [[["a"], ["a", "b", "c", "d", "e"]]], max_order=1, backend=backend)
        assert r.ref_len == 1

    def test_no_smoothing_zero_precision_gives_zero(self, backend):
        r = corpus_bleu(["a b c x"], ["a b c d"], backend=backend)
        assert r.counts == (3, 2, 1, 0)
        assert r.score == 0.0

    def test_exp_smoothing(self, backend):
        # the first order with no match gets 1 / (2 * total): p4 = 1/2
        r = corpus_bleu(["a b c x"], ["a b c d"], smooth="exp", backend=backend)
        assert r.score == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25, rel=1e-12)

    def test_floor_and_add_k_smoothing(self, backend):
        r = corpus_bleu(["a b c x"], ["a b c d"], smooth="floor", backend=backend)
        assert r.score == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 0.1 / 1) ** 0.25, rel=1e-12)
        r = corpus_bleu(["a b c x"], ["a b c d"], smooth="add-k", backend=backend)
        assert r.score == pytest.approx(100 * (3 / 4 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25, rel=1e-12)
        assert r.counts == (3, 2, 1, 0) and r.totals == (4, 3, 2, 1)  # raw counts, not the smoothed ones

    def test_nothing_matches(self, backend):
        r = corpus_bleu(["x y z"], ["a b c"], smooth="exp", backend=backend)
        assert r.score == 0.0

    def test_empty_hypothesis(self, backend):
        r = corpus_bleu([""], ["a b"], backend=backend)
        assert r.score == 0.0 and r.brevity_penalty == 0.0 and r.hyp_len == 0

    def test_token_lists_equal_strings(self, backend):
        hyps = ["a  b c\td", "e f"]
        refs = ["a b c e", "e f g"]
        a = corpus_bleu(hyps, refs, max_order=2, backend=backend)
        b = corpus_bleu([h.split() for h in hyps], [r.split() for r in refs], max_order=2, backend=backend)
        c = corpus_bleu(hyps, [[r.split()] for r in refs], max_order=2, backend=backend)
        assert a.score == b.score == c.score > 0


class TestErrors:
    def test_empty_corpus(self):
        with pytest.raises(ValueError, match="hypotheses: empty"):
            corpus_bleu([], [])

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="references: 1 entries for 2 hypotheses"):
            corpus_bleu(["a", "b"], ["a"])

    def test_bad_tokens(self):
        with pytest.raises(ValueError, match=r"hypotheses\[0\]\[1\]"):
            corpus_bleu([["a", "b c"]], ["a"])
        with pytest.raises(ValueError, match=r"references\[0\]\[0\]"):
            corpus_bleu(["a"], [["", "x"]])
        with pytest.raises(TypeError, match=r"hypotheses\[0\]"):
            corpus_bleu([3], ["a"])
        with pytest.raises(TypeError, match="mixes tokens and token lists"):
            corpus_bleu(["a"], [["a", ["b"]]])
        with pytest.raises(TypeError, match="hypotheses"):
            corpus_bleu("a b", ["a b"])

    def test_bad_options(self):
        with pytest.raises(ValueError, match="smooth"):
            corpus_bleu(["a"], ["a"], smooth="laplace")
        with pytest.raises(ValueError, match="backend"):
            corpus_bleu(["a"], ["a"], backend="nltk")
        with pytest.raises(ValueError, match="max_order"):
            corpus_bleu(["a"], ["a"], max_order=0)
        with pytest.raises(ValueError, match="smooth_value"):
            corpus_bleu(["a"], ["a"], smooth="floor", smooth_value=0.0)

    def test_auto_falls_back_without_sacrebleu(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "sacrebleu", None)  # makes `import sacrebleu` raise ImportError
        assert not bleu_mod.sacrebleu_available()
        assert corpus_bleu(["a b"], ["a b"], max_order=2).backend == "builtin"
        with pytest.raises(ImportError):
            corpus_bleu(["a b"], ["a b"], backend="sacrebleu")


def _random_corpus(rng, n_sent, vocab, max_len, max_refs):
    words = [f"w{k}" for k in range(vocab)]

    def sent():
        return [words[k] for k in rng.integers(0, vocab, size=int(rng.integers(0, max_len + 1)))]

    hyps = [sent() for _ in range(n_sent)]
    refs = []
    for h in hyps:
        rs = []
        for _ in range(int(rng.integers(1, max_refs + 1))):
            r = sent()
            if h and rng.random() < 0.5:  # share a stretch of the hypothesis, for higher-order matches
                i = int(rng.integers(0, len(h)))
                r = r[: len(r) // 2] + h[i:i + int(rng.integers(1, 6))] + r[len(r) // 2:]
            rs.append(r)
        refs.append(rs)
    return hyps, refs


@needs_sacrebleu
def test_builtin_matches_sacrebleu_on_random_corpora(rng, seed):
    checked_positive = 0
    for trial in range(60):
        hyps, refs = _random_corpus(rng, n_sent=int(rng.integers(1, 25)), vocab=int(rng.integers(2, 30)),
                                    max_len=int(rng.integers(1, 15)), max_refs=int(rng.integers(1, 4)))
        smooth = ["none", "exp", "floor", "add-k"][trial % 4]
        max_order = int(rng.integers(1, 5)) if trial % 5 == 0 else 4
        a = corpus_bleu(hyps, refs, smooth=smooth, max_order=max_order, backend="builtin")
        b = corpus_bleu(hyps, refs, smooth=smooth, max_order=max_order, backend="sacrebleu")
        msg = f"seed {seed} trial {trial} smooth {smooth} order {max_order}: {a} vs {b}"
        assert a.score == pytest.approx(b.score, abs=1e-9), msg
        assert a.precisions == pytest.approx(b.precisions, abs=1e-9), msg
        assert a.brevity_penalty == pytest.approx(b.brevity_penalty, abs=1e-12), msg
        assert (a.hyp_len, a.ref_len, a.counts, a.totals) == (b.hyp_len, b.ref_len, b.counts, b.totals), msg
        checked_positive += a.score > 0
    assert checked_positive >= 10, f"seed {seed}: too few corpora with a non-zero score to compare"


@needs_sacrebleu
def test_matches_sacrebleu_default_call_on_plain_text():
    # sacrebleu's own top-level function with tokenization and smoothing switched off
    import sacrebleu

    hyps = ["the cat is on the mat", "there is a dog in the garden", "i like green tea"]
    refs = ["the cat sat on the mat", "a dog is in the garden", "i really like green tea"]
    ours = corpus_bleu(hyps, refs, backend="builtin").score
    theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none", force=True).score
    assert ours == pytest.approx(theirs, abs=1e-9)
