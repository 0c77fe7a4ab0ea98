#!/usr/bin/env python3
"""Reference runs: the reference tasks' models trained in TF/Keras on exactly the data the
fusedrnn tasks use, so that their accuracies can be compared on equal terms.

    python benchmarks/keras_reference.py sentiment --seeds 0 1 2     # ~7 minutes per seed on 2 cores

sentiment: Embedding(20000, 128) → LSTM(128, dropout=0.2, recurrent_dropout=0.2) →
Dense(1, sigmoid), Adam, binary cross-entropy, batch 32, 3 epochs, validated on the 25,000 test
reviews, on the arrays of ``fusedrnn.tasks.sentiment.load_data`` (the raw reviews encoded like
Keras's imdb.npz). Prints the test accuracy after every epoch, like `fusedrnn train sentiment`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import configure_threads  # noqa: E402


def sentiment(seed: int, epochs: int, data: Optional[str]) -> List[float]:
    import keras

    from fusedrnn.tasks.sentiment import SentimentConfig, load_data

    cfg = SentimentConfig(seed=seed, epochs=epochs)
    (x, y), (xv, yv) = load_data(cfg, data)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((cfg.maxlen,), dtype="int32"),
                              keras.layers.Embedding(cfg.num_words, cfg.embedding_dim),
                              keras.layers.LSTM(cfg.units, dropout=cfg.dropout, recurrent_dropout=cfg.recurrent_dropout),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y.astype("float32"), batch_size=cfg.batch_size, epochs=cfg.epochs,
                        validation_data=(xv, yv.astype("float32")), verbose=2)
    return [float(a) for a in history.history["val_accuracy"]]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["sentiment"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default: 0)")
    p.add_argument("--epochs", type=int, default=3, help="epochs (default: 3, the task's)")
    p.add_argument("--data", default=None, help="data file or folder (default: $FUSEDRNN_DATA, then the user cache)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads (default: all cores)")
    args = p.parse_args(argv)
    configure_threads(args.threads)
    for seed in args.seeds:
        accuracies = sentiment(seed, args.epochs, args.data)
        print(f"seed {seed}: test accuracy per epoch " + ", ".join(f"{a:.4f}" for a in accuracies), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
