"""Evaluation metrics for the reference tasks (corpus BLEU for translation)."""

from fusedrnn.metrics.bleu import BleuScore, corpus_bleu, sacrebleu_available

__all__ = ["BleuScore", "corpus_bleu", "sacrebleu_available"]
