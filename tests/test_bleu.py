"""Corpus BLEU through sacrebleu: hand-computed cases pin the numbers (and the statistics
fusedrnn reports), argument errors, and agreement with sacrebleu's own top-level call."""

from __future__ import annotations

import math

import pytest

from fusedrnn.metrics import corpus_bleu


class TestHandComputed:
    def test_identical_corpus_scores_100(self):
        hyps = ["the cat sat on the mat", "a dog ran in the park today"]
        r = corpus_bleu(hyps, hyps)
        assert r.score == pytest.approx(100.0, abs=1e-12)
        assert r.brevity_penalty == 1.0
        assert r.counts == r.totals == (13, 11, 9, 7)  # 6 + 7 words

    def test_all_orders_matching_with_brevity_penalty(self):
        # p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; c = 5 < r = 6 -> BP = exp(1 - 6/5)
        r = corpus_bleu(["a b c d e"], ["a b c d f g"])
        expected = 100.0 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25 * math.exp(1 - 6 / 5)
        assert r.score == pytest.approx(expected, rel=1e-12)
        assert r.counts == (4, 3, 2, 1) and r.totals == (5, 4, 3, 2)
        assert r.precisions == pytest.approx((80.0, 75.0, 200 / 3, 50.0))
        assert (r.hyp_len, r.ref_len) == (5, 6)
        assert float(r) == r.score

    def test_corpus_counts_are_summed_not_sentence_scores_averaged(self):
        hyps = ["a b c d e", "x y z w"]
        refs = ["a b c d f g", "x y z w"]
        # summed: matches (4+4, 3+3, 2+2, 1+1) of (5+4, 4+3, 3+2, 2+1); c = 9, r = 10
        expected = 100.0 * (8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25 * math.exp(1 - 10 / 9)
        r = corpus_bleu(hyps, refs)
        assert r.score == pytest.approx(expected, rel=1e-12)
        mean_of_sentences = (corpus_bleu(hyps[:1], refs[:1]).score + 100.0) / 2
        assert abs(r.score - mean_of_sentences) > 1.0

    def test_clipping(self):
        # "the" x4 against a reference holding it once: clipped unigram precision 1/4
        r = corpus_bleu(["the the the the"], ["the cat"], max_order=1)
        assert r.counts == (1,) and r.totals == (4,)
        assert r.score == pytest.approx(25.0, rel=1e-12)

    def test_clipping_uses_the_best_single_reference(self):
        # "the" occurs twice in the second reference: clip at max over references (2), not the sum (3)
        r = corpus_bleu([["the", "the", "the"]], [[["the", "cat"], ["the", "the", "dog"]]], max_order=1)
        assert r.counts == (2,)
        assert r.score == pytest.approx(100 * 2 / 3, rel=1e-12)

    def test_brevity_penalty_short_hypothesis(self):
        r = corpus_bleu(["a b"], ["a b c d"], max_order=2)
        assert r.brevity_penalty == pytest.approx(math.exp(-1.0), rel=1e-12)
        assert r.score == pytest.approx(100 * math.exp(-1.0), rel=1e-12)

    def test_closest_reference_length_prefers_shorter_on_tie(self):
        # hypothesis of 3 words, references of 2 and 4 words: both 1 away, the shorter (2) counts -> BP = 1
        r = corpus_bleu(["a b c"], [[["a", "b"], ["a", "b", "c", "d"]]], max_order=1)
        assert r.ref_len == 2 and r.brevity_penalty == 1.0
        # hypothesis of 2 words, references of 1 and 5 words: 1 is closest -> BP = 1
        r = corpus_bleu(["a b"], [[["a"], ["a", "b", "c", "d", "e"]]], max_order=1)
        assert r.ref_len == 1

    def test_no_smoothing_zero_precision_gives_zero(self):
        r = corpus_bleu(["a b c x"], ["a b c d"])
        assert r.counts == (3, 2, 1, 0)
        assert r.score == 0.0

    def test_exp_smoothing(self):
        # the first order with no match gets 1 / (2 * total): p4 = 1/2
        r = corpus_bleu(["a b c x"], ["a b c d"], smooth="exp")
        assert r.score == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25, rel=1e-12)

    def test_floor_and_add_k_smoothing(self):
        r = corpus_bleu(["a b c x"], ["a b c d"], smooth="floor")
        assert r.score == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 0.1 / 1) ** 0.25, rel=1e-12)
        r = corpus_bleu(["a b c x"], ["a b c d"], smooth="add-k")
        assert r.score == pytest.approx(100 * (3 / 4 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25, rel=1e-12)
        assert r.counts == (3, 2, 1, 0) and r.totals == (4, 3, 2, 1)  # raw counts, not the smoothed ones

    def test_nothing_matches(self):
        r = corpus_bleu(["x y z"], ["a b c"], smooth="exp")
        assert r.score == 0.0

    def test_empty_hypothesis(self):
        r = corpus_bleu([""], ["a b"])
        assert r.score == 0.0 and r.brevity_penalty == 0.0 and r.hyp_len == 0

    def test_token_lists_equal_strings(self):
        hyps = ["a  b c\td", "e f"]
        refs = ["a b c e", "e f g"]
        a = corpus_bleu(hyps, refs, max_order=2)
        b = corpus_bleu([h.split() for h in hyps], [r.split() for r in refs], max_order=2)
        c = corpus_bleu(hyps, [[r.split()] for r in refs], max_order=2)
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
        with pytest.raises(ValueError, match="max_order"):
            corpus_bleu(["a"], ["a"], max_order=0)
        with pytest.raises(ValueError, match="smooth_value"):
            corpus_bleu(["a"], ["a"], smooth="floor", smooth_value=0.0)


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


def test_token_lists_reach_sacrebleu_unchanged_on_random_corpora(rng, seed):
    """Random corpora with 1-3 references per sentence: corpus_bleu equals sacrebleu's own
    top-level call on the joined tokens, and its statistics are self-consistent."""
    import sacrebleu

    checked_positive = 0
    for trial in range(40):
        hyps, refs = _random_corpus(rng, n_sent=int(rng.integers(1, 25)), vocab=int(rng.integers(2, 30)),
                                    max_len=int(rng.integers(1, 15)), max_refs=int(rng.integers(1, 4)))
        smooth = ["none", "exp", "floor"][trial % 3]
        ours = corpus_bleu(hyps, refs, smooth=smooth)
        n_streams = max(len(rs) for rs in refs)
        streams = [[" ".join(rs[k]) if k < len(rs) else None for rs in refs] for k in range(n_streams)]
        theirs = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], streams, tokenize="none", smooth_method=smooth,
                                       force=True)
        msg = f"seed {seed} trial {trial} smooth {smooth}: {ours} vs {theirs}"
        assert ours.score == pytest.approx(theirs.score, abs=1e-9), msg
        assert ours.hyp_len == sum(len(h) for h in hyps), msg
        assert all(c <= t for c, t in zip(ours.counts, ours.totals)), msg
        assert ours.totals[0] == ours.hyp_len, msg
        checked_positive += ours.score > 0
    assert checked_positive >= 5, f"seed {seed}: too few corpora with a non-zero score to compare"


def test_matches_sacrebleu_default_call_on_plain_text():
    # sacrebleu's own top-level function with tokenization and smoothing switched off
    import sacrebleu

    hyps = ["the cat is on the mat", "there is a dog in the garden", "i like green tea"]
    refs = ["the cat sat on the mat", "a dog is in the garden", "i really like green tea"]
    ours = corpus_bleu(hyps, refs).score
    theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none", force=True).score
    assert ours == pytest.approx(theirs, abs=1e-9)
