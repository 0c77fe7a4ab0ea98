"""The `fusedrnn` command line.

    fusedrnn train textgen|sentiment|translate   train a reference task (progress bar, checkpoint, plot)
    fusedrnn translate ...             translate Spanish with a trained model (greedy or beam, heat-map)
    fusedrnn evaluate translate ...    corpus BLEU of a translation checkpoint
    fusedrnn predict sentiment ...     score raw reviews with a trained sentiment model
    fusedrnn generate ...              sample text from a trained character model
    fusedrnn demo                      check the fused kernels against NumPy and time them
    fusedrnn info                      version, threads and BLAS of this install
    fusedrnn ngram train|explain|generate ...   count-based language models (fusedrnn.ngram)
    fusedrnn evaluate lm               n-gram perplexity table on the Nietzsche text
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _cmd_demo(args: argparse.Namespace) -> int:
    import fusedrnn
    from fusedrnn.demo import run_demo

    if args.threads is not None:
        fusedrnn.set_num_threads(args.threads)
    run_demo(seed=args.seed, repeats=args.repeats)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np
    import scipy_openblas32

    import fusedrnn

    print(f"fusedrnn {fusedrnn.__version__}")
    print(f"threads: {fusedrnn.get_num_threads()} (set with fusedrnn.set_num_threads or OMP_NUM_THREADS)")
    print(f"BLAS: scipy-openblas32 {scipy_openblas32.__version__} ({scipy_openblas32.get_lib_dir()})")
    print(f"NumPy: {np.__version__}")
    from fusedrnn import _device

    cuda = "cuda" if _device.cuda_available() else f"no cuda ({_device.cuda_unavailable_reason()})"
    print(f"backends: cpu, {cuda}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fusedrnn.ngram.cli import add_evaluate_lm_parser, add_ngram_parser

    parser = argparse.ArgumentParser(
        prog="fusedrnn",
        description="Fused SimpleRNN/LSTM/GRU kernels, numerically identical to Keras, and their tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="check the fused kernels against the NumPy reference and time them",
                          description="Runs every cell on a random float64 problem with the fused kernels and "
                                      "the NumPy reference, prints the largest difference of outputs and "
                                      "gradients, then times float32 forward and forward+backward at "
                                      "B=32 T=80 I=H=128.")
    demo.add_argument("--threads", type=int, default=None, help="threads for the kernels (default: all cores)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the random problem (default: 0)")
    demo.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (default: 10)")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="version, threads and BLAS of this install")
    info.set_defaults(func=_cmd_info)

    from fusedrnn.tasks.cli import add_task_parsers

    add_task_parsers(sub)
    add_ngram_parser(sub)
    evaluate = sub.add_parser("evaluate", help="evaluate models", description="Evaluate models.")
    evaluate_sub = evaluate.add_subparsers(dest="evaluate_command", metavar="WHAT")
    add_evaluate_lm_parser(evaluate_sub)
    from fusedrnn.tasks.cli import add_evaluate_translate_parser

    add_evaluate_translate_parser(evaluate_sub)
    evaluate.set_defaults(func=lambda a: _missing_subcommand(evaluate))
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
