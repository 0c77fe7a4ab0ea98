"""The fused ``inner_loop`` of the Keras recurrent layers on the PyTorch backend (CPU tensors).

:func:`inner_loop` has the contract of Keras's ``RNN.inner_loop`` (see
:mod:`fusedrnn.keras._tf_recurrent`) and runs the autograd ops of :mod:`fusedrnn.torch.ops`
(``rnn``/``lstm``/``gru``: one fused forward op, and one fused backward op when PyTorch's autograd
asks for the gradient), on the tensors Keras's PyTorch backend holds: the weights are the layer's
``torch.nn.Parameter`` values, so ``loss.backward()`` in Keras's train step reaches them through
the op's registered backward. Under ``torch.no_grad()`` (``predict``, ``evaluate``) the forward op
keeps no per-step cache. What goes in and comes out (dtypes, dropout masks, no bias,
``zero_output_for_mask``) is shared with the TensorFlow loop: :mod:`fusedrnn.keras._recurrent_loop`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from fusedrnn.keras._recurrent_loop import LoopArgs, loop_args, loop_results, one_hot_ids
from fusedrnn.torch import ops


def _input(a: LoopArgs) -> torch.Tensor:
    """``x``, or its (B, T) int32 ids when nothing differentiates ``x`` and it is one-hot (a
    character model's windows): a row gather of the kernel instead of a GEMM."""
    x = a.x
    if (torch.is_grad_enabled() and x.requires_grad) or torch.compiler.is_compiling():
        return x   # (under torch.compile the values are not there to inspect)
    dense = x.detach().contiguous().numpy()
    ids = one_hot_ids(dense)
    return x if ids is dense else torch.from_numpy(ids)


def inner_loop(layer: Any, sequences: Any, initial_state: Sequence[Any], mask: Any, training: bool) -> Any:
    a = loop_args(layer, sequences, initial_state, mask, training)
    h0, c0 = a.h0, a.c0
    if layer.stateful:
        # The states are the layer's state variables, which Keras's RNN.call overwrites in place
        # after the loop; the op saves h0/c0 for its backward, so it gets copies (as Keras's loop does).
        h0, c0 = h0.clone(), None if c0 is None else c0.clone()
    options = dict(mask=a.mask, go_backwards=a.go_backwards, dropout_mask=a.dropout_mask,
                   recurrent_dropout_mask=a.recurrent_dropout_mask)
    x = _input(a)
    if a.cell == "lstm":
        outputs, h, c = ops.lstm(x, h0, c0, a.kernel, a.recurrent_kernel, a.bias, **options)
        states = [h, c]
    elif a.cell == "gru":
        outputs, h = ops.gru(x, h0, a.kernel, a.recurrent_kernel, a.bias, reset_after=a.reset_after, **options)
        states = [h]
    else:
        outputs, h = ops.rnn(x, h0, a.kernel, a.recurrent_kernel, a.bias, activation=a.activation, **options)
        states = [h]
    return loop_results(layer, a, outputs, states)
