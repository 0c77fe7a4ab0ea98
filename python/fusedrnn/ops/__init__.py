"""Functional ops: forward functions return a cache that the matching backward consumes."""

from fusedrnn.ops.recurrent import (
    RecurrentCache,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)

__all__ = [
    "RecurrentCache",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]
