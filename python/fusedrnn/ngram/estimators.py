"""Probability estimators computed from :class:`~fusedrnn.ngram.counts.NgramCounts`.

Back-off-form estimators (Kneser-Ney, modified Kneser-Ney, Katz, stupid back-off)
are turned into :class:`BackoffTables`: for every row ``g`` of table ``k`` the
probability ``prob[k][g] = P(last(g) | prefix(g))`` and for every row ``c`` of
table ``k`` (as a context) the back-off weight ``bow[k][c]``. Any query then
follows the ARPA rule::

    P(w | c) = prob[w c]                if the n-gram (c, w) has a row
             = bow[c] * P(w | c[1:])    otherwise (bow = default_bow if c has no row)

For interpolated Kneser-Ney ``prob`` of a row is the interpolated value
``alpha + gamma * P_lower`` and ``bow`` is ``gamma``, which makes the rule exact.
Rows with a zero count are filled with ``bow * P_lower`` so the rule gives the
same answer whether or not they are treated as present.

MLE and add-k are not back-off models; they are scored directly from counts by
:func:`mle_add_k`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fusedrnn.ngram.counts import NgramCounts

ESTIMATORS = ("mle", "add-k", "laplace", "kneser-ney", "modified-kneser-ney", "katz", "stupid-backoff")
ALIASES = {
    "lidstone": "add-k",
    "add-one": "laplace",
    "kn": "kneser-ney",
    "kneser_ney": "kneser-ney",
    "mkn": "modified-kneser-ney",
    "modified_kneser_ney": "modified-kneser-ney",
    "stupid": "stupid-backoff",
    "stupid_backoff": "stupid-backoff",
    "katz-backoff": "katz",
}
BACKOFF_ESTIMATORS = ("kneser-ney", "modified-kneser-ney", "katz", "stupid-backoff")

KATZ_MAX_DISCOUNTED = 5  # Katz's k: counts above this are trusted (no Good-Turing discount)


def canonical_estimator(name: object) -> str:
    """Canonical estimator name (accepts a few aliases), else ``ValueError``."""
    if not isinstance(name, str):
        raise TypeError(f"estimator: expected a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ESTIMATORS:
        raise ValueError(f"estimator: unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    return key


@dataclass
class BackoffTables:
    """Probabilities and back-off weights in ARPA form.

    Attributes:
        prob: list indexed by order ``k = 0..n``; ``prob[k]`` is ``(m_k,)`` float64
            (``prob[0]`` is unused and holds ``[1.0]``).
        bow: list indexed by ``k = 0..n``; ``bow[k]`` is ``(m_k,)`` float64, the weight
            applied when backing off from context row ``c`` of table ``k`` (``bow[n]`` unused, ones).
        default_bow: weight applied for a context that has no row (1 for normalised
            models, alpha for stupid back-off).
    """

    prob: list[np.ndarray]
    bow: list[np.ndarray]
    default_bow: float = 1.0


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def kn_discount(a: np.ndarray) -> float:
    """Chen & Goodman's single discount ``D = n1 / (n1 + 2 n2)`` from counts ``a``.

    Falls back to 0.5 when the count-of-counts give no value in (0, 1].
    """
    n1 = int(np.count_nonzero(a == 1))
    n2 = int(np.count_nonzero(a == 2))
    if n1 + 2 * n2 == 0:
        return 0.5
    d = n1 / (n1 + 2 * n2)
    return d if 0.0 < d <= 1.0 else 0.5


def mkn_discounts(a: np.ndarray) -> tuple[float, float, float]:
    """Chen & Goodman's three discounts ``(D1, D2, D3+)`` from counts ``a``.

    ``Y = n1/(n1+2 n2)``, ``D1 = 1-2Y n2/n1``, ``D2 = 2-3Y n3/n2``, ``D3+ = 3-4Y n4/n3``.
    A value outside ``(0, r]`` (degenerate count-of-counts on tiny corpora) is
    replaced by ``r/2``.
    """
    n = [int(np.count_nonzero(a == r)) for r in range(5)]
    out = []
    y = n[1] / (n[1] + 2 * n[2]) if n[1] + 2 * n[2] > 0 else float("nan")
    for r in (1, 2, 3):
        d = r - (r + 1) * y * n[r + 1] / n[r] if n[r] > 0 else float("nan")
        out.append(d if np.isfinite(d) and 0.0 < d <= r else r / 2.0)
    return out[0], out[1], out[2]


def _lower(counts: NgramCounts, prob: list[np.ndarray], base: np.ndarray, k: int) -> np.ndarray:
    """``(m_k,)``: lower-order probability of every k-gram row (``base`` for k = 1)."""
    return base[counts.word[1]] if k == 1 else prob[k - 1][counts.suffix[k]]


def kneser_ney(
    counts: NgramCounts,
    base: np.ndarray,
    discounts: Sequence[float] | None,
    nltk: bool,
    modified: bool = False,
    mkn_given: Sequence[Sequence[float]] | None = None,
    raw_after_bos: int | None = None,
) -> tuple[BackoffTables, list[tuple[float, ...]]]:
    """Interpolated (modified) Kneser-Ney.

    Order ``n`` uses raw counts ``c``; lower orders ``k`` use continuation counts
    ``a = N1+(• g)``. For context ``c`` with ``T(c) = sum_w a(c w) > 0``::

        P_k(w|c) = max(a(c w) - D, 0) / T(c) + gamma(c) * P_{k-1}(w | c[1:])
        gamma(c) = D * N1+(c •) / T(c)

    (modified KN: ``D`` depends on ``a`` being 1, 2 or >=3 and ``gamma`` sums those.)
    The textbook form ends in ``P_0 = base`` (uniform over the vocabulary) and
    counts ``N1+(c •)`` from ``a``. ``nltk=True`` reproduces ``nltk.lm.KneserNeyInterpolated``:
    the unigram level is ``a(w) / T`` with no discount and no uniform floor, and
    ``N1+(c •)`` counts the raw (not continuation) types following ``c``.

    With one ``<s>`` per sentence (SRILM, KenLM) nothing precedes an n-gram that
    begins with ``<s>``, so its continuation count would be 0: ``raw_after_bos``
    (the id of ``<s>``) makes such lower-order n-grams keep their raw count ``c``.

    Args:
        discounts: per-order discounts ``D`` (index 0 for order 1); ``None`` estimates them.
        mkn_given: per-order ``(D1, D2, D3+)`` for modified KN; ``None`` estimates them.

    Returns the tables and the discounts used per order (index 0 = order 1).
    """
    n = counts.order
    prob: list[np.ndarray] = [np.ones(1)]
    bow: list[np.ndarray] = []
    used: list[tuple[float, ...]] = []
    for k in range(1, n + 1):
        a = counts.count[k] if k == n else counts.continuation(k)
        if raw_after_bos is not None and 1 < k < n:
            a = np.where(counts.first_word(k) == raw_after_bos, counts.count[k], a)
        af = a.astype(np.float64)
        tot = counts.context_total(k, af)
        pre = counts.prefix[k]
        lower = _lower(counts, prob, base, k)
        if nltk and k == 1 and n > 1:
            prob.append(_safe_div(af, tot[pre]))
            bow.append(np.zeros(1))
            used.append((0.0,))
            continue
        if modified:
            d1, d2, d3 = mkn_given[k - 1] if mkn_given is not None else mkn_discounts(a)
            disc = np.where(a == 0, 0.0, np.where(a == 1, d1, np.where(a == 2, d2, d3)))
            gnum = counts.context_total(k, disc)
            used.append((d1, d2, d3))
        else:
            d = float(discounts[k - 1]) if discounts is not None else kn_discount(a)
            disc = np.minimum(af, d)
            src = counts.count[k] if nltk else a
            gnum = d * counts.context_total(k, (src > 0).astype(np.float64))
            used.append((d,))
        alpha = _safe_div(np.maximum(af - disc, 0.0), tot[pre])
        gamma = np.where(tot > 0, _safe_div(gnum, tot), 1.0)
        bow.append(gamma)
        prob.append(alpha + gamma[pre] * lower)
    bow.append(np.ones(counts.size(n)))
    return BackoffTables(prob, bow, 1.0), used


def good_turing_discounts(r: np.ndarray, kmax: int = KATZ_MAX_DISCOUNTED) -> np.ndarray:
    """Katz's discount ratios ``d_r`` for ``r = 0..kmax`` (``d_0`` unused, 1).

    ``r* = (r+1) n_{r+1} / n_r``; ``d_r = (r*/r - (k+1) n_{k+1}/n_1) / (1 - (k+1) n_{k+1}/n_1)``.
    A ratio that is not in ``(0, 1]`` (sparse count-of-counts) is set to 1.
    """
    n = np.array([np.count_nonzero(r == i) for i in range(kmax + 2)], dtype=np.float64)
    d = np.ones(kmax + 1)
    if n[1] == 0:
        return d
    common = (kmax + 1) * n[kmax + 1] / n[1]
    for i in range(1, kmax + 1):
        if n[i] == 0 or common >= 1.0:
            continue
        ratio = ((i + 1) * n[i + 1] / n[i] / i - common) / (1.0 - common)
        if np.isfinite(ratio) and 0.0 < ratio <= 1.0:
            d[i] = ratio
    return d


def katz(counts: NgramCounts, base: np.ndarray) -> BackoffTables:
    """Katz back-off with Good-Turing discounts for counts ``<= 5``.

    For a context ``c`` with ``c(c •) > 0``::

        P(w|c) = d_r * r / c(c •)                   if r = c(c w) > 0
               = alpha(c) * P(w | c[1:])            otherwise
        alpha(c) = (1 - sum_seen P(w|c)) / (1 - sum_seen P(w|c[1:]))

    The unigram level backs off to ``base`` (uniform). Two edge rules keep it
    normalised and non-zero: a context followed by every vocabulary word keeps its
    relative frequencies (nothing to back off to, alpha = 0); a context whose
    continuations all have counts above 5 (no discounted mass) reserves one
    pseudo-count, ``P = r / (c(c •) + 1)`` and left-over ``1 / (c(c •) + 1)``.
    """
    n = counts.order
    prob: list[np.ndarray] = [np.ones(1)]
    bow: list[np.ndarray] = []
    eps = 1e-12
    for k in range(1, n + 1):
        r = counts.count[k]
        rf = r.astype(np.float64)
        pre = counts.prefix[k]
        tot = counts.context_total(k)
        lower = _lower(counts, prob, base, k)
        d = good_turing_discounts(r)
        dr = np.where(r <= KATZ_MAX_DISCOUNTED, d[np.minimum(r, KATZ_MAX_DISCOUNTED)], 1.0)
        seen = r > 0
        disc = _safe_div(dr * rf, tot[pre])
        seen_mass = counts.context_total(k, np.where(seen, disc, 0.0))
        lower_mass = counts.context_total(k, np.where(seen, lower, 0.0))
        full = lower_mass >= 1.0 - eps
        no_left = (~full) & (seen_mass >= 1.0 - eps)
        mle = _safe_div(rf, tot[pre])
        plus1 = rf / (tot[pre] + 1.0)
        disc = np.where(full[pre], mle, np.where(no_left[pre], plus1, disc))
        left = np.where(full, 0.0, np.where(no_left, _safe_div(np.ones_like(tot), tot + 1.0), 1.0 - seen_mass))
        alpha = np.where(tot > 0, _safe_div(left, 1.0 - lower_mass), 1.0)
        alpha = np.where(full & (tot > 0), 0.0, alpha)
        bow.append(alpha)
        prob.append(np.where(seen, disc, alpha[pre] * lower))
    bow.append(np.ones(counts.size(n)))
    return BackoffTables(prob, bow, 1.0)


def stupid_backoff(counts: NgramCounts, alpha: float) -> BackoffTables:
    """Brants et al.'s stupid back-off (as ``nltk.lm.StupidBackoff``): a score, not a probability.

    ``S(w|c) = c(c w) / c(c •)`` if ``c(c w) > 0`` else ``alpha * S(w | c[1:])``;
    ``S(w) = c(w) / N``. Scores are in ``[0, 1]`` but do not sum to 1 over ``w``.
    """
    n = counts.order
    prob: list[np.ndarray] = [np.ones(1)]
    bow: list[np.ndarray] = []
    for k in range(1, n + 1):
        r = counts.count[k].astype(np.float64)
        pre = counts.prefix[k]
        tot = counts.context_total(k)
        freq = _safe_div(r, tot[pre])
        if k == 1:
            prob.append(freq)
        else:
            prob.append(np.where(r > 0, freq, alpha * prob[k - 1][counts.suffix[k]]))
        bow.append(np.full(counts.size(k - 1), alpha))
    bow.append(np.ones(counts.size(n)))
    return BackoffTables(prob, bow, float(alpha))


def mle_add_k(count: np.ndarray, total: np.ndarray, k: float, vocab_size: int) -> np.ndarray:
    """``(c + k) / (total + k |V|)``; ``k = 0`` is MLE (0 where ``total == 0``)."""
    count = count.astype(np.float64)
    total = total.astype(np.float64)
    if k == 0:
        return _safe_div(count, total)
    return (count + k) / (total + k * vocab_size)
