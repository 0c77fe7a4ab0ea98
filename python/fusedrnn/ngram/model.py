"""The n-gram language model: fit, score, perplexity, generate, explain."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fusedrnn.ngram.counts import KeyIndex, NgramCounts, Padding, count_ngrams, index_tables, pad_stream
from fusedrnn.ngram.estimators import (
    BackoffTables,
    canonical_estimator,
    katz,
    kneser_ney,
    stupid_backoff,
)
from fusedrnn.ngram.explain import Explanation, Factor
from fusedrnn.ngram.scoring import (
    Events,
    backoff_scores,
    count_scores,
    events_for_all_words,
    events_from_stream,
    matched_order,
    top_counts,
)
from fusedrnn.ngram.vocab import (
    Level,
    Sentence,
    Vocabulary,
    as_sentence_list,
    check_level,
    flatten_sentences,
    split_sentence,
)

Convention = Literal["srilm", "nltk"]
CONVENTIONS = ("srilm", "nltk")
NLTK_KN_DISCOUNT = 0.1


@dataclass
class Evaluation:
    """Result of :meth:`NgramModel.evaluate`.

    Attributes:
        perplexity: ``2 ** cross_entropy`` (``inf`` if any event has probability 0).
        cross_entropy: mean ``-log2 P`` per predicted token (bits per token / per char).
        n_events: number of predictions scored (tokens plus end-of-sentence markers).
        n_zero: how many of them got probability 0 (unseen under MLE).
        n_oov: how many predicted tokens were outside the vocabulary (scored as ``<UNK>``).
        log2prob: total ``log2`` probability.
    """

    perplexity: float
    cross_entropy: float
    n_events: int
    n_zero: int
    n_oov: int
    log2prob: float


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value: object, lo: float, hi: float = math.inf, lo_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or (v <= lo if lo_open else v < lo) or v > hi:
        rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name}: must be in {rng}, got {value!r}")
    return v


class NgramModel:
    """Count-based n-gram language model over words or characters.

    Args:
        order: ``n >= 1``; contexts hold up to ``n - 1`` tokens.
        level: ``"word"`` (sentences are split on whitespace) or ``"char"``.
        estimator: ``"mle"``, ``"add-k"`` (``k``), ``"laplace"`` (add-1),
            ``"kneser-ney"`` (interpolated, ``discount``), ``"modified-kneser-ney"``
            (three discounts, ``discounts``), ``"katz"`` or ``"stupid-backoff"`` (``alpha``).
        k: pseudo-count of add-k.
        discount: Kneser-Ney discount ``D``; ``None`` estimates ``n1/(n1+2 n2)`` per
            order (``convention="nltk"``: NLTK's default 0.1).
        discounts: modified Kneser-Ney ``(D1, D2, D3+)`` for every order; ``None`` estimates them.
        alpha: stupid back-off multiplier.
        convention: ``"srilm"`` (default; SRILM's and KenLM's): one ``<s>`` before and
            one ``</s>`` after each sentence (no ``<s>`` for ``order=1``), so the first word
            is predicted from the context ``<s>`` alone at every order; only n-grams ending
            at a predicted token are counted; ``<s>`` is not in the predicted vocabulary;
            Kneser-Ney keeps the raw counts of lower-order n-grams that begin with ``<s>``
            (nothing can precede them). ARPA files of these models score the same in KenLM
            and SRILM. ``"nltk"``: as ``nltk.lm`` with ``padded_everygram_pipeline``:
            ``n-1`` ``<s>`` and ``n-1`` ``</s>``, every n-gram of orders ``1..n`` of the
            padded sentence is counted, the vocabulary contains ``<s>``, ``</s>``;
            Kneser-Ney then follows NLTK's formulas.
        unk_cutoff: training tokens seen fewer times become ``<UNK>``.

    Example::

        lm = NgramModel(3, "word", "kneser-ney").fit(["i am sam", "sam i am"])
        lm.prob("am", ["<s>", "i"]); lm.perplexity(["i am"]); print(lm.explain("i am"))
    """

    def __init__(
        self,
        order: int = 3,
        level: Level = "word",
        estimator: str = "kneser-ney",
        *,
        k: float = 1.0,
        discount: float | None = None,
        discounts: Sequence[float] | None = None,
        alpha: float = 0.4,
        convention: Convention = "srilm",
        unk_cutoff: int = 1,
    ) -> None:
        self.order = _check_int("order", order, 1)
        self.level: Level = check_level(level)
        self.estimator = canonical_estimator(estimator)
        if self.estimator == "laplace":
            k = 1.0
        self.k = 0.0 if self.estimator == "mle" else _check_float("k", k, 0.0)
        self.discount = None if discount is None else _check_float("discount", discount, 0.0, 1.0)
        if discounts is not None:
            ds = tuple(discounts)
            if len(ds) != 3:
                raise ValueError(f"discounts: expected (D1, D2, D3+), got {discounts!r}")
            for i, d in enumerate(ds):
                _check_float(f"discounts[{i}]", d, 0.0, float(i + 1))
            discounts = ds
        self.discounts = discounts
        self.alpha = _check_float("alpha", alpha, 0.0, 1.0)
        if convention == "textbook":
            raise ValueError("convention: 'textbook' (n-1 <s> before each sentence) was replaced by 'srilm' "
                             "(one <s>, as SRILM and KenLM; the default); 'nltk' keeps NLTK's n-1 <s>")
        if convention not in CONVENTIONS:
            raise ValueError(f"convention: expected 'srilm' or 'nltk', got {convention!r}")
        self.convention: Convention = convention
        self.unk_cutoff = _check_int("unk_cutoff", unk_cutoff, 1)
        n1 = self.order - 1
        if convention == "nltk":
            self.padding = Padding(n1, n1, 0)
        else:
            n_bos = min(n1, 1)
            self.padding = Padding(n_bos, 1, n_bos)
        self.vocab: Vocabulary | None = None
        self.counts: NgramCounts | None = None
        self.tables: BackoffTables | None = None
        self.keys: list[np.ndarray] = []
        self.index: list[KeyIndex | None] = []
        self.in_vocab: np.ndarray = np.zeros(0, dtype=bool)
        self.discounts_used: list[tuple[float, ...]] = []

    # ------------------------------------------------------------------ fitting
    def fit(self, texts: Iterable[Sentence]) -> "NgramModel":
        """Count n-grams of ``texts`` (an iterable of sentences) and build the estimator.

        A sentence is a ``str`` (split into words or characters per ``level``) or
        a list of tokens. Raises ``ValueError`` if there are no tokens at all.
        """
        sents = as_sentence_list(texts)
        raw, lengths = flatten_sentences(sents, self.level)
        if raw.size == 0:
            raise ValueError("texts: the training corpus is empty (no tokens in any sentence)")
        vocab, ids = Vocabulary.build(raw, self.level, self.unk_cutoff)
        stream = pad_stream(ids, lengths, self.padding, vocab.bos_id, vocab.eos_id)
        counts = count_ngrams(stream, self.order, len(vocab), self.padding)
        self._install(vocab, counts.keys, counts)
        return self

    def _install(self, vocab: Vocabulary, keys: list[np.ndarray], counts: NgramCounts | None,
                 tables: BackoffTables | None = None) -> None:
        self.vocab, self.keys, self.counts = vocab, keys, counts
        V = len(vocab)
        self.index = counts.index if counts is not None and counts.index else index_tables(keys, V)
        mask = np.ones(V, dtype=bool)
        if self.convention == "nltk":
            if self.order == 1:
                mask[[vocab.bos_id, vocab.eos_id]] = False
        else:
            mask[vocab.bos_id] = False
        self.in_vocab = mask
        base = mask / mask.sum()
        if tables is not None:
            self.tables = tables
        elif self.estimator in ("kneser-ney", "modified-kneser-ney"):
            assert counts is not None
            modified = self.estimator == "modified-kneser-ney"
            disc = None
            if not modified and self.discount is not None:
                disc = [self.discount] * self.order
            elif not modified and self.convention == "nltk":
                disc = [NLTK_KN_DISCOUNT] * self.order
            mkn = [self.discounts] * self.order if (modified and self.discounts is not None) else None
            self.tables, self.discounts_used = kneser_ney(
                counts, base, disc, nltk=(self.convention == "nltk" and not modified),
                modified=modified, mkn_given=mkn,
                raw_after_bos=None if self.convention == "nltk" else vocab.bos_id)
        elif self.estimator == "katz":
            assert counts is not None
            self.tables = katz(counts, base)
        elif self.estimator == "stupid-backoff":
            assert counts is not None
            self.tables = stupid_backoff(counts, self.alpha)
        else:
            self.tables = None

    def _require_fit(self) -> Vocabulary:
        if self.vocab is None:
            raise ValueError("model: not fitted yet; call fit(texts) or load an ARPA file first")
        return self.vocab

    @property
    def vocabulary_size(self) -> int:
        """``|V|``: number of tokens the model predicts (regular tokens, ``<UNK>``, ``</s>``, ...)."""
        self._require_fit()
        return int(self.in_vocab.sum())

    @property
    def is_backoff(self) -> bool:
        """True for estimators stored as ARPA-style back-off tables."""
        return self.tables is not None

    # ------------------------------------------------------------------ scoring core
    def _scores(self, ev: Events) -> np.ndarray:
        if self.tables is not None:
            return backoff_scores(self.tables, ev)
        assert self.counts is not None
        return count_scores(self.counts, ev, self.k, self.vocabulary_size)

    def _sentence_events(self, texts: Sequence[Sentence]) -> tuple[Events, np.ndarray]:
        """Events of every predicted position of the padded sentences, and the padded ids."""
        vocab = self._require_fit()
        ids, lengths = vocab.encode(texts)
        stream = pad_stream(ids, lengths, self.padding, vocab.bos_id, vocab.eos_id)
        positions = np.flatnonzero(stream.pos >= self.padding.n_bos)
        ctx_len = np.minimum(stream.pos[positions], self.order - 1)
        ev = events_from_stream(self.index, stream.ids, positions, ctx_len, len(vocab))
        return ev, stream.ids

    def _context_ids(self, context: Sentence | None) -> np.ndarray:
        vocab = self._require_fit()
        if context is None:
            return np.zeros(0, dtype=np.int64)
        toks = split_sentence(context, self.level)
        ids = vocab.encode_tokens(toks)
        m = self.order - 1
        return ids[max(len(ids) - m, 0):] if m > 0 else ids[:0]

    def prob(self, word: str, context: Sentence | None = None) -> float:
        """``P(word | context)``; the context is truncated to its last ``order - 1`` tokens.

        No padding is added: pass ``"<s>"`` tokens explicitly for sentence starts.
        ``word`` may be ``"</s>"``. Unknown tokens are looked up as ``<UNK>``.
        Returns 0.0 for an unseen event under MLE (and for an unseen context).
        """
        vocab = self._require_fit()
        if not isinstance(word, str):
            raise TypeError(f"word: expected a str token, got {type(word).__name__}")
        ctx = self._context_ids(context)
        ids = np.concatenate([ctx, [vocab.id_of(word)]]).astype(np.int64)
        pos = np.array([ids.size - 1], dtype=np.int64)
        ev = events_from_stream(self.index, ids, pos, np.array([ctx.size]), len(vocab))
        return float(self._scores(ev)[0])

    def distribution(self, context: Sentence | None = None) -> np.ndarray:
        """``(V,)`` ``P(w | context)`` for every vocabulary id (tokens in ``vocab.tokens``).

        Entries of ids outside the predicted vocabulary (e.g. ``<s>``) are 0.
        """
        vocab = self._require_fit()
        ev = events_for_all_words(self.index, self._context_ids(context), len(vocab))
        return np.where(self.in_vocab, self._scores(ev), 0.0)

    def logprob(self, sentence: Sentence) -> float:
        """``log2 P(sentence)`` with boundary padding (includes ``P(</s> | ...)``); ``-inf`` if 0."""
        sents = [sentence] if isinstance(sentence, str) else [list(sentence)]
        ev, _ = self._sentence_events(sents)
        p = self._scores(ev)
        with np.errstate(divide="ignore"):
            return float(np.log2(p).sum())

    def evaluate(self, texts: Iterable[Sentence]) -> Evaluation:
        """Score every predicted token of ``texts`` (see :class:`Evaluation`).

        Under MLE an unseen n-gram has probability 0 and makes the perplexity
        infinite; that is reported (``n_zero``, a ``RuntimeWarning``), not raised.
        """
        sents = as_sentence_list(texts)
        if not sents:
            raise ValueError("texts: no sentences to evaluate")
        ev, _ = self._sentence_events(sents)
        n = len(ev)
        if n == 0:
            raise ValueError("texts: nothing to score (no tokens and no end-of-sentence events)")
        p = self._scores(ev)
        vocab = self._require_fit()
        n_zero = int(np.count_nonzero(p <= 0))
        n_oov = int(np.count_nonzero(ev.word == vocab.unk_id))
        with np.errstate(divide="ignore"):
            lp = float(np.log2(p).sum())
        if n_zero:
            warnings.warn(
                f"{n_zero} of {n} predictions have probability 0 under the {self.estimator} estimator "
                "(n-grams unseen in training): perplexity is infinite",
                RuntimeWarning,
                stacklevel=2,
            )
            return Evaluation(math.inf, math.inf, n, n_zero, n_oov, -math.inf)
        h = -lp / n
        return Evaluation(float(2.0 ** h), h, n, 0, n_oov, lp)

    def perplexity(self, texts: Iterable[Sentence]) -> float:
        """``2 ** (-(1/N) sum log2 P)`` over all predictions of ``texts`` (``inf`` if one is 0)."""
        return self.evaluate(texts).perplexity

    def cross_entropy(self, texts: Iterable[Sentence]) -> float:
        """Mean bits per prediction (bits per character for ``level="char"``)."""
        return self.evaluate(texts).cross_entropy

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        n: int,
        seed_text: Sentence | None = None,
        temperature: float = 1.0,
        rng: np.random.Generator | int | None = None,
    ) -> str:
        """Sample ``n`` tokens; ``</s>`` ends a sentence (rendered as a newline).

        Sampling follows ``P(w | context) ** (1 / temperature)`` renormalised over
        the vocabulary without ``<s>`` and ``<UNK>``; if a context gives no mass
        (MLE with an unseen context) it is shortened. ``seed_text`` conditions the
        first tokens (it is not repeated in the output). Returns the text.
        """
        vocab = self._require_fit()
        n = _check_int("n", n, 0)
        t = _check_float("temperature", temperature, 0.0)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        bos = [vocab.bos_id] * self.padding.n_bos
        history = list(bos)
        if seed_text is not None:
            history += vocab.encode_tokens(split_sentence(seed_text, self.level)).tolist()
        allowed = self.in_vocab.copy()
        allowed[[vocab.bos_id, vocab.unk_id]] = False
        out: list[str] = []
        m = self.order - 1
        for _ in range(n):
            ctx = history[max(len(history) - m, 0):] if m > 0 else []
            while True:
                ev = events_for_all_words(self.index, np.asarray(ctx, dtype=np.int64), len(vocab))
                p = np.where(allowed, self._scores(ev), 0.0)
                if p.sum() > 0 or not ctx:
                    break
                ctx = ctx[1:]
            if p.sum() <= 0:
                raise ValueError("model: no token has positive probability; cannot generate")
            logits = np.log(np.maximum(p, 1e-300)) / t
            w = np.where(p > 0, np.exp(logits - logits[p > 0].max()), 0.0)
            nxt = int(gen.choice(len(w), p=w / w.sum()))
            if nxt == vocab.eos_id:
                out.append("\n")
                history = list(bos)
            else:
                out.append(vocab.tokens[nxt])
                history.append(nxt)
        if self.level == "char":
            return "".join(out)
        return " ".join(out).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")

    # ------------------------------------------------------------------ explanation
    def explain(self, sentence: Sentence) -> Explanation:
        """Chain-rule decomposition ``P(w1 | <s>..) * P(w2 | .. w1) * ... * P(</s> | ..)``.

        Each factor carries the probability, the count ratio
        ``c(context word) / c(context •)`` of its full context (when counts are
        known) and a note such as ``"unseen"``.
        """
        vocab = self._require_fit()
        tokens = split_sentence(sentence, self.level)
        ev, ids = self._sentence_events([tokens])
        p = self._scores(ev)
        mo = matched_order(self.counts, self.tables, ev)
        if self.counts is not None:
            num, den = top_counts(self.counts, ev)
        positions = np.flatnonzero(pad_stream(np.zeros(len(tokens), dtype=np.int64),
                                              np.array([len(tokens)]), self.padding, 0, 0).pos
                                   >= self.padding.n_bos)
        expl = Explanation(tokens, [], self.estimator, self.order, self.level)
        for e in range(len(ev)):
            i = int(positions[e])
            cl = int(ev.ctx_len[e])
            ctx_tokens = tuple(vocab.tokens[int(t)] for t in ids[i - cl:i])
            word_id = int(ids[i])
            word = tokens[i - self.padding.n_bos] if i - self.padding.n_bos < len(tokens) else vocab.tokens[word_id]
            c = int(num[e]) if self.counts is not None else None
            d = int(den[e]) if self.counts is not None else None
            order_used = int(mo[e])
            notes = []
            if word_id == vocab.unk_id:
                notes.append(f"{word!r} is out of vocabulary (scored as <UNK>)")
            if p[e] == 0:
                if d == 0:
                    notes.append("unseen context: P = 0 under MLE")
                else:
                    notes.append(f"unseen: this {cl + 1}-gram never occurs in training, P = 0")
            elif order_used < cl + 1 and self.estimator not in ("mle", "add-k", "laplace"):
                notes.append(f"backed off to the {order_used}-gram" if order_used else "backed off to the floor")
            elif c == 0 and self.estimator in ("add-k", "laplace"):
                notes.append(f"unseen, add-{self.k:g} pseudo-count")
            expl.factors.append(Factor(word, ctx_tokens, float(p[e]), c, d, order_used, "; ".join(notes)))
        return expl

    def __repr__(self) -> str:
        state = "unfitted" if self.vocab is None else f"|V|={self.vocabulary_size}"
        return f"NgramModel(order={self.order}, level={self.level!r}, estimator={self.estimator!r}, " \
               f"convention={self.convention!r}, {state})"
