"""Evaluation metrics for the reference tasks (corpus BLEU for translation, through sacrebleu)."""

from fusedrnn.metrics.bleu import BleuScore, corpus_bleu

__all__ = ["BleuScore", "corpus_bleu"]
