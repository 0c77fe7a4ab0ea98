"""ARPA format: round trip, a hand-written file, and malformed files."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest

from _ngram_arpa_samples import LMPLZ_SCORES, LMPLZ_STYLE, SRILM_SCORES, SRILM_STYLE
from fusedrnn.ngram import NgramModel, read_arpa, write_arpa
from fusedrnn.ngram.arpa import arpa_from_text, arpa_sentence, arpa_text

HAND = """
\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.30103
-0.5\ta\t-0.2
-0.6\tb\t-0.1
-0.7\t</s>

\\2-grams:
-0.2\t<s> a
-0.4\ta b
-0.1\tb </s>
-0.3\ta </s>

\\end\\
"""


def _random_corpus(rng: random.Random, level: str) -> list[str]:
    if level == "char":
        return ["".join(rng.choice("ab c\n") for _ in range(rng.randint(1, 12))) for _ in range(30)]
    words = ["the", "cat", "sat", "on", "a", "mat", "dog"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(30)]


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("est", ["kneser-ney", "modified-kneser-ney", "katz"])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_round_trip(tmp_path, seed, level, est, n):
    rng = random.Random(seed)
    data = _random_corpus(rng, level)
    lm = NgramModel(n, level, est).fit(data)
    path = tmp_path / "m.arpa"
    write_arpa(lm, path)
    back = read_arpa(path, level=level)
    assert back.order == n and back.level == level and back.estimator == "arpa"
    assert back.padding == lm.padding
    assert lm.padding.n_bos == min(n - 1, 1)  # one <s>, as SRILM and KenLM
    assert "<s> <s>" not in arpa_text(lm)
    assert read_arpa(path).level == level or level == "word"  # guessed level
    # every context of the training data, every word: same distribution to ARPA's 7 digits
    for s in data[:8]:
        toks = list(s) if level == "char" else s.split()
        padded = ["<s>"] * lm.padding.n_bos + toks
        for j in range(lm.padding.n_bos, len(padded) + 1):  # predict padded[j] (or </s>)
            ctx = padded[max(j - (n - 1), 0):j] if n > 1 else []
            a, b = lm.distribution(ctx), back.distribution(ctx)
            np.testing.assert_allclose(b, a, rtol=2e-5, atol=0, err_msg=f"seed={seed} ctx={ctx}")
    test = data[:5] + (["zq ab"] if level == "char" else ["the unicorn sat"])
    assert back.evaluate(test).log2prob == pytest.approx(lm.evaluate(test).log2prob, rel=1e-5)


def test_round_trip_text_is_stable(seed):
    lm = NgramModel(3, "word", "kneser-ney").fit(_random_corpus(random.Random(seed), "word"))
    text = arpa_text(lm)
    assert arpa_text(arpa_from_text(text)) == text


def test_hand_written_file(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND, encoding="utf-8")
    lm = read_arpa(path)
    assert lm.order == 2 and lm.level == "word"
    assert lm.padding.n_bos == 1  # no "<s> <s>" bigram: SRILM/KenLM-style single <s>
    assert lm.prob("a", ["<s>"]) == pytest.approx(10 ** -0.2)
    assert lm.prob("b", ["<s>"]) == pytest.approx(10 ** (-0.30103 - 0.6))  # backed off
    assert lm.prob("zz", ["a"]) == pytest.approx(10 ** (-0.2 - 1.0))  # <unk> after a
    assert lm.prob("</s>", ["b"]) == pytest.approx(10 ** -0.1)
    assert lm.prob("<s>") == 0.0  # -99 means zero
    assert lm.logprob("a b") == pytest.approx((-0.2 - 0.4 - 0.1) * math.log2(10))
    expl = lm.explain("a b")
    assert [f.word for f in expl.factors] == ["a", "b", "</s>"]
    assert "counts not stored" in str(expl)


LOG2_10 = math.log2(10.0)


@pytest.mark.parametrize("text, scores", [(LMPLZ_STYLE, LMPLZ_SCORES), (SRILM_STYLE, SRILM_SCORES)],
                         ids=["lmplz", "srilm"])
def test_files_of_lmplz_and_srilm(tmp_path, text, scores):
    """One <s> as context, <s> never predicted (lmplz lists it with log10 P = 0, SRILM with -99),
    back-off weights absent on the highest order, OOV words scored as <unk>."""
    path = tmp_path / "lm.arpa"
    path.write_text(text, encoding="utf-8")
    lm = read_arpa(path)
    assert lm.order == 3 and lm.padding.n_bos == 1 and lm.level == "word"
    assert lm.prob("<s>") == 0.0 and not lm.in_vocab[lm.vocab.bos_id]
    for sentence, log10p in scores.items():
        assert lm.logprob(sentence) == pytest.approx(log10p * LOG2_10, abs=1e-9), sentence
    for ctx in ([], ["<s>"], ["<s>", lm.vocab.tokens[0]]):
        assert lm.distribution(ctx)[lm.vocab.bos_id] == 0.0


def test_lmplz_file_values():
    lm = arpa_from_text(LMPLZ_STYLE)
    assert lm.prob("zz") == pytest.approx(10 ** -1.2)  # <unk>
    assert lm.prob("a", ["b", "b"]) == pytest.approx(10 ** -0.35)  # "b b" unlisted (bow 1): P(a | b)
    assert lm.prob("b", ["b", "b"]) == pytest.approx(10 ** (-0.25 - 0.6))  # then bow(b) P(b)
    assert lm.prob("</s>", ["b", "a"]) == pytest.approx(10 ** -0.25)
    assert lm.vocabulary_size == 4  # a, b, </s>, <unk>


def test_srilm_file_without_unk_and_with_a_pruned_suffix():
    lm = arpa_from_text(SRILM_STYLE)
    # no <unk> in the file: KenLM's substitute log10 P(<unk>) = -100
    assert lm.prob("q") == pytest.approx(1e-100)
    # "x </s>" is not listed: back-off bow(x) P(</s>); the trigram "y x </s>" still counts
    assert lm.prob("</s>", ["x"]) == pytest.approx(10 ** (-0.2 - 0.6))
    assert lm.prob("</s>", ["y", "x"]) == pytest.approx(10 ** -0.12)
    assert lm.prob("y", ["y", "x"]) == pytest.approx(10 ** (-0.15 - 0.3))  # bow(y x) P(y | x)
    again = arpa_from_text(arpa_text(lm))
    for sentence, log10p in SRILM_SCORES.items():
        assert again.logprob(sentence) == pytest.approx(log10p * LOG2_10, abs=1e-6), sentence


def test_old_files_with_n_minus_1_bos_still_read():
    """Files written by earlier fusedrnn versions list "<s> <s> w": they are scored with n-1 <s>."""
    old = """\\data\\
ngram 1=4
ngram 2=4
ngram 3=3

\\1-grams:
-99\t<s>\t-0.1
-0.3\ta\t-0.2
-0.5\t</s>
-1\t<unk>

\\2-grams:
-0.2\t<s> <s>\t-0.3
-0.4\t<s> a\t0
-0.6\ta a\t0
-0.2\ta </s>

\\3-grams:
-0.05\t<s> <s> a
-0.15\t<s> a a
-0.25\ta a </s>

\\end\\
"""
    lm = arpa_from_text(old)
    assert lm.padding.n_bos == 2
    # P(a | <s> <s>) -.05; P(a | <s> a) -.15; P(</s> | a a) -.25
    assert lm.logprob("a a") == pytest.approx((-0.05 - 0.15 - 0.25) * LOG2_10)


def test_nltk_convention_is_not_written(tmp_path):
    lm = NgramModel(3, "word", "modified-kneser-ney", convention="nltk").fit(["a b", "b a"])
    with pytest.raises(ValueError, match="convention"):
        write_arpa(lm, tmp_path / "n.arpa")
    assert not (tmp_path / "n.arpa").exists()


def test_arpa_sentence():
    assert arpa_sentence("a b\tc", "char") == "a <space> b <tab> c"
    assert arpa_sentence("the  cat ", "word") == "the cat"
    assert arpa_sentence(["x", "<UNK>"], "word") == "x <unk>"
    with pytest.raises(ValueError, match="level"):
        arpa_sentence("a", "byte")


MALFORMED = {
    "no data": ("ngram 1=1\n\\1-grams:\n-1 a\n\\end\\\n", "no '\\\\data\\\\'"),
    "count mismatch": ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n\\end\\\n", "says ngram 1=2"),
    "fields": ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta b c d\n\\end\\\n", "line 5"),
    "number": ("\\data\\\nngram 1=1\n\n\\1-grams:\nx\ta\n\\end\\\n", "not a number"),
    "no end": ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta\n", "missing '\\\\end\\\\'"),
    "prefix": ("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\ta\t0\n\\2-grams:\n-1\tb a\n\\end\\\n",
               "no 1-gram entry"),
    "positive": ("\\data\\\nngram 1=1\n\n\\1-grams:\n0.5\ta\n\\end\\\n", "positive"),
    "header": ("\\data\\\nngram one=1\n\\1-grams:\n-1\ta\n\\end\\\n", "ngram K=COUNT"),
    "prefix2": ("\\data\\\nngram 1=2\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-1\ta\t0\n-1\tb\t0\n"
                "\\2-grams:\n-1\ta b\n\\3-grams:\n-1\tb a b\n\\end\\\n", "no 2-gram prefix"),
    "orders": ("\\data\\\nngram 2=1\n\n\\2-grams:\n-1\ta b\n\\end\\\n", "not 1..2"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed(tmp_path, name):
    text, msg = MALFORMED[name]
    path = tmp_path / "bad.arpa"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="malformed ARPA") as info:
        read_arpa(path)
    assert msg.replace("\\\\", "\\") in str(info.value) or pytest.fail(str(info.value))


def test_missing_file_and_non_backoff_estimators(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_arpa(tmp_path / "nope.arpa")
    for est in ("mle", "laplace", "add-k", "stupid-backoff"):
        lm = NgramModel(2, "word", est).fit(["a b"])
        with pytest.raises(ValueError, match="estimator"):
            write_arpa(lm, tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()


def test_char_escapes(tmp_path):
    lm = NgramModel(2, "char", "kneser-ney").fit(["a b\tc", "d\u00a0e\nf"])
    path = tmp_path / "c.arpa"
    write_arpa(lm, path)
    text = path.read_text(encoding="utf-8")
    assert "<space>" in text and "<tab>" in text and "<newline>" in text and "<U+00A0>" in text
    back = read_arpa(path)
    assert back.level == "char"
    assert back.prob(" ", ["a"]) == pytest.approx(lm.prob(" ", ["a"]), rel=2e-5)
    assert sorted(back.vocab.tokens) == sorted(lm.vocab.tokens)


def test_write_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves the previous file untouched and no temp file behind."""
    lm = NgramModel(2, "word", "kneser-ney").fit(["a b", "b c"])
    path = tmp_path / "m.arpa"
    path.write_text("old", encoding="utf-8")
    import fusedrnn.ngram.arpa as arpa_mod

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(arpa_mod.os, "replace", boom)
    with pytest.raises(OSError):
        write_arpa(lm, path)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.arpa"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_arpa_file_and_perplexity_plot_get_the_usual_permissions(tmp_path):
    """Both go through fusedrnn.io_utils.atomic_write: readable as the umask allows, not mkstemp's 0600."""
    from fusedrnn.ngram.evaluate import LmRow, plot_perplexity

    lm = NgramModel(2, "word", "kneser-ney").fit(["a b", "b c"])
    old = os.umask(0o022)
    try:
        write_arpa(lm, tmp_path / "m.arpa")
        plot_perplexity([LmRow("2-gram", 2, 3.5, 1.8)], tmp_path / "p.png")
    finally:
        os.umask(old)
    for name in ("m.arpa", "p.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert read_arpa(tmp_path / "m.arpa").order == 2
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
