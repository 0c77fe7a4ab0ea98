"""The fused ``inner_loop`` of the Keras recurrent layers on the TensorFlow backend.

:func:`inner_loop` has the contract of Keras's ``RNN.inner_loop``: it receives the sequences
(B, T, I) in the layer's compute dtype, the initial states (a list of (B, H) tensors: [h] or, for
the LSTM, [h, c]), the (B, T) mask or None and a Python ``training`` flag, and returns
``(last_output (B, H), outputs (B, T, H), states)``. It runs ``fusedrnn.ops``'s
``{rnn,lstm,gru}_forward`` through :func:`fusedrnn.keras._tf_bridge.call_fused` and the matching
``*_backward`` for the gradient.

Dtypes: float64 layers compute in float64; every other compute dtype (float32, and the float16 /
bfloat16 of the ``mixed_*`` policies) computes in float32, casting the inputs, weights, states
and dropout masks up and leaving Keras's ``RNN.call`` to cast the results back down.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from fusedrnn import ops
from fusedrnn.keras._tf_bridge import call_fused, gradient_wanted

_BACKWARD = {"rnn": ops.rnn_backward, "lstm": ops.lstm_backward, "gru": ops.gru_backward}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# Input positions of the bridge call (see _inputs).
X, H0, C0, KERNEL, RECURRENT_KERNEL, BIAS, MASK, DROPOUT_MASK, RECURRENT_DROPOUT_MASK = range(9)


def _dropout_mask(masks: Any, dtype: tf.DType) -> Optional[tf.Tensor]:
    """Keras's cached dropout mask: one (B, n) tensor, or a list of one per gate -> (G, B, n)."""
    if masks is None:
        return None
    if isinstance(masks, (list, tuple)):
        return tf.cast(tf.stack(list(masks)), dtype)
    return tf.cast(masks, dtype)


def _bias(layer: Any, dtype: tf.DType) -> tf.Tensor:
    cell, units, gates = layer.cell, layer.cell.units, _GATES[layer.fused_cell]
    if cell.use_bias:
        return tf.cast(cell.bias.value, dtype)
    shape = (2, 3 * units) if layer.fused_cell == "gru" and cell.reset_after else (gates * units,)
    return tf.zeros(shape, dtype)   # no bias: zeros, and the gradient there is dropped


def inner_loop(layer: Any, sequences: Any, initial_state: Sequence[Any], mask: Any, training: bool) -> Any:
    cell, kind = layer.cell, layer.fused_cell
    compute = tf.float64 if sequences.dtype == tf.float64 else tf.float32
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    x = tf.cast(sequences, compute)
    states = [tf.cast(s, compute) for s in initial_state]
    dropout_mask = recurrent_dropout_mask = None
    if training and 0.0 < cell.dropout < 1.0:
        dropout_mask = _dropout_mask(cell.get_dropout_mask(sequences[:, 0, :]), compute)
    if training and 0.0 < cell.recurrent_dropout < 1.0:
        recurrent_dropout_mask = _dropout_mask(cell.get_recurrent_dropout_mask(initial_state[0]), compute)
    inputs = [x, states[0], states[1] if kind == "lstm" else None,
              tf.cast(cell.kernel.value, compute), tf.cast(cell.recurrent_kernel.value, compute),
              _bias(layer, compute), None if mask is None else tf.cast(mask, tf.bool),
              dropout_mask, recurrent_dropout_mask]
    differentiable = [True, True, True, True, True, bool(cell.use_bias), False, False, False]
    # Under model.fit a tape watches the weights but not the data: then x needs no gradient, and
    # a one-hot x (a character model's input) may run as integer ids (a row gather of the kernel
    # instead of a GEMM, and no dx). With no tape at all x stays differentiable, in case the
    # graph is differentiated from outside (the backward then recomputes the forward densely).
    any_watched = gradient_wanted([t for t, d in zip(inputs, differentiable) if t is not None and d])
    differentiable[X] = not any_watched or gradient_wanted([x])

    batch, steps, units = x.shape[0], x.shape[1], cell.units
    output_specs = [((batch, steps, units), compute), ((batch, units), compute)]
    if kind == "lstm":
        output_specs.append(((batch, units), compute))
    forward = _Forward(kind, layer.go_backwards, _activation(layer), _reset_after(layer), differentiable[X])
    results = call_fused(forward,
                         _backward_for(kind), inputs, output_specs, differentiable, name=f"fusedrnn_{kind}")
    outputs, final_states = results[0], results[1:]
    if mask is not None and layer.zero_output_for_mask:
        keep = tf.cast(mask, tf.bool)
        if layer.go_backwards:
            keep = tf.reverse(keep, axis=[1])   # outputs are in processing order
        outputs = tf.where(keep[:, :, None], outputs, tf.zeros_like(outputs))
    return outputs[:, -1], outputs, list(final_states)


def _activation(layer: Any) -> str:
    return "relu" if layer.cell.activation is keras.activations.relu else "tanh"


def _reset_after(layer: Any) -> bool:
    return bool(getattr(layer.cell, "reset_after", True))


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


def _one_hot_ids(x: np.ndarray) -> np.ndarray:
    """The (B, T) int32 ids of ``x`` when every (b, t) row of it is one-hot (a single 1, zeros
    elsewhere), else ``x`` itself. The ops compute the same results from the ids."""
    if x.ndim != 3 or x.shape[2] < 2 or x.size == 0:
        return x
    ones = x == 1
    if not (np.count_nonzero(x) == x.shape[0] * x.shape[1] and bool((ones.sum(axis=2) == 1).all())):
        return x
    return np.ascontiguousarray(ones.argmax(axis=2), dtype=np.int32)


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
