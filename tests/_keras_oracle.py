"""Keras 3 / TensorFlow oracle for the recurrent-op tests.

:func:`keras_run` evaluates ``keras.layers.SimpleRNN`` / ``LSTM`` / ``GRU`` on
given weights and inputs with exactly the options of the ``fusedrnn.ops``
contract, and differentiates (with ``tf.GradientTape``) the scalar loss::

    L = sum(outputs * d_outputs) + sum(h_last * d_h_last) (+ sum(c_last * d_c_last))

so its gradients are directly comparable to the ``*_backward`` results for the
incoming gradients ``(d_outputs, d_h_last[, d_c_last])``.

Dropout: Keras draws its masks at random, so the oracle monkeypatches the
cell's ``get_dropout_mask`` / ``get_recurrent_dropout_mask`` (from
``keras.src.layers.rnn.dropout_rnn_cell.DropoutRNNCell``) to return the
caller's masks and calls the layer with ``training=True``.  Per-gate masks (and
any recurrent mask) need the cell's ``implementation=1`` (one mask per gate);
a single (B, I) input mask alone uses the default ``implementation=2``.

TensorFlow is imported once, when this module is first imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

_NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_layers: dict = {}


def _get_layer(cell, I, H, dtype, go_backwards, activation, reset_after, dropout, rec_dropout,
               implementation):
    """Build (once per configuration) a Keras layer matching the options."""
    key = (cell, I, H, np.dtype(dtype).name, go_backwards, activation, reset_after, dropout,
           rec_dropout, implementation)
    layer = _layers.get(key)
    if layer is not None:
        return layer
    common = dict(return_sequences=True, return_state=True, go_backwards=go_backwards,
                  dtype=np.dtype(dtype).name, dropout=0.5 if dropout else 0.0,
                  recurrent_dropout=0.5 if rec_dropout else 0.0)
    if cell == "rnn":
        layer = keras.layers.SimpleRNN(H, activation=activation, **common)
    elif cell == "lstm":
        layer = keras.layers.LSTM(H, implementation=implementation, use_cudnn=False, **common)
    else:
        layer = keras.layers.GRU(H, reset_after=reset_after, implementation=implementation,
                                 use_cudnn=False, **common)
    layer.build((None, None, I))
    _layers[key] = layer
    return layer


def _mask_value(m, G, per_gate):
    """Dropout mask in the form the Keras cell indexes it."""
    if m is None:
        return None
    if not per_gate:                       # implementation=2 / SimpleRNN: one tensor
        return tf.constant(m if m.ndim == 2 else m[0])
    if m.ndim == 2:
        m = np.broadcast_to(m, (G,) + m.shape)
    return [tf.constant(np.ascontiguousarray(m[g])) for g in range(G)]


def keras_run(cell, x, h0, kernel, recurrent_kernel, bias, *, c0=None, mask=None,
              go_backwards=False, activation="tanh", reset_after=True, dropout_mask=None,
              recurrent_dropout_mask=None, d_outputs, d_h_last, d_c_last=None):
    """Run Keras and return ``(forward, grads)``.

    ``cell`` is ``'rnn'``, ``'lstm'`` or ``'gru'``.  ``forward`` is
    ``(outputs, h_last)`` or, for the LSTM, ``(outputs, h_last, c_last)``;
    ``grads`` is ordered like the ``fusedrnn.ops`` backward results:
    ``(dx, dh0[, dc0], d_kernel, d_recurrent_kernel, d_bias)``.

    A ``None`` initial state is passed to Keras as explicit zeros (this is what
    Keras uses by default) so that ``dh0``/``dc0`` exist.
    """
    dtype = x.dtype
    B, T, I = x.shape
    H = recurrent_kernel.shape[0]
    G = _NUM_GATES[cell]
    if d_c_last is None and cell == "lstm":
        d_c_last = np.zeros((B, H), dtype)
    per_gate = cell != "rnn" and (recurrent_dropout_mask is not None
                                  or (dropout_mask is not None and dropout_mask.ndim == 3))
    implementation = 1 if per_gate else 2
    layer = _get_layer(cell, I, H, dtype, bool(go_backwards), activation, bool(reset_after),
                       dropout_mask is not None, recurrent_dropout_mask is not None,
                       implementation)
    layer.set_weights([kernel, recurrent_kernel, bias])
    training = dropout_mask is not None or recurrent_dropout_mask is not None
    dm = _mask_value(dropout_mask, G, per_gate)
    rm = _mask_value(recurrent_dropout_mask, G, per_gate)
    layer.cell.get_dropout_mask = lambda _step_input: dm
    layer.cell.get_recurrent_dropout_mask = lambda _state: rm

    zeros = np.zeros((B, H), dtype)
    xt = tf.constant(x)
    states = [tf.constant(zeros if h0 is None else h0)]
    if cell == "lstm":
        states.append(tf.constant(zeros if c0 is None else c0))
    mask_t = None if mask is None else tf.constant(mask)
    weights = [layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias]
    with tf.GradientTape() as tape:
        tape.watch([xt] + states)
        res = layer(xt, initial_state=states, mask=mask_t, training=training)
        loss = tf.reduce_sum(res[0] * d_outputs) + tf.reduce_sum(res[1] * d_h_last)
        if cell == "lstm":
            loss = loss + tf.reduce_sum(res[2] * d_c_last)
    sources = [xt] + states + [w.value for w in weights]
    grads = tape.gradient(loss, sources)
    grads = tuple(np.zeros(s.shape, dtype) if g is None else np.asarray(g)
                  for g, s in zip(grads, sources))
    forward = tuple(np.asarray(r) for r in res)
    return forward, grads
