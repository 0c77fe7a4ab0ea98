"""Command-line glue of the reference tasks: ``fusedrnn train``, ``predict`` and ``generate``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Dict

DEFAULT_DIR = "fusedrnn-runs"


def _fail(cmd: str, err: BaseException) -> int:
    print(f"fusedrnn {cmd}: error: {err}", file=sys.stderr)
    return 1


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None:
        import fusedrnn

        fusedrnn.set_num_threads(args.threads)


def _outputs(args: argparse.Namespace, task: str) -> Dict[str, str]:
    out = args.out_dir or DEFAULT_DIR
    return {"checkpoint": args.checkpoint or os.path.join(out, f"{task}.npz"),
            "plot": args.plot or os.path.join(out, f"{task}.png")}


def _common_train_args(p: argparse.ArgumentParser, epochs: int, batch: int,
                       data_default: str = "$FUSEDRNN_DATA, then the user cache") -> None:
    p.add_argument("--data", default=None, help=f"data file or folder (default: {data_default})")
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default: {epochs})")
    p.add_argument("--batch-size", type=int, default=batch, help=f"batch size (default: {batch})")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, shuffling and sampling (default: 0)")
    p.add_argument("--steps", type=int, default=None, help="stop each epoch after this many steps (quick runs)")
    p.add_argument("--limit", type=int, default=None, help="use only this much of the data (quick runs)")
    p.add_argument("--out-dir", default=None, help=f"where the checkpoint and plot go (default: ./{DEFAULT_DIR})")
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: OUT_DIR/<task>.npz)")
    p.add_argument("--plot", default=None, help="loss plot PNG path (default: OUT_DIR/<task>.png)")
    p.add_argument("--threads", type=int, default=None, help="threads for the kernels (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint (weights, optimizer state and history; "
                        "same settings) up to --epochs in all")


def _train(task: str, config: Callable[[Any, argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """The ``fusedrnn train <task>`` command: config(task module, args) gives the task's config."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(f"fusedrnn.tasks.{task}")
        _threads(args)
        paths = _outputs(args, task)
        history = module.train(config(module, args), args.data, paths["checkpoint"], paths["plot"],
                               progress=not args.no_progress, resume=args.resume)
        if history.epochs:
            print(f"wrote {paths['checkpoint']} and {paths['plot']}")
        return 0
    return run


def _textgen_config(textgen: Any, args: argparse.Namespace) -> Any:
    return textgen.TextgenConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, limit=args.limit,
                                 steps_per_epoch=args.steps, learning_rate=args.learning_rate, units=args.units,
                                 sample_length=args.sample_length, cell=args.cell)


def _sentiment_config(sentiment: Any, args: argparse.Namespace) -> Any:
    return sentiment.SentimentConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                     limit=args.limit, steps_per_epoch=args.steps, num_words=args.num_words,
                                     maxlen=args.maxlen)


def _translate_config(translate: Any, args: argparse.Namespace) -> Any:
    return translate.TranslateConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                     num_examples=args.limit if args.limit is not None else args.num_examples,
                                     units=args.units, embedding_dim=args.embedding_dim, steps_per_epoch=args.steps)


def _translate(args: argparse.Namespace) -> int:
    from fusedrnn.tasks import translate

    _threads(args)
    translator = translate.load(args.checkpoint)
    translator.model.decoding_precision = "bfloat16" if args.bfloat16 else "float32"
    if args.plot and len(args.sentence) != 1:
        raise ValueError("--plot: give exactly one sentence to plot its attention")
    for sentence in args.sentence:
        text, result, words = translator.translate(sentence, beam=args.beam)
        print(text)
        if args.plot:
            from fusedrnn.tasks.plots import plot_attention

            plot_attention(result.attention, words, translator.output_words(result), args.plot,
                           title=f"{sentence} → {text}")
            print(f"wrote {args.plot}")
    return 0


def _evaluate_translate(args: argparse.Namespace) -> int:
    from fusedrnn.tasks import translate

    _threads(args)
    translator = translate.load(args.checkpoint)
    translator.model.decoding_precision = "bfloat16" if args.bfloat16 else "float32"
    cfg = translate.TranslateConfig(**load_meta_config(args.checkpoint))
    for beam in sorted(set([1] + ([args.beam] if args.beam > 1 else []))):
        score, n = translate.evaluate_bleu(translator, cfg, args.data, beam=beam, limit=args.limit,
                                           progress=not args.no_progress)
        label = "greedy" if beam == 1 else f"beam {beam}"
        print(f"BLEU ({label}, {n:,} validation sentences): {score:.2f}")
    return 0


def load_meta_config(path: str) -> Dict[str, Any]:
    from fusedrnn.training import load_checkpoint

    return load_checkpoint(path).meta["config"]


def _predict_sentiment(args: argparse.Namespace) -> int:
    from fusedrnn.tasks import sentiment
    from fusedrnn.tasks.text_input import require_text

    texts = list(args.text)
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            texts.append(f.read())
    if not texts:
        raise ValueError("text: give at least one review (as an argument or with --file)")
    for i, text in enumerate(texts):
        source = f"--file {args.file}" if args.file and i == len(texts) - 1 else f"text #{i + 1}"
        require_text(source, text)
    for text, p in zip(texts, sentiment.predict_texts(args.checkpoint, texts)):
        label = "positive" if p >= 0.5 else "negative"
        snippet = text if len(text) <= 60 else text[:57] + "..."
        print(f"{p:.3f}  {label:<8}  {snippet}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import numpy as np

    from fusedrnn.tasks import textgen

    model, vocab, cfg = textgen.load(args.checkpoint)
    rng = np.random.default_rng(args.seed)
    text = textgen.generate(model, vocab, args.seed_text, args.length, args.temperature, rng, cfg.maxlen,
                            precision="bfloat16" if args.bfloat16 else "float32")
    print(args.seed_text + text)
    return 0


def _guard(name: str, fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except KeyboardInterrupt:
            print(f"fusedrnn {name}: interrupted (the last checkpoint written is intact)", file=sys.stderr)
            return 130
        except (ValueError, TypeError, OSError, RuntimeError) as err:
            return _fail(name, err)
    return run


def add_task_parsers(sub: Any) -> None:
    """Adds ``train``, ``predict`` and ``generate`` to the `fusedrnn` command's subparsers."""
    train = sub.add_parser("train", help="train a reference task (textgen, sentiment, translate)",
                           description="Train one of the reference tasks on real data, with a progress bar, a "
                                       "checkpoint after every epoch and a PNG plot of the curves.")
    tasks = train.add_subparsers(dest="task", metavar="TASK")

    tg = tasks.add_parser("textgen", help="character LSTM on the Nietzsche text (built in)",
                          description="LSTM(128) → Dense(vocabulary) over 40-character windows (step 3) of the "
                                      "Nietzsche text shipped with fusedrnn; RMSprop(0.01), batch 128. Prints "
                                      "samples at temperatures 0.2, 0.5, 1.0 and 1.2 after every epoch and the "
                                      "validation bits per character on the held-out last 5% of the text.")
    _common_train_args(tg, epochs=3, batch=128, data_default="the copy shipped with fusedrnn")
    tg.add_argument("--learning-rate", type=float, default=0.01, help="RMSprop learning rate (default: 0.01)")
    tg.add_argument("--units", type=int, default=128, help="LSTM units (default: 128)")
    tg.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="recurrent cell (default: lstm)")
    tg.add_argument("--sample-length", type=int, default=200,
                    help="characters sampled per temperature after each epoch (default: 200)")
    tg.set_defaults(func=_guard("train textgen", _train("textgen", _textgen_config)))

    st = tasks.add_parser("sentiment", help="IMDB reviews: Embedding → LSTM → Dense",
                          description="Embedding(20000, 128) → LSTM(128, dropout=0.2, recurrent_dropout=0.2) → "
                                      "Dense(1) on the 25,000 IMDB training reviews (last 80 words), Adam, batch "
                                      "32; validated on the 25,000 test reviews. Reads aclImdb.tar.gz (or the "
                                      "extracted aclImdb/ folder, or Keras's imdb.npz).")
    _common_train_args(st, epochs=3, batch=32)
    st.add_argument("--num-words", type=int, default=20000, help="vocabulary size (default: 20000)")
    st.add_argument("--maxlen", type=int, default=80, help="words kept per review (default: 80)")
    st.set_defaults(func=_guard("train sentiment", _train("sentiment", _sentiment_config)))

    tr = tasks.add_parser("translate", help="Spanish→English: GRU encoder-decoder with Bahdanau attention",
                          description="Embedding(256) → GRU encoder; per target step Bahdanau attention, the "
                                      "context and the target embedding → GRU → Dense(vocabulary); teacher "
                                      "forcing, masked cross-entropy, Adam. Reads spa-eng/spa.txt. Defaults: "
                                      "the first 30,000 pairs, 1024 units, batch 64, 10 epochs (long on a CPU: "
                                      "use --limit, --units and --epochs for a quick run).")
    _common_train_args(tr, epochs=10, batch=64)
    tr.add_argument("--num-examples", type=int, default=30000, help="pairs used, from the top (default: 30000)")
    tr.add_argument("--units", type=int, default=1024, help="GRU and attention units (default: 1024)")
    tr.add_argument("--embedding-dim", type=int, default=256, help="embedding size (default: 256)")
    tr.set_defaults(func=_guard("train translate", _train("translate", _translate_config)))
    train.set_defaults(func=lambda a: _missing(train))

    tl = sub.add_parser("translate", help="translate Spanish sentences with a trained model",
                        description="Translates Spanish sentences with a checkpoint of `fusedrnn train translate` "
                                    "(greedy, or beam search with --beam) and can save the attention heat-map.")
    tl.add_argument("--checkpoint", required=True, help="checkpoint written by `fusedrnn train translate`")
    tl.add_argument("--beam", type=int, default=1, help="beam width (default: 1 = greedy)")
    tl.add_argument("--plot", default=None, help="save the attention heat-map of the (single) sentence to this PNG")
    tl.add_argument("--threads", type=int, default=None, help="threads for the kernels (default: all cores)")
    tl.add_argument("--bfloat16", action="store_true",
                    help="keep the GRUs' and the per-word projections' weights in bfloat16 while decoding "
                         "(half the bytes per word)")
    tl.add_argument("sentence", nargs="+", help="Spanish sentences")
    tl.set_defaults(func=_guard("translate", _translate))

    predict = sub.add_parser("predict", help="score raw text with a trained model")
    psub = predict.add_subparsers(dest="task", metavar="TASK")
    ps = psub.add_parser("sentiment", help="probability that a review is positive",
                         description="Scores raw reviews with a sentiment checkpoint (its saved word index "
                                     "tokenizes the text as in training).")
    ps.add_argument("--checkpoint", required=True, help="checkpoint written by `fusedrnn train sentiment`")
    ps.add_argument("--file", default=None, help="also score the review in this text file")
    ps.add_argument("text", nargs="*", help="reviews to score")
    ps.set_defaults(func=_guard("predict sentiment", _predict_sentiment))
    predict.set_defaults(func=lambda a: _missing(predict))

    gen = sub.add_parser("generate", help="generate text from a trained character model",
                         description="Continues --seed-text character by character from a textgen checkpoint, "
                                     "sampling from softmax(logits / temperature).")
    gen.add_argument("--checkpoint", required=True, help="checkpoint written by `fusedrnn train textgen`")
    gen.add_argument("--seed-text", default="the meaning of life is ", help="text to continue (lower-cased)")
    gen.add_argument("--length", type=int, default=400, help="characters to generate (default: 400)")
    gen.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (default: 0.5)")
    gen.add_argument("--seed", type=int, default=None, help="random seed of the sampling")
    gen.add_argument("--bfloat16", action="store_true",
                     help="keep the LSTM's weights in bfloat16 while sampling (half the bytes per character; "
                          "probabilities within a few 1e-3 of float32's)")
    gen.set_defaults(func=_guard("generate", _generate))


def add_evaluate_translate_parser(evaluate_sub: Any) -> None:
    """Adds ``fusedrnn evaluate translate``."""
    ev = evaluate_sub.add_parser("translate", help="corpus BLEU of a translation checkpoint on its validation split",
                                 description="Decodes the validation split the checkpoint was trained with (same "
                                             "file, seed and size) greedily and, with --beam K, with beam search, "
                                             "and prints corpus BLEU-4 (sacrebleu, on the tokenizer's tokens).")
    ev.add_argument("--checkpoint", required=True, help="checkpoint written by `fusedrnn train translate`")
    ev.add_argument("--data", default=None, help="spa.txt or its folder (default: $FUSEDRNN_DATA, then the user cache)")
    ev.add_argument("--beam", type=int, default=4, help="beam width for the second score (default: 4; 1 = greedy only)")
    ev.add_argument("--limit", type=int, default=None, help="score only the first N validation sentences")
    ev.add_argument("--threads", type=int, default=None, help="threads for the kernels (default: all cores)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument("--bfloat16", action="store_true",
                    help="decode with the GRUs' and the per-word projections' weights in bfloat16 (to see what it "
                         "costs in BLEU)")
    ev.set_defaults(func=_guard("evaluate translate", _evaluate_translate))


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
