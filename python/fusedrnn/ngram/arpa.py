"""Read and write back-off n-gram models in the ARPA text format.

Layout::

    \\data\\
    ngram 1=<number of 1-grams>
    ...
    \\1-grams:
    <log10 P>  <w>  [<log10 back-off weight>]
    ...
    \\2-grams:
    <log10 P>  <w1> <w2>  [<log10 back-off weight>]
    ...
    \\end\\

Zero probabilities are written as ``-99`` (read back as 0). The unknown word is
written as ``<unk>`` (``<UNK>`` is also accepted on reading). Character-level
models escape whitespace characters, which the format uses as separators:
``" "`` -> ``<space>``, ``"\\t"`` -> ``<tab>``, ``"\\n"`` -> ``<newline>``, and other
whitespace as ``<U+hhhh>``. The level of a file is not stored; :func:`read_arpa`
guesses it (char level when every regular unigram is one character or an escape and
at least one escape occurs, as in any text with spaces)
unless ``level`` is given.

Files follow SRILM's and KenLM's convention: a sentence starts with one ``<s>``,
which is a context only (listed with ``-99``; KenLM's ``lmplz`` lists it with ``0``,
and either is read as "never predicted"), so KenLM's ``Model(path).score(sentence)``
equals the model's log10 probability to the file's 7 digits (write the sentence with
:func:`arpa_sentence`). Only models of the default ``convention="srilm"`` are written.

Reading also accepts what those tools write: back-off weights left out (0), no
back-off on the highest order, no ``<unk>`` (SRILM without ``-unk``; an unknown
word then gets KenLM's log10 probability -100) and n-grams whose suffix is not
listed (SRILM's pruning can keep ``a b c`` and drop ``b c``; the missing one scores
by the back-off rule, as KenLM fills it in). Every n-gram's context (prefix) must be
listed, as KenLM requires. Files of earlier fusedrnn versions, which list ``<s> <s>``
bigrams, are scored with ``n-1`` ``<s>`` as written.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable

import numpy as np

from fusedrnn.io_utils import atomic_write
from fusedrnn.ngram.counts import Padding
from fusedrnn.ngram.estimators import BackoffTables
from fusedrnn.ngram.model import NgramModel
from fusedrnn.ngram.vocab import BOS, EOS, UNK, Level, Sentence, Vocabulary, check_level, split_sentence

LOG_ZERO = -99.0
MISSING_UNK_LOG10 = -100.0  # KenLM's log10 P(<unk>) for a file without <unk> (config.unknown_missing_logprob)
_ESCAPES = {" ": "<space>", "\t": "<tab>", "\n": "<newline>"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_UPLUS = re.compile(r"^<U\+([0-9A-Fa-f]{4,6})>$")
Gram = tuple[int, ...]  # token ids of one n-gram
Entry = tuple[float, tuple[str, ...], float]  # (log10 P, tokens, log10 back-off) of one ARPA line


def _escape_char(tok: str) -> str:
    if tok in _ESCAPES:
        return _ESCAPES[tok]
    if len(tok) == 1 and (tok.isspace() or not tok.isprintable()):
        return f"<U+{ord(tok):04X}>"
    return tok


def _unescape_char(tok: str) -> str:
    if tok in _UNESCAPES:
        return _UNESCAPES[tok]
    m = _UPLUS.match(tok)
    return chr(int(m.group(1), 16)) if m else tok


def _arpa_token(tok: str, level: Level) -> str:
    if tok == UNK:
        return "<unk>"
    if level == "char" and tok not in (BOS, EOS):
        return _escape_char(tok)
    return tok


def arpa_sentence(sentence: Sentence, level: Level) -> str:
    """``sentence`` as KenLM and SRILM read it for a model of this ``level`` written by :func:`write_arpa`.

    The tokens joined by single spaces: words as they are, characters with whitespace
    escaped as in the file (``"a b"`` -> ``"a <space> b"``). No ``<s>``/``</s>`` is added.
    Example: ``kenlm.Model(path).score(arpa_sentence("a b", "char"))``.
    """
    lev = check_level(level)
    return " ".join(_arpa_token(t, lev) for t in split_sentence(sentence, lev))


def _fmt(x: float) -> str:
    if x <= 0.0:
        return f"{LOG_ZERO:g}"
    return f"{math.log10(x):.7g}"


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\n`` line ends) to ``path`` atomically (:func:`fusedrnn.io_utils.atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        fh.write(text.encode("utf-8"))


def _gram_ids(model: NgramModel, k: int) -> np.ndarray:
    """``(m_k, k)`` token ids of every row of table ``k`` (walks the prefix chain)."""
    V = len(model.vocab)  # type: ignore[arg-type]
    keys = model.keys
    out = np.empty((keys[k].size, k), dtype=np.int64)
    rows = np.arange(keys[k].size, dtype=np.int64)
    for j in range(k, 0, -1):
        key = keys[j][rows]
        out[:, j - 1] = key % V if j > 1 else key
        rows = key // V if j > 1 else rows
    return out


def arpa_text(model: NgramModel) -> str:
    """The ARPA text of a fitted back-off model (Kneser-Ney, modified KN, Katz, or one read from ARPA)."""
    vocab = model._require_fit()
    tables = model.tables
    if tables is None or model.estimator == "stupid-backoff":
        raise ValueError(
            f"estimator: {model.estimator!r} has no exact ARPA (back-off) representation; "
            "use 'kneser-ney', 'modified-kneser-ney' or 'katz'"
        )
    if model.convention != "srilm":
        raise ValueError(
            f"convention: ARPA files follow SRILM's and KenLM's convention (one <s>); this model uses "
            f"convention={model.convention!r} (n-1 <s> and </s>); fit it with convention='srilm' to write it"
        )
    n = model.order
    names = [_arpa_token(t, model.level) for t in vocab.tokens]
    sections = []
    sizes = []
    for k in range(1, n + 1):
        ids = _gram_ids(model, k)
        prob = tables.prob[k]
        bow = tables.bow[k] if k < n else None
        order = np.lexsort(ids.T[::-1])
        lines = []
        for r in order.tolist():
            gram = " ".join(names[i] for i in ids[r])
            line = f"{_fmt(float(prob[r]))}\t{gram}"
            if bow is not None:
                line += f"\t{_fmt(float(bow[r]))}"
            lines.append(line)
        sizes.append(len(lines))
        sections.append(f"\\{k}-grams:\n" + "\n".join(lines) + "\n")
    head = "\\data\\\n" + "".join(f"ngram {k}={m}\n" for k, m in enumerate(sizes, start=1))
    return "\n" + head + "\n" + "\n".join(sections) + "\n\\end\\\n"


def write_arpa(model: NgramModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` in ARPA format (atomically: temp file + ``os.replace``)."""
    atomic_write_text(path, arpa_text(model))


def _err(path: str, lineno: int, msg: str) -> ValueError:
    return ValueError(f"path: malformed ARPA file {path!r}, line {lineno}: {msg}")


def parse_arpa(text: str, path: str = "<string>") -> tuple[list[int], list[list[Entry]]]:
    """Parse ARPA text into the header counts and per-order ``(log10 p, tokens, log10 bow)`` entries."""
    lines = text.splitlines()
    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        raise ValueError(f"path: malformed ARPA file {path!r}: no '\\data\\' line")
    i += 1
    header: dict[int, int] = {}
    while i < len(lines) and not lines[i].strip().startswith("\\"):
        s = lines[i].strip()
        if s:
            m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", s)
            if not m:
                raise _err(path, i + 1, f"expected 'ngram K=COUNT', got {s!r}")
            header[int(m.group(1))] = int(m.group(2))
        i += 1
    if not header:
        raise ValueError(f"path: malformed ARPA file {path!r}: no 'ngram K=COUNT' lines after \\data\\")
    order = max(header)
    if sorted(header) != list(range(1, order + 1)):
        raise ValueError(f"path: malformed ARPA file {path!r}: n-gram orders {sorted(header)} are not 1..{order}")
    entries: list[list[Entry]] = [[] for _ in range(order + 1)]
    k = 0
    ended = False
    while i < len(lines):
        s = lines[i].strip()
        i += 1
        if not s:
            continue
        if s == "\\end\\":
            ended = True
            break
        m = re.fullmatch(r"\\(\d+)-grams:", s)
        if m:
            k = int(m.group(1))
            if k not in header:
                raise _err(path, i, f"section {s!r} has no 'ngram {k}=...' header line")
            continue
        if k == 0:
            raise _err(path, i, f"n-gram line before any '\\k-grams:' section: {s!r}")
        fields = s.split()
        if len(fields) not in (k + 1, k + 2):
            raise _err(path, i, f"expected log10 probability, {k} token(s) and an optional back-off weight, "
                                f"got {len(fields)} fields")
        try:
            lp = float(fields[0])
            lb = float(fields[k + 1]) if len(fields) == k + 2 else 0.0
        except ValueError:
            raise _err(path, i, f"not a number in {s!r}") from None
        if lp > 1e-6 or math.isnan(lp):
            raise _err(path, i, f"log10 probability {lp} is positive")
        entries[k].append((lp, tuple(fields[1:k + 1]), lb))
    if not ended:
        raise ValueError(f"path: malformed ARPA file {path!r}: missing '\\end\\'")
    for kk in range(1, order + 1):
        if len(entries[kk]) != header[kk]:
            raise ValueError(f"path: malformed ARPA file {path!r}: header says ngram {kk}={header[kk]} "
                             f"but the file lists {len(entries[kk])} {kk}-grams")
    return [header[kk] for kk in range(1, order + 1)], entries


def _guess_level(tokens: list[str]) -> Level:
    regular = [t for t in tokens if t not in ("<s>", "</s>", "<unk>", "<UNK>")]
    escaped = any(t in _UNESCAPES or _UPLUS.match(t) for t in regular)
    if regular and escaped and all(len(_unescape_char(t)) == 1 for t in regular):
        return "char"
    return "word"


def read_arpa(path: str | os.PathLike[str], level: Level | None = None) -> NgramModel:
    """Load an ARPA file (written here, by KenLM's ``lmplz`` or by SRILM) as an :class:`NgramModel`.

    The model has estimator ``"arpa"`` and no counts, and scores sentences as KenLM
    does (one ``<s>``, OOV words as ``<unk>``; see the module docstring).
    Raises ``ValueError`` naming the line for malformed files.
    """
    p = str(path)
    if not os.path.isfile(p):
        raise ValueError(f"path: ARPA file {p!r} does not exist")
    with open(p, encoding="utf-8") as fh:
        text = fh.read()
    return arpa_from_text(text, level, p)


def arpa_from_text(text: str, level: Level | None = None, path: str = "<string>") -> NgramModel:
    """Build a model from ARPA text (see :func:`read_arpa`)."""
    _, entries = parse_arpa(text, path)
    order = len(entries) - 1
    uni_tokens = [e[1][0] for e in entries[1]]
    lev: Level = check_level(level) if level is not None else _guess_level(uni_tokens)

    def norm(tok: str) -> str:
        if tok in ("<unk>", UNK):
            return UNK
        if tok in (BOS, EOS):
            return tok
        return _unescape_char(tok) if lev == "char" else tok

    regular = sorted({norm(t) for t in uni_tokens} - {UNK, BOS, EOS})
    if lev == "char" and any(len(t) != 1 for t in regular):
        raise ValueError(f"level: {path!r} has multi-character unigrams; read it with level='word'")
    vocab = Vocabulary(regular, lev)
    grams = _gram_dicts(entries, vocab, norm, path)
    missing_unk = (vocab.unk_id,) not in grams[1]
    V = len(vocab)
    keys: list[np.ndarray] = [np.zeros(1, dtype=np.int64), np.arange(V, dtype=np.int64)]
    prob: list[np.ndarray] = [np.ones(1)]
    bow: list[np.ndarray] = [np.ones(1)]
    p1, b1 = np.zeros(V), np.ones(V)
    for (w,), (lp, lb) in grams[1].items():
        p1[w], b1[w] = _from_log10(lp), _from_log10(lb)
    if missing_unk:  # SRILM without -unk: KenLM's substitute for <unk>
        p1[vocab.unk_id] = 10.0 ** MISSING_UNK_LOG10
    prob.append(p1)
    bow.append(b1)
    row_of_prev = {(i,): i for i in range(V)}
    for k in range(2, order + 1):
        ids = list(grams[k])
        vals = np.array([grams[k][g] for g in ids], dtype=np.float64).reshape(len(ids), 2)
        missing = [g for g in ids if g[:-1] not in row_of_prev]
        if missing:
            toks = " ".join(_arpa_token(vocab.tokens[t], lev) for t in missing[0])
            raise ValueError(f"path: malformed ARPA file {path!r}: {k}-gram {toks!r} has no {k - 1}-gram "
                             "prefix entry (its context); KenLM and SRILM need it too")
        key = np.array([row_of_prev[g[:-1]] * V + g[-1] for g in ids], dtype=np.int64)
        srt = np.argsort(key, kind="stable")
        keys.append(key[srt])
        prob.append(_from_log10(vals[srt, 0]))
        bow.append(_from_log10(vals[srt, 1]))
        row_of_prev = {ids[int(j)]: r for r, j in enumerate(srt)}
    bow[order] = np.ones(keys[order].size)
    model = NgramModel(order, lev, "kneser-ney")
    model.estimator = "arpa"
    # files written by earlier fusedrnn versions list "<s> <s>" bigrams: their sentences start with n-1 <s>
    n_bos = order - 1 if order > 1 and (vocab.bos_id, vocab.bos_id) in grams[2] else min(order - 1, 1)
    model.padding = Padding(n_bos, 1, n_bos)
    if n_bos <= 1:
        prob[1][vocab.bos_id] = 0.0  # only a context: SRILM writes -99, KenLM's lmplz 0
    model._install(vocab, keys, None, BackoffTables(prob, bow, 1.0))
    if prob[1][vocab.bos_id] > 0:
        model.in_vocab[vocab.bos_id] = True
    return model


def _from_log10(lp):
    """``10 ** lp``, with ``-99`` (how zero is written) meaning 0 (scalars or arrays)."""
    lp = np.asarray(lp, dtype=np.float64)
    return np.where(lp == LOG_ZERO, 0.0, 10.0 ** lp)


def _gram_dicts(entries: list[list[Entry]], vocab: Vocabulary, norm: Callable[[str], str],
                path: str) -> list[dict[Gram, tuple[float, float]]]:
    """Per order ``k``: ``{token ids: (log10 P, log10 back-off)}``; rejects unknown tokens and duplicates."""
    out: list[dict[Gram, tuple[float, float]]] = [{}]
    for k in range(1, len(entries)):
        d: dict[Gram, tuple[float, float]] = {}
        for lp, toks, lb in entries[k]:
            normed = [norm(t) for t in toks]
            if k > 1:
                for t, nt in zip(toks, normed):
                    if nt not in vocab:
                        raise ValueError(f"path: malformed ARPA file {path!r}: {k}-gram {' '.join(toks)!r} "
                                         f"uses {t!r}, which has no 1-gram entry")
            g = tuple(vocab.id_of(t) for t in normed)
            if g in d:
                raise ValueError(f"path: malformed ARPA file {path!r}: duplicate {k}-gram entries "
                                 f"({' '.join(toks)!r})")
            d[g] = (lp, lb)
        out.append(d)
    return out
