"""Command-line front end: ``fusedrnn ngram train|explain|generate`` and ``fusedrnn evaluate lm``.

The main ``fusedrnn`` parser calls :func:`add_ngram_parser` and
:func:`add_evaluate_lm_parser`; every subcommand sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from fusedrnn.ngram.arpa import read_arpa, write_arpa
from fusedrnn.ngram.estimators import BACKOFF_ESTIMATORS, ESTIMATORS
from fusedrnn.ngram.evaluate import (
    DEFAULT_ESTIMATORS,
    LmRow,
    format_table,
    ngram_rows,
    plot_perplexity,
    split_holdout,
)
from fusedrnn.ngram.model import NgramModel

DATA_ENV = "FUSEDRNN_DATA"
DATA_FILE = "nietzsche.txt"


class NeuralModelUnavailable(RuntimeError):
    """Raised by :func:`neural_bits_per_char` when no neural text model can be evaluated."""


def neural_bits_per_char(checkpoint_path: str, text: str) -> float:
    """Bits per character of a trained character LSTM/GRU checkpoint on ``text``.

    Delegates to :func:`fusedrnn.tasks.textgen.bits_per_char` (checkpoints of
    ``fusedrnn train textgen``); a checkpoint that cannot be used raises
    :class:`NeuralModelUnavailable` with the reason, and ``fusedrnn evaluate lm``
    prints that reason in the row.
    """
    from fusedrnn.tasks import textgen

    try:
        return float(textgen.bits_per_char(checkpoint_path, text))
    except (ValueError, OSError) as err:
        raise NeuralModelUnavailable(f"({err})") from None


def _fail(cmd: str, err: BaseException) -> int:
    print(f"fusedrnn {cmd}: error: {err}", file=sys.stderr)
    return 1


def _read_corpus(path: str, unit: str, level: str, lower: bool) -> list[str]:
    if not os.path.isfile(path):
        raise ValueError(f"corpus: file {path!r} does not exist")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if lower:
        text = text.lower()
    if unit == "auto":
        unit = "text" if level == "char" else "line"
    if unit == "text":
        return [text]
    return [line for line in text.split("\n") if line.strip()]


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def cmd_train(args: argparse.Namespace) -> int:
    """``fusedrnn ngram train``: fit on a corpus, write ARPA."""
    try:
        if args.estimator not in BACKOFF_ESTIMATORS or args.estimator == "stupid-backoff":
            raise ValueError(
                f"estimator: {args.estimator!r} cannot be written as ARPA; "
                "use kneser-ney, modified-kneser-ney or katz"
            )
        t0 = time.perf_counter()
        sents = _read_corpus(args.corpus, args.unit, args.level, args.lower)
        model = NgramModel(args.order, args.level, args.estimator, discount=args.discount)
        model.fit(sents)
        write_arpa(model, args.output)
        sizes = ", ".join(f"{k}-grams: {model.keys[k].size}" for k in range(1, model.order + 1))
        print(f"trained {model.order}-gram {model.estimator} model ({model.level} level) on "
              f"{len(sents)} sequence(s) in {time.perf_counter() - t0:.2f} s; |V| = {model.vocabulary_size}")
        print(sizes)
        print(f"wrote {args.output} (SRILM/KenLM convention: one <s> per sentence)")
        return 0
    except (ValueError, TypeError, OSError) as err:
        return _fail("ngram train", err)


def cmd_explain(args: argparse.Namespace) -> int:
    """``fusedrnn ngram explain``: chain-rule decomposition of a sentence."""
    try:
        model = read_arpa(args.model, level=args.level)
        sentence = args.sentence.lower() if args.lower else args.sentence
        print(model.explain(sentence))
        return 0
    except (ValueError, TypeError, OSError) as err:
        return _fail("ngram explain", err)


def cmd_generate(args: argparse.Namespace) -> int:
    """``fusedrnn ngram generate``: sample text from an ARPA model."""
    try:
        model = read_arpa(args.model, level=args.level)
        text = model.generate(args.num, seed_text=args.seed_text, temperature=args.temperature, rng=args.seed)
        if args.seed_text:
            sep = "" if model.level == "char" else " "
            text = args.seed_text + sep + text
        print(text)
        return 0
    except (ValueError, TypeError, OSError) as err:
        return _fail("ngram generate", err)


def add_ngram_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``ngram`` with subcommands ``train``, ``explain``, ``generate`` to ``subparsers``."""
    p = subparsers.add_parser(
        "ngram",
        help="count-based n-gram language models (ARPA files)",
        description="Train, inspect and sample count-based n-gram language models stored as ARPA files.",
    )
    sub = p.add_subparsers(dest="ngram_command", metavar="{train,explain,generate}")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="fit an n-gram model on a text file and write it as ARPA",
        description="Fit a word- or character-level n-gram model on CORPUS and write it in ARPA format. "
                    "Sentences are the non-empty lines (word level) or the whole file (char level) "
                    "unless --unit says otherwise; each is padded as SRILM and KenLM do, with one <s> "
                    "(the context of the first token at every order) and one </s>, so KenLM's "
                    "Model(MODEL.arpa).score(sentence) gives the same log10 probability.",
    )
    t.add_argument("corpus", metavar="CORPUS", help="UTF-8 text file to train on")
    t.add_argument("-o", "--output", required=True, metavar="MODEL.arpa", help="ARPA file to write")
    t.add_argument("--order", type=_positive_int, default=3, help="n-gram order n >= 1 (default 3)")
    t.add_argument("--level", choices=["word", "char"], default="word",
                   help="tokens are whitespace-separated words or single characters (default word)")
    t.add_argument("--estimator", default="kneser-ney",
                   choices=["kneser-ney", "modified-kneser-ney", "katz"],
                   help="smoothing with an ARPA back-off form (default kneser-ney)")
    t.add_argument("--discount", type=float, default=None,
                   help="Kneser-Ney discount D in (0, 1]; default: n1/(n1+2 n2) per order")
    t.add_argument("--unit", choices=["auto", "line", "text"], default="auto",
                   help="what one sentence is: a line, or the whole text (auto: text for char, line for word)")
    t.add_argument("--lower", action="store_true", help="lower-case the corpus first")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "explain",
        help="show P(sentence) as a product of n-gram factors",
        description="Print the chain-rule decomposition P(w1 | <s>) * P(w2 | <s> w1) * ... * P(</s> | ..) "
                    "of SENTENCE under the ARPA model, with each factor, its log2 and the order it backed off to. "
                    "The sentence starts with one <s>, as in SRILM and KenLM (files of KenLM's lmplz and "
                    "SRILM's ngram-count are read too; an out-of-vocabulary word is scored as <unk>).",
    )
    e.add_argument("model", metavar="MODEL.arpa", help="ARPA file")
    e.add_argument("sentence", metavar="SENTENCE", help="the sentence, e.g. \"i am a student\"")
    e.add_argument("--level", choices=["word", "char"], default=None,
                   help="token level of the model (default: guessed from the unigrams)")
    e.add_argument("--lower", action="store_true", help="lower-case the sentence first")
    e.set_defaults(func=cmd_explain)

    g = sub.add_parser(
        "generate",
        help="sample text from an ARPA model",
        description="Sample NUM tokens from the model; </s> ends a sentence and prints a newline.",
    )
    g.add_argument("model", metavar="MODEL.arpa", help="ARPA file")
    g.add_argument("-n", "--num", type=_positive_int, default=100, help="number of tokens to sample (default 100)")
    g.add_argument("--seed-text", default=None, help="text that conditions the first tokens")
    g.add_argument("--temperature", type=float, default=1.0,
                   help="sample from P**(1/T) renormalised; < 1 sharper, > 1 flatter (default 1)")
    g.add_argument("--seed", type=int, default=None, help="random seed for reproducible samples")
    g.add_argument("--level", choices=["word", "char"], default=None,
                   help="token level of the model (default: guessed from the unigrams)")
    g.set_defaults(func=cmd_generate)


def find_nietzsche(data: str | None) -> Path:
    """Path of nietzsche.txt: ``--data``, then ``$FUSEDRNN_DATA/nietzsche.txt``, then the packaged copy."""
    if data:
        p = Path(data)
        if not p.is_file():
            raise ValueError(f"data: file {str(p)!r} does not exist")
        return p
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env) / DATA_FILE
        if p.is_file():
            return p
    pkg = Path(__file__).resolve().parents[1] / "data" / DATA_FILE
    if pkg.is_file():
        return pkg
    looked = ([str(Path(env) / DATA_FILE)] if env else []) + [str(pkg)]
    raise ValueError(
        f"data: {DATA_FILE} not found (looked at {', '.join(looked)}); pass --data PATH, "
        f"set {DATA_ENV} to a directory containing {DATA_FILE}, or put the file at {pkg}"
    )


def _orders(s: str) -> list[int]:
    try:
        if "-" in s:
            a, b = s.split("-", 1)
            out = list(range(int(a), int(b) + 1))
        else:
            out = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range like 1-8 or a list like 1,3,5, got {s!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"orders must be >= 1, got {s!r}")
    return out


def cmd_evaluate_lm(args: argparse.Namespace) -> int:
    """``fusedrnn evaluate lm``: n-gram vs neural perplexity / bits per char on Nietzsche."""
    try:
        from tqdm import tqdm

        path = find_nietzsche(args.data)
        text = path.read_text(encoding="utf-8").lower()
        train, test = split_holdout(text, args.holdout)
        estimators = [s.strip() for s in args.estimators.split(",") if s.strip()]
        for s in estimators:
            if s not in ESTIMATORS:
                raise ValueError(f"estimators: unknown estimator {s!r}; choose from {', '.join(ESTIMATORS)}")
        print(f"{path}: {len(train)} training characters, {len(test)} held-out characters (last "
              f"{args.holdout:.0%}, lower-cased)")
        with tqdm(total=len(estimators) * len(args.orders), desc="n-gram models", unit="model",
                  disable=args.quiet) as bar:
            rows = ngram_rows(train, test, args.orders, estimators, args.k,
                              progress=lambda msg: (bar.set_postfix_str(msg), bar.update(1)))
        for label, ckpt in (("char LSTM", args.lstm_checkpoint), ("char GRU", args.gru_checkpoint)):
            if not ckpt:
                continue
            try:
                bpc = neural_bits_per_char(ckpt, test)
                rows.append(LmRow(label, None, 2.0 ** bpc, bpc, ckpt))
            except NeuralModelUnavailable as err:
                rows.append(LmRow(label, None, None, None, str(err)))
        print(format_table(rows))
        if args.plot:
            plot_perplexity(rows, args.plot)
            print(f"wrote {args.plot}")
        return 0
    except (ValueError, TypeError, OSError) as err:
        return _fail("evaluate lm", err)


def add_evaluate_lm_parser(evaluate_subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``lm`` under ``fusedrnn evaluate``."""
    p = evaluate_subparsers.add_parser(
        "lm",
        help="perplexity and bits/char of character n-gram models (and LSTM/GRU) on Nietzsche",
        description="Fit character n-gram models (n = 1..8; MLE, add-k, Kneser-Ney) on the lower-cased "
                    "Nietzsche text minus a held-out tail, and print perplexity and bits per character "
                    "on the tail, next to trained character LSTM/GRU checkpoints when given. "
                    "Each part is one sequence, padded with one <s> and one </s> (SRILM/KenLM convention). "
                    f"Data: --data, else ${DATA_ENV}/{DATA_FILE}, else the copy shipped in fusedrnn/data.",
    )
    p.add_argument("--data", default=None, metavar="PATH", help=f"path to {DATA_FILE}")
    p.add_argument("--orders", type=_orders, default=list(range(1, 9)),
                   help="n-gram orders, a range 1-8 or a list 1,3,5 (default 1-8)")
    p.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                   help=f"comma-separated estimators (default {','.join(DEFAULT_ESTIMATORS)})")
    p.add_argument("--k", type=float, default=0.01, help="pseudo-count of add-k (default 0.01)")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="fraction of the text at its end held out for evaluation (default 0.1)")
    p.add_argument("--lstm-checkpoint", default=None, metavar="PATH", help="trained character LSTM checkpoint")
    p.add_argument("--gru-checkpoint", default=None, metavar="PATH", help="trained character GRU checkpoint")
    p.add_argument("--plot", default="lm_perplexity.png", metavar="PNG",
                   help="where to write the perplexity-vs-n plot (default lm_perplexity.png; '' to skip)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate_lm)
