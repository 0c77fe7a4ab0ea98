"""fusedrnn's ops for PyTorch tensors, with autograd and ``torch.compile`` support.

Differentiable functions: :func:`rnn`, :func:`lstm`, :func:`gru` (Keras weight layout and gate
order, see :mod:`fusedrnn.torch.recurrent_ops`) and :func:`dot_attention`,
:func:`additive_attention` (see :mod:`fusedrnn.torch.attention_ops`). The operators behind them
are registered as ``torch.ops.fusedrnn.*`` (``lstm_forward``, ``lstm_backward``, ...).
"""

from fusedrnn.torch.attention_ops import (
    additive_attention,
    additive_attention_backward,
    additive_attention_forward,
    dot_attention,
    dot_attention_backward,
    dot_attention_forward,
)
from fusedrnn.torch.recurrent_ops import (
    gru,
    gru_backward,
    gru_forward,
    lstm,
    lstm_backward,
    lstm_forward,
    rnn,
    rnn_backward,
    rnn_forward,
)

__all__ = ["additive_attention", "additive_attention_backward", "additive_attention_forward", "dot_attention",
           "dot_attention_backward", "dot_attention_forward", "gru", "gru_backward", "gru_forward", "lstm",
           "lstm_backward", "lstm_forward", "rnn", "rnn_backward", "rnn_forward"]
