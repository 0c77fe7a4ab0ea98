"""IMDB sentiment classification (the classic Keras ``imdb_lstm`` example).

Model: Embedding(20000, 128) → LSTM(128, dropout=0.2, recurrent_dropout=0.2) → Dense(1), the
Dense output read as a logit (Keras 3 computes binary cross-entropy from the logit behind a
sigmoid too), Adam, batch 32, reviews cut to their last 80 words (Keras's pre-truncation and
pre-padding), 3 epochs, validated on the 25,000 test reviews.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from fusedrnn import LSTM
from fusedrnn.datasets import imdb
from fusedrnn.layers.core import Dense, Embedding
from fusedrnn.losses import binary_crossentropy
from fusedrnn.optimizers import Adam
from fusedrnn.tasks.resume import starting_history
from fusedrnn.tasks.text_input import require_text
from fusedrnn.training import (History, Sequential, binary_accuracy_from_logits, fit, load_checkpoint,
                               save_checkpoint)

PathLike = Union[str, "os.PathLike[str]"]
TASK = "sentiment"


@dataclass
class SentimentConfig:
    """Hyper-parameters of the sentiment task (defaults: the Keras example's)."""

    num_words: int = 20000
    maxlen: int = 80
    embedding_dim: int = 128
    units: int = 128
    dropout: float = 0.2
    recurrent_dropout: float = 0.2
    batch_size: int = 32
    epochs: int = 3
    learning_rate: float = 0.001
    seed: int = 0
    limit: Optional[int] = None          # reviews per split (smoke runs)
    steps_per_epoch: Optional[int] = None


def loss_from_logits(y: np.ndarray, logits: np.ndarray):
    """Mean binary cross-entropy from the logits (B, 1) and its gradient."""
    return binary_crossentropy(np.asarray(y, dtype=logits.dtype).reshape(logits.shape), logits, from_logits=True)


def build_model(cfg: SentimentConfig) -> Sequential:
    s = cfg.seed
    return Sequential([
        Embedding(cfg.num_words, cfg.embedding_dim, seed=s, name="embedding"),
        LSTM(cfg.units, dropout=cfg.dropout, recurrent_dropout=cfg.recurrent_dropout, seed=s + 1, name="lstm"),
        Dense(1, seed=s + 2, name="logit"),
    ], name="sentiment")


def load_data(cfg: SentimentConfig, data: Optional[PathLike] = None):
    """((x_train, y_train), (x_test, y_test)): padded (N, maxlen) int32 ids and 0/1 labels."""
    (xtr, ytr), (xte, yte) = imdb.load_imdb(data, num_words=cfg.num_words, limit=cfg.limit)
    pad = lambda seqs: imdb.pad_sequences(seqs, maxlen=cfg.maxlen)  # noqa: E731
    return (pad(xtr), np.asarray(ytr, np.int64)), (pad(xte), np.asarray(yte, np.int64))


def train(cfg: SentimentConfig, data: Optional[PathLike] = None, checkpoint: Optional[PathLike] = None,
          plot: Optional[PathLike] = None, progress: bool = True, print_fn: Callable[[str], None] = print,
          resume: bool = False) -> History:
    """Trains the sentiment model; returns the History. See the module docstring. With
    `resume`, continues from `checkpoint` (same settings) up to ``cfg.epochs`` in all."""
    print_fn("reading the IMDB reviews (tokenized once, then cached)...")
    (x, y), (xv, yv) = load_data(cfg, data)
    print_fn(f"{len(y):,} training and {len(yv):,} test reviews, {cfg.num_words:,} words, maxlen {cfg.maxlen}")
    word_index = imdb.get_word_index(data, limit=cfg.limit)  # the index the encoding used
    model = build_model(cfg)
    optimizer = Adam(learning_rate=cfg.learning_rate)
    history = starting_history(resume, checkpoint, model, optimizer, TASK, cfg, print_fn)

    def after_epoch(epoch: int, logs: Dict[str, float]) -> None:
        line = f"epoch {epoch + 1}: loss {logs['loss']:.4f}, accuracy {logs['accuracy']:.4f}"
        if "val_loss" in logs:
            line += f"; test loss {logs['val_loss']:.4f}, test accuracy {logs['val_accuracy']:.4f}"
        print_fn(line + f" ({logs['seconds']:.1f} s)")
        if checkpoint is not None:
            save(checkpoint, model, optimizer, word_index, cfg, history.history)
        if plot is not None:
            from fusedrnn.tasks.plots import plot_history

            plot_history(history.history, plot, "IMDB sentiment, Embedding → LSTM → Dense")

    fit(model, loss_from_logits, optimizer, x, y, batch_size=cfg.batch_size,
        epochs=cfg.epochs, validation_data=(xv, yv),
        metrics={"accuracy": binary_accuracy_from_logits}, seed=cfg.seed, steps_per_epoch=cfg.steps_per_epoch,
        progress=progress, callbacks=[after_epoch], initial_epoch=history.epochs, history=history)
    return history


def save(path: PathLike, model: Sequential, optimizer, word_index: Dict[str, int], cfg: SentimentConfig,
         history: Dict[str, list]) -> None:
    """Checkpoint with the word index of the kept words, so raw text can be scored later."""
    kept = {w: int(r) for w, r in word_index.items() if int(r) + 3 < cfg.num_words}
    meta = {"task": TASK, "word_index": kept, "config": asdict(cfg), "history": history}
    save_checkpoint(path, model, optimizer, meta)


def load(path: PathLike):
    """(model, word_index, config) from a sentiment checkpoint; ValueError for another task's."""
    ckpt = load_checkpoint(path)
    if ckpt.meta.get("task") != TASK:
        raise ValueError(f"checkpoint: {path} is a {ckpt.meta.get('task', 'unknown')!r} checkpoint, not a sentiment one")
    return ckpt.model, ckpt.meta["word_index"], SentimentConfig(**ckpt.meta["config"])


def predict_texts(path: PathLike, texts: Sequence[str]) -> List[float]:
    """Probability that each raw review is positive, from a sentiment checkpoint."""
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of strings, got one string")
    texts = [require_text(f"texts[{i}]", t) for i, t in enumerate(texts)]
    if not texts:
        raise ValueError("texts: expected at least one review, got none")
    model, word_index, cfg = load(path)
    seqs = imdb.encode_texts(texts, word_index, num_words=cfg.num_words)
    x = imdb.pad_sequences(seqs, maxlen=cfg.maxlen)
    logits = model.predict(x).reshape(-1).astype(np.float64)
    return [float(v) for v in 1.0 / (1.0 + np.exp(-logits))]
