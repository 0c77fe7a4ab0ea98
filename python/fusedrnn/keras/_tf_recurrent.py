"""The fused ``inner_loop`` of the Keras recurrent layers on the TensorFlow backend.

:func:`inner_loop` has the contract of Keras's ``RNN.inner_loop``: it receives the sequences
(B, T, I) in the layer's compute dtype, the initial states (a list of (B, H) tensors: [h] or, for
the LSTM, [h, c]), the (B, T) mask or None and a Python ``training`` flag, and returns
``(last_output (B, H), outputs (B, T, H), states)``. It runs ``fusedrnn.ops``'s
``{rnn,lstm,gru}_forward`` through :func:`fusedrnn.keras._tf_bridge.call_fused` and the matching
``*_backward`` for the gradient. What goes in and comes out (dtypes, dropout masks, no bias,
``zero_output_for_mask``) is shared with the PyTorch loop: :mod:`fusedrnn.keras._recurrent_loop`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from fusedrnn import ops
from fusedrnn.keras._recurrent_loop import loop_args, loop_results, one_hot_ids
from fusedrnn.keras._tf_bridge import call_fused, gradient_wanted

_BACKWARD = {"rnn": ops.rnn_backward, "lstm": ops.lstm_backward, "gru": ops.gru_backward}
_one_hot_ids = one_hot_ids   # looked up at call time (a test counts the calls)

# Input positions of the bridge call (see inner_loop).
X, H0, C0, KERNEL, RECURRENT_KERNEL, BIAS, MASK, DROPOUT_MASK, RECURRENT_DROPOUT_MASK = range(9)


def inner_loop(layer: Any, sequences: Any, initial_state: Sequence[Any], mask: Any, training: bool) -> Any:
    a = loop_args(layer, sequences, initial_state, mask, training)
    inputs = [a.x, a.h0, a.c0, a.kernel, a.recurrent_kernel, a.bias, a.mask, a.dropout_mask, a.recurrent_dropout_mask]
    differentiable = [True, True, True, True, True, a.has_bias, False, False, False]
    # Under model.fit a tape watches the weights but not the data: then x needs no gradient, and
    # a one-hot x (a character model's input) may run as integer ids (a row gather of the kernel
    # instead of a GEMM, and no dx). With no tape at all x stays differentiable, in case the
    # graph is differentiated from outside (the backward then recomputes the forward densely).
    any_watched = gradient_wanted([t for t, d in zip(inputs, differentiable) if t is not None and d])
    differentiable[X] = not any_watched or gradient_wanted([a.x])

    batch, steps, units = a.x.shape[0], a.x.shape[1], layer.cell.units
    compute = tf.as_dtype(a.compute_dtype)
    output_specs = [((batch, steps, units), compute), ((batch, units), compute)]
    if a.cell == "lstm":
        output_specs.append(((batch, units), compute))
    forward = _Forward(a.cell, a.go_backwards, a.activation, a.reset_after, differentiable[X])
    results = call_fused(forward, _backward_for(a.cell), inputs, output_specs, differentiable, name=f"fusedrnn_{a.cell}")
    return loop_results(layer, a, results[0], results[1:])


class _Forward:
    """The NumPy forward function of the bridge for one layer configuration."""

    def __init__(self, kind: str, go_backwards: bool, activation: str, reset_after: bool, x_differentiable: bool) -> None:
        self.kind, self.go_backwards, self.activation, self.reset_after = kind, bool(go_backwards), activation, reset_after
        self.x_differentiable = x_differentiable

    def __call__(self, a: List[Optional[np.ndarray]], keep_cache: bool) -> Any:
        x, kernel = a[X], a[KERNEL]
        if not (keep_cache and self.x_differentiable):
            x = _one_hot_ids(x)
        if x.shape[0] == 0:  # an empty batch: empty results, nothing to differentiate
            units = a[RECURRENT_KERNEL].shape[0]
            empty = np.zeros((0, units), x.dtype)
            outputs = (np.zeros((0, x.shape[1], units), x.dtype), empty) + ((empty,) if self.kind == "lstm" else ())
            return outputs, None
        options = dict(mask=a[MASK], go_backwards=self.go_backwards, dropout_mask=a[DROPOUT_MASK],
                       recurrent_dropout_mask=a[RECURRENT_DROPOUT_MASK], keep_cache=keep_cache)
        if self.kind == "lstm":
            outputs, h, c, cache = ops.lstm_forward(x, a[H0], a[C0], kernel, a[RECURRENT_KERNEL], a[BIAS], **options)
            return (outputs, h, c), cache
        if self.kind == "gru":
            outputs, h, cache = ops.gru_forward(x, a[H0], kernel, a[RECURRENT_KERNEL], a[BIAS],
                                                reset_after=self.reset_after, **options)
        else:
            outputs, h, cache = ops.rnn_forward(x, a[H0], kernel, a[RECURRENT_KERNEL], a[BIAS],
                                                activation=self.activation, **options)
        return (outputs, h), cache


def _backward_for(kind: str) -> Any:
    def backward(cache: Any, a: List[Optional[np.ndarray]], upstream: List[Optional[np.ndarray]]) -> List[Any]:
        if cache is None:  # the empty batch
            return [None] * len(a)
        grads = _BACKWARD[kind](cache, *upstream)
        if kind == "lstm":
            dx, dh0, dc0, dk, drk, db = grads
        else:
            (dx, dh0, dk, drk, db), dc0 = grads, None
        return [dx, dh0, dc0, dk, drk, db, None, None, None]

    return backward
