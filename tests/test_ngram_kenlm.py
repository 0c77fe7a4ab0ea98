"""ARPA files written by fusedrnn score the same in KenLM (the ``kenlm`` package).

Every writable estimator, orders 1-8, word and character level, random corpora
and sentences with out-of-vocabulary tokens: KenLM's per-word ``full_scores`` and
its sentence ``score(bos=True, eos=True)`` equal fusedrnn's log10 probabilities.

Tolerances: ARPA stores 7 significant digits and KenLM keeps them as float32, so
a factor that backs off over ``j`` orders sums ``j + 1`` rounded numbers (each off by
at most 5e-7 for |log10| < 10); KenLM's ``score`` also adds the factors in float32.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest

from _ngram_arpa_samples import LMPLZ_SCORES, LMPLZ_STYLE, SRILM_SCORES, SRILM_STYLE
from fusedrnn.ngram import NgramModel, read_arpa, write_arpa
from fusedrnn.ngram.arpa import arpa_sentence

kenlm = pytest.importorskip("kenlm")

WRITABLE = ("kneser-ney", "modified-kneser-ney", "katz")
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "big"]
CHARS = "abcde  "
LOG10_2 = math.log10(2.0)


def _corpus(rng: random.Random, level: str, n_sent: int = 40) -> list[str]:
    """Zipf-like random sentences, so that higher-order n-grams repeat."""
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    if level == "char":
        return ["".join(rng.choices(CHARS, k=rng.randint(1, 14))) for _ in range(n_sent)]
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(1, 9))) for _ in range(n_sent)]


def _test_sentences(rng: random.Random, level: str, train: list[str]) -> list[str]:
    """Training sentences, new ones, ones with out-of-vocabulary tokens, and the empty sentence."""
    new = _corpus(rng, level, 4)
    if level == "char":
        oov = ["ab\tzc", "x", "d\u00e9a", "a\u00a0b"]
    else:
        oov = ["the unicorn sat", "zebra", "a big zebra ran to the cat", "cat sat on a zebra mat"]
    return train[:4] + new + oov + [""]


def _load(path, order: int):
    """KenLM's model of ``path``. KenLM loads no unigram model ("assumes at least a bigram
    model"): an order-1 file is loaded with an empty 2-gram section added, the same model."""
    if order == 1:
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"(\nngram 1=\d+\n)", r"\1ngram 2=0\n", text, count=1)
        text = text.replace("\\end\\", "\\2-grams:\n\n\\end\\")
        path = path.with_name(path.stem + ".as-bigram.arpa")
        path.write_text(text, encoding="utf-8")
    try:
        return kenlm.Model(str(path))
    except OSError as err:
        if "compiled to support up to" in str(err):
            pytest.skip(f"kenlm was built for orders below {order}; rebuild it with "
                        "MAX_ORDER=8 pip install --no-cache-dir --no-binary kenlm kenlm")
        raise


def _factor_log10(lm: NgramModel, sentence: str) -> np.ndarray:
    """fusedrnn's log10 P of every predicted token of ``sentence`` (its tokens, then ``</s>``)."""
    return np.array([math.log10(f.prob) for f in lm.explain(sentence).factors])


def _check_against_kenlm(lm: NgramModel, path, sentences: list[str], digits_err: float) -> None:
    """KenLM's scores of ``path`` equal ``lm``'s; ``digits_err``: rounding of one number in the file vs ``lm``."""
    ken = _load(path, lm.order)
    assert ken.order == max(lm.order, 2)
    for s in sentences:
        mine = _factor_log10(lm, s)
        text = arpa_sentence(s, lm.level)
        full = list(ken.full_scores(text, bos=True, eos=True))
        theirs = np.array([p for p, _, _ in full])
        assert theirs.shape == mine.shape, s
        # a factor found at KenLM's n-gram length m with context length c sums 1 + (c - m + 1)
        # numbers of the file (a probability and the back-off weights), each rounded to 7 digits
        # in the file (digits_err) and to float32 in KenLM, which also adds them in float32
        ctx_len = np.minimum(np.arange(1, len(full) + 1), lm.order - 1)
        n_numbers = 1 + np.maximum(ctx_len - np.array([m for _, m, _ in full]) + 1, 0)
        tol = n_numbers * (digits_err + np.spacing(np.float32(np.abs(mine) + 1.0)).astype(np.float64))
        err = np.abs(theirs - mine)
        assert np.all(err <= tol), f"sentence {s!r}: kenlm {theirs} fusedrnn {mine}"
        total = lm.logprob(s) * LOG10_2
        assert total == pytest.approx(mine.sum(), abs=1e-9)
        # KenLM adds in float32: each addition rounds by up to half an ulp of the running total
        f32 = len(mine) * float(np.spacing(np.float32(abs(total) + 1.0)))
        assert ken.score(text, bos=True, eos=True) == pytest.approx(total, abs=tol.sum() + f32), s


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("order", range(1, 9))
def test_kenlm_scores_written_file(tmp_path, seed, level, order):
    rng = random.Random(seed * 31 + order)
    train = _corpus(rng, level)
    sentences = _test_sentences(rng, level, train)
    # unk_cutoff=2: rare tokens become <unk>, so <unk> occurs inside n-grams too
    models = [(est, {}) for est in WRITABLE] + [(est, {"unk_cutoff": 2}) for est in ("modified-kneser-ney", "katz")]
    for est, kwargs in models:
        lm = NgramModel(order, level, est, **kwargs).fit(train)
        path = tmp_path / f"{est}-{len(kwargs)}.arpa"
        write_arpa(lm, path)
        _check_against_kenlm(lm, path, sentences, 5e-7)
        # the file read back by fusedrnn scores as KenLM does, and writes back the same file
        back = read_arpa(path, level=level)
        _check_against_kenlm(back, path, sentences, 0.0)


@pytest.mark.parametrize("text, scores", [(LMPLZ_STYLE, LMPLZ_SCORES), (SRILM_STYLE, SRILM_SCORES)],
                         ids=["lmplz", "srilm"])
def test_kenlm_and_read_arpa_agree_on_lmplz_and_srilm_files(tmp_path, text, scores):
    """Hand-written files in the layout of lmplz and SRILM: KenLM, fusedrnn and the hand values agree."""
    path = tmp_path / "lm.arpa"
    path.write_text(text, encoding="utf-8")
    ken = _load(path, 3)
    lm = read_arpa(path)
    for sentence, log10p in scores.items():
        assert ken.score(sentence, bos=True, eos=True) == pytest.approx(log10p, abs=1e-5), sentence
        assert lm.logprob(sentence) * LOG10_2 == pytest.approx(log10p, abs=1e-9), sentence
    _check_against_kenlm(lm, path, list(scores), 0.0)
