"""Helpers of the fusedrnn.keras recurrent tests: twin layers (fused and stock Keras) with the same
random weights, a random scalar loss over every output, and its gradients by tf.GradientTape."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

#: case name -> (Keras class name, cell-specific constructor arguments)
CELLS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "rnn_tanh": ("SimpleRNN", {}),
    "rnn_relu": ("SimpleRNN", {"activation": "relu"}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}

NUM_STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}


def set_random_weights(layers: Sequence[Any], rng: np.random.Generator, scale: float = 0.5) -> None:
    """Give every layer of ``layers`` the same random weights (biases included)."""
    weights = [(rng.standard_normal(w.shape) * scale).astype(w.dtype) for w in layers[0].get_weights()]
    for layer in layers:
        layer.set_weights(weights)


def twin_layers(cell: str, units: int, input_shape: Sequence[int], rng: np.random.Generator,
                **kwargs: Any) -> Tuple[Any, Any]:
    """(fusedrnn.keras layer, keras.layers layer): same arguments, built, same random weights."""
    import keras

    import fusedrnn.keras as fk

    class_name, cell_kwargs = CELLS[cell]
    args = {**cell_kwargs, **kwargs}
    fused, stock = getattr(fk, class_name)(units, **args), getattr(keras.layers, class_name)(units, **args)
    for layer in (fused, stock):
        layer.build(tuple(input_shape))
    set_random_weights([fused, stock], rng)
    return fused, stock


def random_mask(rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    """(batch, steps) bool: row 0 fully masked, row 1 fully kept, the rest Bernoulli(0.7)."""
    mask = rng.random((batch, steps)) < 0.7
    mask[0] = False
    if batch > 1:
        mask[1] = True
    return mask


def as_list(outputs: Any) -> List[Any]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def loss_weights(rng: np.random.Generator, shapes: Sequence[Sequence[int]]) -> List[np.ndarray]:
    return [rng.standard_normal(tuple(s)).astype(np.float32) for s in shapes]


def run_with_gradients(layer: Any, x: Any, weights: Sequence[np.ndarray], watch: Sequence[Any] = (),
                       **call_kwargs: Any) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Outputs of ``layer(x, **call_kwargs)`` and the gradients of ``sum_k sum(out_k * weights_k)``
    with respect to x, the tensors in ``watch`` and the layer's trainable weights."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    watch = [tf.convert_to_tensor(w) for w in watch]
    if "initial_state" in call_kwargs and call_kwargs["initial_state"] is not None:
        call_kwargs["initial_state"] = watch
    with tf.GradientTape() as tape:
        tape.watch(x)
        for w in watch:
            tape.watch(w)
        outs = as_list(layer(x, **call_kwargs))
        loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32) * w) for o, w in zip(outs, weights)])
    grads = tape.gradient(loss, [x, *watch, *layer.trainable_weights])
    return [np.asarray(o) for o in outs], [None if g is None else np.asarray(g) for g in grads]


def assert_weights_after_adam_close(got: Sequence[Any], want: Sequence[Any], what: str, seed: int,
                                    learning_rate: float, steps: int) -> None:
    """Weights after `steps` Adam steps of two float32 implementations, element-wise, with an
    absolute tolerance of 1 % of the farthest Adam moves a weight in those steps (learning_rate
    per step). Adam divides each gradient by its own root mean square, so a gradient entry that
    is small next to the terms it sums (an embedding row that few tokens reach) keeps its
    rounding in relative terms: the two updates of that weight then differ by that relative
    error times the learning rate, however small the gradient. A wrong gradient moves weights
    by about the learning rate per step, 100 times this tolerance."""
    assert_all_close(got, want, what, seed, rtol=1e-4, atol=0.01 * learning_rate * steps)


def assert_all_close(got: Sequence[Any], want: Sequence[Any], what: str, seed: int, rtol: float = 1e-4,
                     atol: float = 2e-5) -> None:
    """Element-wise closeness of two lists of arrays; ``atol`` scales with the largest value."""
    assert len(got) == len(want), f"{what}: {len(got)} arrays, expected {len(want)} (seed {seed})"
    for i, (g, w) in enumerate(zip(got, want)):
        assert (g is None) == (w is None), f"{what}[{i}]: one gradient is None (seed {seed})"
        if g is None:
            continue
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        assert g.shape == w.shape, f"{what}[{i}]: shape {g.shape}, expected {w.shape} (seed {seed})"
        scale = max(1.0, float(np.abs(w).max(initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, err_msg=f"{what}[{i}] (seed {seed})")
