"""Chain-rule explanation of a sentence's probability: P(w1) * P(w2 | w1) * ...."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_VISIBLE = {" ": "\u2423", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def show_token(token: str) -> str:
    """Printable form of a token (spaces and control characters made visible)."""
    return _VISIBLE.get(token, token)


@dataclass
class Factor:
    """One chain-rule factor ``P(word | context)``.

    Attributes:
        word: the predicted token.
        context: the context tokens actually used (at most ``order - 1``).
        prob: the model's probability (0.0 means the event is impossible under the model).
        count: ``c(context word)`` in the training data, or ``None`` if counts are unknown (ARPA).
        context_count: ``c(context •)``, or ``None``.
        matched_order: longest n-gram order ending in ``word`` seen in training (0: word unseen).
        note: plain-language remark, e.g. ``"unseen"``.
    """

    word: str
    context: tuple[str, ...]
    prob: float
    count: int | None
    context_count: int | None
    matched_order: int
    note: str = ""

    @property
    def log2prob(self) -> float:
        """``log2(prob)`` (``-inf`` for 0)."""
        return math.log2(self.prob) if self.prob > 0 else -math.inf

    def label(self, sep: str) -> str:
        """``P(word | context)`` text."""
        w = show_token(self.word)
        if not self.context:
            return f"P({w})"
        return f"P({w} | {sep.join(show_token(t) for t in self.context)})"

    def ratio(self, sep: str) -> str:
        """The count ratio ``c(context word)/c(context) = a/b`` (or a note that counts are unknown)."""
        if self.count is None or self.context_count is None:
            return "counts not stored (ARPA model)"
        ctx = sep.join(show_token(t) for t in self.context)
        gram = (ctx + sep if ctx else "") + show_token(self.word)
        den = f"c({ctx} \u2022)" if ctx else "N"
        return f"c({gram})/{den} = {self.count}/{self.context_count}"


@dataclass
class Explanation:
    """Chain-rule decomposition of one sentence.

    Attributes:
        sentence: the tokens of the sentence (without padding).
        factors: one :class:`Factor` per predicted token (including ``</s>``).
        estimator: estimator name of the model.
        order: n-gram order of the model.
        level: ``"word"`` or ``"char"``.
    """

    sentence: list[str]
    factors: list[Factor] = field(default_factory=list)
    estimator: str = ""
    order: int = 0
    level: str = "word"

    @property
    def log2prob(self) -> float:
        """Sum of ``log2`` of the factors (``-inf`` if any factor is 0)."""
        return float(sum(f.log2prob for f in self.factors))

    @property
    def prob(self) -> float:
        """Product of the factors."""
        return 2.0 ** self.log2prob if self.factors else 1.0

    @property
    def perplexity(self) -> float:
        """``2 ** (-log2prob / number of factors)`` (``inf`` if a factor is 0)."""
        if not self.factors:
            return float("nan")
        lp = self.log2prob
        return math.inf if lp == -math.inf else 2.0 ** (-lp / len(self.factors))

    @property
    def unseen(self) -> list[Factor]:
        """Factors with probability 0."""
        return [f for f in self.factors if f.prob == 0.0]

    def __str__(self) -> str:
        sep = "" if self.level == "char" else " "
        labels = [f.label(sep) for f in self.factors]
        ratios = [f.ratio(sep) for f in self.factors]
        wl = max([len(s) for s in labels] + [6])
        wr = max([len(s) for s in ratios] + [11])
        lines = [
            f"{self.order}-gram {self.estimator} model, {self.level} level",
            "P(sentence) = " + " \u00b7 ".join(labels),
            "",
            f"{'factor':<{wl}}  {'count ratio':<{wr}}  {'probability':>12}  {'log2 P':>9}  note",
        ]
        for f, lab, rat in zip(self.factors, labels, ratios):
            lp = f"{f.log2prob:9.4f}" if f.prob > 0 else f"{'-inf':>9}"
            lines.append(f"{lab:<{wl}}  {rat:<{wr}}  {f.prob:12.6g}  {lp}  {f.note}".rstrip())
        lines.append("")
        if self.unseen:
            words = ", ".join(repr(f.word) for f in self.unseen)
            lines.append(
                f"P(sentence) = 0: {len(self.unseen)} factor(s) unseen in training ({words}); "
                "perplexity = inf. A smoothed estimator (add-k, kneser-ney, katz) gives them mass."
            )
        else:
            lines.append(
                f"P(sentence) = {self.prob:.6g} = 2^{self.log2prob:.4f}; "
                f"perplexity over {len(self.factors)} predictions = {self.perplexity:.6g}"
            )
        return "\n".join(lines)
