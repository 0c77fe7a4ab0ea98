"""Spanish→English translation with a GRU encoder-decoder and Bahdanau attention.

Training (``fusedrnn train translate``): teacher forcing on the first `num_examples` pairs of
``spa-eng/spa.txt`` (the classic tutorial's settings: 30,000 pairs, embedding 256, 1024 units,
batch 64, Adam, 10 epochs), 80/20 split; the loss is the tutorial's masked cross-entropy,
averaged over all target positions with padding counting as zero. Inference: greedy or beam
search (:mod:`fusedrnn.tasks.seq2seq`), an attention heat-map, and corpus BLEU on the
validation split (``fusedrnn evaluate translate``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from fusedrnn.datasets import translation as data_mod
from fusedrnn.optimizers import Adam
from fusedrnn.tasks.seq2seq import (AttentionSeq2Seq, PairedInputs, Translation, beam_search, decode_batch_greedy,
                                    greedy_decode, masked_sequence_loss)
from fusedrnn.tasks.resume import starting_history
from fusedrnn.tasks.text_input import require_text
from fusedrnn.training import History, fit, load_checkpoint, save_checkpoint

PathLike = Union[str, "os.PathLike[str]"]
TASK = "translate"


@dataclass
class TranslateConfig:
    """Hyper-parameters of the translation task (defaults: the TensorFlow tutorial's)."""

    num_examples: int = 30000
    embedding_dim: int = 256
    units: int = 1024
    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 0.001
    val_fraction: float = 0.2
    seed: int = 0
    steps_per_epoch: Optional[int] = None


def teacher_forcing_arrays(target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(decoder inputs, expected outputs): the target without its last / first column."""
    return np.ascontiguousarray(target[:, :-1]), np.ascontiguousarray(target[:, 1:])


def train(cfg: TranslateConfig, data: Optional[PathLike] = None, checkpoint: Optional[PathLike] = None,
          plot: Optional[PathLike] = None, progress: bool = True, print_fn: Callable[[str], None] = print,
          resume: bool = False) -> History:
    """Trains the translation model; returns the History. See the module docstring. With
    `resume`, continues from `checkpoint` (same settings) up to ``cfg.epochs`` in all."""
    ds = data_mod.load_translation(data, num_examples=cfg.num_examples, val_fraction=cfg.val_fraction, seed=cfg.seed)
    print_fn(f"{len(ds.train_idx):,} training and {len(ds.val_idx):,} validation pairs; vocabularies: "
             f"{ds.source_tokenizer.vocab_size:,} Spanish, {ds.target_tokenizer.vocab_size:,} English words; "
             f"longest sentences {ds.max_source_len} and {ds.max_target_len} tokens")
    model = AttentionSeq2Seq(ds.source_tokenizer.vocab_size, ds.target_tokenizer.vocab_size, cfg.embedding_dim,
                             cfg.units, seed=cfg.seed)
    optimizer = Adam(learning_rate=cfg.learning_rate)
    tin, tout = teacher_forcing_arrays(ds.target_train)
    vin, vout = teacher_forcing_arrays(ds.target_val)
    history = starting_history(resume, checkpoint, model, optimizer, TASK, cfg, print_fn)

    def after_epoch(epoch: int, logs: Dict[str, float]) -> None:
        line = f"epoch {epoch + 1}: loss {logs['loss']:.4f}"
        if "val_loss" in logs:
            line += f", validation loss {logs['val_loss']:.4f}"
        print_fn(line + f" ({logs['seconds']:.1f} s)")
        if checkpoint is not None:
            save(checkpoint, model, optimizer, ds, cfg, history.history)
        if plot is not None:
            from fusedrnn.tasks.plots import plot_history

            plot_history(history.history, plot, "Spanish→English, GRU encoder-decoder with Bahdanau attention")

    validation = (PairedInputs(ds.source_val, vin), vout) if len(ds.val_idx) else None
    fit(model, masked_sequence_loss, optimizer, PairedInputs(ds.source_train, tin), tout,
        batch_size=cfg.batch_size, epochs=cfg.epochs, validation_data=validation,
        seed=cfg.seed, steps_per_epoch=cfg.steps_per_epoch, progress=progress, callbacks=[after_epoch],
        initial_epoch=history.epochs, history=history)
    return history


def save(path: PathLike, model: AttentionSeq2Seq, optimizer, ds: "data_mod.TranslationData", cfg: TranslateConfig,
         history: Dict[str, list]) -> None:
    """Checkpoint with both vocabularies and the maximum lengths, for `fusedrnn translate`."""
    meta = {"task": TASK, "config": asdict(cfg), "history": history,
            "source_vocab": ds.source_tokenizer.to_json(), "target_vocab": ds.target_tokenizer.to_json(),
            "max_source_len": ds.max_source_len, "max_target_len": ds.max_target_len}
    save_checkpoint(path, model, optimizer, meta)


@dataclass
class Translator:
    """A trained model with its vocabularies: ``translate`` raw Spanish sentences."""

    model: AttentionSeq2Seq
    source_tokenizer: "data_mod.WordTokenizer"
    target_tokenizer: "data_mod.WordTokenizer"
    max_source_len: int
    max_target_len: int

    @property
    def start_id(self) -> int:
        return int(self.target_tokenizer.word_index[data_mod.START_TOKEN])

    @property
    def end_id(self) -> int:
        return int(self.target_tokenizer.word_index[data_mod.END_TOKEN])

    def encode(self, sentence: str) -> Tuple[np.ndarray, List[str]]:
        """(source ids (1, n), the preprocessed words) for a raw Spanish sentence; ValueError for an
        empty sentence, unknown words (listed) or one longer than the model's maximum."""
        words = data_mod.preprocess_sentence(require_text("sentence", sentence)).split()
        if len(words) <= 2:
            raise ValueError(f"sentence: {sentence!r} has no words the model can read")
        if len(words) > self.max_source_len:
            raise ValueError(f"sentence: {len(words) - 2} words, but the model was trained on sentences of at most "
                             f"{self.max_source_len - 2} words")
        ids = self.source_tokenizer.encode(" ".join(words))
        return np.asarray(ids, dtype=np.int32)[None, :], words

    def translate(self, sentence: str, beam: int = 1, length_penalty: float = 1.0) -> Tuple[str, Translation, List[str]]:
        """(English sentence, the Translation with its attention weights, the source words)."""
        src, words = self.encode(sentence)
        if beam == 1:
            result = greedy_decode(self.model, src, self.start_id, self.end_id, self.max_target_len)
        else:
            result = beam_search(self.model, src, self.start_id, self.end_id, self.max_target_len, beam, length_penalty)
        return self.target_tokenizer.decode(result.ids), result, words

    def output_words(self, result: Translation) -> List[str]:
        """The output tokens of a Translation, <end> included (the heat-map's rows)."""
        return [self.target_tokenizer.index_word[i] for i in result.ids]


def load(path: PathLike) -> Translator:
    """A :class:`Translator` from a translation checkpoint; ValueError for another task's."""
    ckpt = load_checkpoint(path)
    if ckpt.meta.get("task") != TASK:
        raise ValueError(f"checkpoint: {path} is a {ckpt.meta.get('task', 'unknown')!r} checkpoint, not a translation one")
    m = ckpt.meta
    return Translator(ckpt.model, data_mod.WordTokenizer.from_json(m["source_vocab"]),
                      data_mod.WordTokenizer.from_json(m["target_vocab"]), int(m["max_source_len"]),
                      int(m["max_target_len"]))


def evaluate_bleu(translator: Translator, cfg: TranslateConfig, data: Optional[PathLike] = None, beam: int = 1,
                  limit: Optional[int] = None, progress: bool = True) -> Tuple[float, int]:
    """Corpus BLEU (0-100) of the validation split (the checkpoint's seed and settings) and the
    number of sentences scored; greedy decodes in batches, beam search one sentence at a time."""
    from fusedrnn.metrics import corpus_bleu

    ds = data_mod.load_translation(data, num_examples=cfg.num_examples, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if ds.source_tokenizer.to_json() != translator.source_tokenizer.to_json():
        raise ValueError("data: this file does not give the vocabulary the checkpoint was trained with")
    src, tgt = ds.source_val, ds.target_val
    if limit is not None:
        src, tgt = src[:limit], tgt[:limit]
    if len(src) == 0:
        raise ValueError("the validation split is empty")
    hyps: List[str] = []
    bar = _bar(len(src), f"BLEU ({'greedy' if beam == 1 else f'beam {beam}'})", progress)
    if beam == 1:
        for i in range(0, len(src), 256):
            rows = decode_batch_greedy(translator.model, _trim(src[i:i + 256]), translator.start_id, translator.end_id,
                                       translator.max_target_len)
            hyps.extend(translator.target_tokenizer.decode(r) for r in rows)
            if bar is not None:
                bar.update(len(rows))
    else:
        for row in src:
            result = beam_search(translator.model, _trim(row[None, :]), translator.start_id, translator.end_id,
                                 translator.max_target_len, beam)
            hyps.append(translator.target_tokenizer.decode(result.ids))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    refs = [translator.target_tokenizer.decode(r) for r in tgt]
    return float(corpus_bleu(hyps, refs)), len(hyps)


def _trim(source: np.ndarray) -> np.ndarray:
    """Drops padding columns that every row has (shorter encoder runs, same results)."""
    used = int((source != 0).sum(axis=1).max())
    return np.ascontiguousarray(source[:, :used])


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sentence")


def translate_texts(path: PathLike, sentences: Sequence[str], beam: int = 1) -> List[str]:
    """English translations of raw Spanish sentences with a translation checkpoint."""
    translator = load(path)
    return [translator.translate(s, beam)[0] for s in sentences]
