"""Functional ops: forward functions return a cache that the matching backward consumes."""

from fusedrnn.ops.attention import (
    AttentionCache,
    additive_attention_backward,
    additive_attention_forward,
    dense_backward,
    dense_forward,
    dot_attention_backward,
    dot_attention_forward,
)
from fusedrnn.ops.checked_weights import CheckedWeights
from fusedrnn.ops.deferred_grads import DeferredWeightGrads
from fusedrnn.ops.packed import PackedWeights, gru_step, lstm_step, rnn_step
from fusedrnn.ops.packed_dense import PackedDense
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
    "AttentionCache",
    "CheckedWeights",
    "DeferredWeightGrads",
    "additive_attention_backward",
    "additive_attention_forward",
    "dense_backward",
    "dense_forward",
    "dot_attention_backward",
    "dot_attention_forward",
    "PackedDense",
    "PackedWeights",
    "RecurrentCache",
    "gru_step",
    "lstm_step",
    "rnn_step",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]
