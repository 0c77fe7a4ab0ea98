"""Corpus BLEU on already tokenized text (Papineni et al., 2002).

:func:`corpus_bleu` scores a list of hypotheses against their references. The text is taken
as already tokenized: a string is split on whitespace, a list or tuple of strings is used as
the tokens. No lower-casing, no detokenization, no re-tokenization happens here, so two runs
on the same token lists give the same number.

The number comes from `sacrebleu <https://pypi.org/project/sacrebleu/>`_ (a dependency of
fusedrnn), the implementation people cite, called with ``tokenize="none"``: this module only
checks the arguments, hands sacrebleu the tokens joined by single spaces, and returns the
statistics in a small dataclass. The formula, for reference (``max_order=4``)::

    p_n  = sum over sentences of clipped matching n-grams / sum of hypothesis n-grams
    BP   = 1                    if c >= r
           exp(1 - r / c)       if 0 < c < r
           0                    if c == 0
    BLEU = 100 * BP * exp(mean over n = 1..4 of log p_n)

where ``c`` is the total hypothesis length and ``r`` the total "effective" reference length:
for each sentence, the length of the reference closest to the hypothesis length (the shorter
one on a tie). A hypothesis n-gram's count is clipped to its largest count in any single
reference of that sentence. Counts are summed over the corpus before dividing (corpus BLEU
is not the mean of sentence BLEU). Without smoothing, any ``p_n == 0`` makes the score 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

Tokens = Union[str, Sequence[str]]
Reference = Union[str, Sequence[str], Sequence[Sequence[str]]]

SMOOTH_METHODS = ("none", "floor", "add-k", "exp")
# Default smoothing values, as in sacrebleu: epsilon for "floor", k for "add-k".
_SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}


@dataclass(frozen=True)
class BleuScore:
    """The result of :func:`corpus_bleu`.

    Attributes:
        score: corpus BLEU in ``[0, 100]`` (``float(result)`` gives it too).
        precisions: the ``max_order`` (smoothed, when asked) n-gram precisions, in percent.
        brevity_penalty: the factor BP in ``[0, 1]``.
        hyp_len: total number of hypothesis tokens ``c``.
        ref_len: total effective reference length ``r``.
        counts: clipped matching n-gram counts per order (before any add-k smoothing).
        totals: hypothesis n-gram counts per order (before any add-k smoothing).
    """

    score: float
    precisions: Tuple[float, ...]
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    counts: Tuple[int, ...]
    totals: Tuple[int, ...]

    def __float__(self) -> float:
        return float(self.score)

    def __str__(self) -> str:
        precs = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"BLEU = {self.score:.2f} {precs} (BP = {self.brevity_penalty:.3f} "
                f"ratio = {self.hyp_len / max(self.ref_len, 1):.3f} hyp_len = {self.hyp_len} ref_len = {self.ref_len})")


def _as_tokens(x: object, what: str) -> List[str]:
    """A string split on whitespace, or a list/tuple of tokens checked to be non-empty strings
    without whitespace (they must survive a join and re-split unchanged)."""
    if isinstance(x, str):
        return x.split()
    if isinstance(x, (list, tuple)):
        out = list(x)
        for j, t in enumerate(out):
            if not isinstance(t, str):
                raise TypeError(f"{what}[{j}]: expected a token (str), got {type(t).__name__}")
            if not t or t.split() != [t]:
                raise ValueError(f"{what}[{j}]: a token must be non-empty and hold no whitespace, got {t!r}")
        return out
    raise TypeError(f"{what}: expected a string or a list of token strings, got {type(x).__name__}")


def _as_references(x: object, what: str) -> List[List[str]]:
    """One entry of `references` as a list of token lists (one per reference)."""
    if isinstance(x, str):
        return [x.split()]
    if isinstance(x, (list, tuple)):
        if len(x) > 0 and all(isinstance(r, (list, tuple)) for r in x):
            return [_as_tokens(r, f"{what}[{k}]") for k, r in enumerate(x)]
        if any(isinstance(r, (list, tuple)) for r in x):
            raise TypeError(f"{what}: mixes tokens and token lists; give one reference (a string or a list of "
                            "tokens) or several references (a list of token lists)")
        return [_as_tokens(x, what)]
    raise TypeError(f"{what}: expected a string, a list of tokens or a list of token lists, got {type(x).__name__}")


def _sacrebleu(hyps, refs, max_order, smooth, smooth_value):
    from sacrebleu.metrics import BLEU

    n_streams = max(len(rs) for rs in refs)
    # sacrebleu takes reference *streams* (one per reference slot, parallel to the hypotheses);
    # None marks a missing reference when sentences have different numbers of references.
    streams = [[" ".join(rs[k]) if k < len(rs) else None for rs in refs] for k in range(n_streams)]
    metric = BLEU(tokenize="none", lowercase=False, force=True, smooth_method=smooth, smooth_value=smooth_value,
                  max_ngram_order=max_order, effective_order=False)
    res = metric.corpus_score([" ".join(h) for h in hyps], streams)
    # sacrebleu's add-k adds k to the counts and totals it reports; report the raw ones
    k = smooth_value if smooth == "add-k" and any(res.counts) else 0.0
    correct = [c - (k if i > 0 else 0.0) for i, c in enumerate(res.counts)]
    total = [t - (k if i > 0 else 0.0) for i, t in enumerate(res.totals)]
    return BleuScore(score=float(res.score), precisions=tuple(float(p) for p in res.precisions),
                     brevity_penalty=float(res.bp), hyp_len=int(res.sys_len), ref_len=int(res.ref_len),
                     counts=tuple(int(round(c)) for c in correct), totals=tuple(int(round(t)) for t in total))


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Reference], *, max_order: int = 4,
                smooth: str = "none", smooth_value: Optional[float] = None) -> BleuScore:
    """Corpus BLEU of `hypotheses` against `references`, on already tokenized text.

    Args:
        hypotheses: one entry per sentence: a string (split on whitespace) or a list/tuple of
            token strings.
        references: one entry per hypothesis (same length): a string or a list of tokens (one
            reference), or a list of token lists (several references for that sentence; split
            strings with ``str.split`` first). An empty reference is allowed.
        max_order: highest n-gram order (4 for BLEU-4).
        smooth: ``"none"`` (default: any zero precision gives 0), or as in sacrebleu
            ``"exp"`` (NIST: the k-th order without a match gets precision ``1 / (2**k * total)``),
            ``"floor"`` (``smooth_value / total``, default 0.1) or ``"add-k"`` (adds
            ``smooth_value``, default 1, to the matches and totals of orders >= 2).
        smooth_value: see `smooth`.

    Returns:
        a :class:`BleuScore`; its ``score`` is in ``[0, 100]``.

    Raises:
        ValueError: no hypotheses, `hypotheses` and `references` differ in length, a bad
            argument value, or a token that is empty or holds whitespace.
        TypeError: an entry that is neither a string nor a list of strings.
    """
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError(f"hypotheses: expected a sequence of sentences, got {type(hypotheses).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"references: expected a sequence with one entry per hypothesis, got {type(references).__name__}")
    if len(hypotheses) == 0:
        raise ValueError("hypotheses: empty; BLEU needs at least one sentence")
    if len(hypotheses) != len(references):
        raise ValueError(f"references: {len(references)} entries for {len(hypotheses)} hypotheses; "
                         "give one entry (one or several references) per hypothesis")
    if not isinstance(max_order, int) or isinstance(max_order, bool) or max_order < 1:
        raise ValueError(f"max_order: expected a positive int, got {max_order!r}")
    if smooth not in SMOOTH_METHODS:
        raise ValueError(f"smooth: expected one of {SMOOTH_METHODS}, got {smooth!r}")
    if smooth_value is None:
        smooth_value = _SMOOTH_DEFAULTS[smooth]
    elif smooth in ("floor", "add-k") and not (smooth_value > 0):
        raise ValueError(f"smooth_value: must be > 0 for smooth={smooth!r}, got {smooth_value!r}")
    hyps = [_as_tokens(h, f"hypotheses[{i}]") for i, h in enumerate(hypotheses)]
    refs = [_as_references(r, f"references[{i}]") for i, r in enumerate(references)]
    return _sacrebleu(hyps, refs, max_order, smooth, smooth_value)
