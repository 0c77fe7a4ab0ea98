"""Character-level text generation on the Nietzsche corpus (the classic Keras example).

Model: LSTM(128) (or GRU with ``cell="gru"``) over 40-character windows → Dense(vocabulary) logits, trained to predict the
next character with sparse categorical cross-entropy and RMSprop(learning_rate=0.01), batch
128, windows every 3 characters. The characters enter the LSTM as integer ids: one-hot input
without the one-hot matrix (the input projection is a row gather, see :mod:`fusedrnn.ops`).
The last 5% of the text is held out; validation loss is reported in bits per character.

After each epoch the trainer prints samples at temperatures 0.2, 0.5, 1.0 and 1.2 from a
random seed window, saves the checkpoint and redraws the loss plot.
"""

from __future__ import annotations

import contextlib

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np

from fusedrnn import GRU, LSTM, no_grad
from fusedrnn.datasets import nietzsche
from fusedrnn.layers.core import Dense
from fusedrnn.losses import sparse_categorical_crossentropy
from fusedrnn.optimizers import RMSprop
from fusedrnn.tasks.resume import starting_history
from fusedrnn.tasks.text_input import require_text
from fusedrnn.training import (Sequential, evaluate, fit, load_checkpoint, save_checkpoint,
                               sparse_categorical_accuracy)

PathLike = Union[str, "os.PathLike[str]"]
TEMPERATURES = (0.2, 0.5, 1.0, 1.2)
TASK = "textgen"


@dataclass
class TextgenConfig:
    """Hyper-parameters of the text-generation task (defaults: the Keras example's)."""

    maxlen: int = 40
    step: int = 3
    units: int = 128
    cell: str = "lstm"               # or "gru"
    batch_size: int = 128
    epochs: int = 3
    learning_rate: float = 0.01
    val_fraction: float = 0.05
    seed: int = 0
    limit: Optional[int] = None      # use only the first `limit` characters (smoke runs)
    sample_length: int = 200         # characters generated per temperature after each epoch
    steps_per_epoch: Optional[int] = None


def loss_from_logits(y: np.ndarray, logits: np.ndarray):
    """Mean next-character cross-entropy (nats) and its gradient w.r.t. the logits."""
    return sparse_categorical_crossentropy(y, logits, from_logits=True)


def build_model(vocab_size: int, units: int = 128, seed: Optional[int] = None, cell: str = "lstm") -> Sequential:
    """LSTM(units) (or GRU) over one-hot character ids → Dense(vocab_size) logits, built for `vocab_size`."""
    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell: expected 'lstm' or 'gru', got {cell!r}")
    recurrent = (LSTM if cell == "lstm" else GRU)(units, seed=seed, name=cell)
    recurrent.build(vocab_size)
    return Sequential([recurrent, Dense(vocab_size, seed=None if seed is None else seed + 1, name="logits")],
                      name="textgen")


def sample_index(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Draws a character id from softmax(logits / temperature) (the Keras example's reweighting)."""
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


@no_grad()
def generate(model: Sequential, vocab: "nietzsche.CharVocab", seed_text: str, length: int, temperature: float,
             rng: np.random.Generator, maxlen: int = 40, precision: str = "float32") -> str:
    """`length` characters continuing `seed_text`, each predicted from the last `maxlen` ones.

    The seed is lower-cased; characters outside the vocabulary raise ValueError naming them.
    Seeds shorter than `maxlen` are used as they are (the LSTM accepts any window length).
    `precision` 'bfloat16' keeps the recurrent weights in bfloat16 while sampling (half the bytes;
    probabilities within a few 1e-3 of float32's, so a sample may take another turn).
    """
    if length < 0:
        raise ValueError(f"length: expected a non-negative integer, got {length!r}")
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision: expected 'float32' or 'bfloat16', got {precision!r}")
    seed_text = require_text("seed_text", seed_text).lower()
    window = list(vocab.encode(seed_text[-maxlen:]))
    out = []
    with contextlib.ExitStack() as packing:  # the recurrent weights packed once for every character
        for layer in model.layers:
            if hasattr(layer, "packed_calls"):
                packing.enter_context(layer.packed_calls(precision=precision))
        for _ in range(length):
            logits = model(np.asarray([window], dtype=np.int32), training=False)[0]
            nxt = sample_index(logits, temperature, rng)
            out.append(nxt)
            window = (window + [nxt])[-maxlen:]
    return vocab.decode(out)


def _windows(ids: np.ndarray, cfg: TextgenConfig):
    return nietzsche.make_windows(ids, maxlen=cfg.maxlen, step=cfg.step)


def train(cfg: TextgenConfig, data: Optional[PathLike] = None, checkpoint: Optional[PathLike] = None,
          plot: Optional[PathLike] = None, progress: bool = True, print_fn: Callable[[str], None] = print,
          temperatures: Sequence[float] = TEMPERATURES, resume: bool = False):
    """Trains the character LSTM; returns the History. See the module docstring. With
    `resume`, continues from `checkpoint` (same settings) up to ``cfg.epochs`` in all."""
    text = nietzsche.load_text(data)
    if cfg.limit is not None:
        text = text[:cfg.limit]
    vocab = nietzsche.CharVocab.from_text(text)
    train_text, val_text = nietzsche.train_val_split(text, cfg.val_fraction)
    x, y = _windows(vocab.encode(train_text), cfg)
    xv, yv = _windows(vocab.encode(val_text), cfg)
    if len(y) == 0:
        raise ValueError(f"limit: the text is too short for windows of {cfg.maxlen} characters")
    print_fn(f"corpus: {len(text):,} characters, {len(vocab)} distinct; {len(y):,} training windows, "
             f"{len(yv):,} validation windows")
    model = build_model(len(vocab), cfg.units, cfg.seed, cfg.cell)
    optimizer = RMSprop(learning_rate=cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)
    metrics = {"accuracy": sparse_categorical_accuracy}

    def after_epoch(epoch: int, logs: Dict[str, float]) -> None:
        bpc = logs["loss"] / math.log(2)
        line = f"epoch {epoch + 1}: loss {logs['loss']:.4f} nats/char ({bpc:.3f} bits/char)"
        if "val_loss" in logs:
            logs["val_bits_per_char"] = logs["val_loss"] / math.log(2)
            line += f", validation {logs['val_bits_per_char']:.3f} bits/char"
        print_fn(line + f", {logs['seconds']:.1f} s")
        start = int(rng.integers(0, len(train_text) - cfg.maxlen))
        seed_text = train_text[start:start + cfg.maxlen]
        print_fn(f'  seed: "{seed_text}"')
        for t in temperatures:
            sample = generate(model, vocab, seed_text, cfg.sample_length, t, rng, cfg.maxlen)
            print_fn(f"  [temperature {t}] {sample!r}")
        if checkpoint is not None:
            save(checkpoint, model, optimizer, vocab, cfg, history.history)
        if plot is not None:
            from fusedrnn.tasks.plots import plot_history

            plot_history(history.history, plot, "character LSTM on Nietzsche")

    history = starting_history(resume, checkpoint, model, optimizer, TASK, cfg, print_fn)
    fit(model, loss_from_logits, optimizer, x, y, batch_size=cfg.batch_size,
        epochs=cfg.epochs, validation_data=(xv, yv) if len(yv) else None,
        metrics=metrics, seed=cfg.seed, steps_per_epoch=cfg.steps_per_epoch, progress=progress,
        callbacks=[after_epoch], initial_epoch=history.epochs, history=history)
    return history


def save(path: PathLike, model: Sequential, optimizer, vocab: "nietzsche.CharVocab", cfg: TextgenConfig,
         history: Dict[str, list]) -> None:
    """Checkpoint with the vocabulary and settings needed by :func:`load` and `fusedrnn generate`."""
    meta = {"task": TASK, "chars": vocab.to_json(), "config": asdict(cfg), "history": history}
    save_checkpoint(path, model, optimizer, meta)


def load(path: PathLike):
    """(model, vocab, config) from a text-generation checkpoint; ValueError for another task's."""
    ckpt = load_checkpoint(path)
    if ckpt.meta.get("task") != TASK:
        raise ValueError(f"checkpoint: {path} is a {ckpt.meta.get('task', 'unknown')!r} checkpoint, "
                         f"not a text-generation one")
    vocab = nietzsche.CharVocab.from_json(ckpt.meta["chars"])
    cfg = TextgenConfig(**ckpt.meta["config"])
    return ckpt.model, vocab, cfg


def bits_per_char(checkpoint_path: PathLike, text: str) -> float:
    """Mean bits per character of a checkpoint's next-character predictions over `text`.

    Every character after the first `maxlen` is predicted from the `maxlen` before it (the
    windows the model was trained on, at step 1). Used by ``fusedrnn evaluate lm``.
    """
    model, vocab, cfg = load(checkpoint_path)
    ids = vocab.encode(text.lower())
    x, y = nietzsche.make_windows(ids, maxlen=cfg.maxlen, step=1)
    if len(y) == 0:
        raise ValueError(f"text: needs more than {cfg.maxlen} characters")
    logs = evaluate(model, loss_from_logits, x, y, batch_size=512)
    return logs["loss"] / math.log(2)
