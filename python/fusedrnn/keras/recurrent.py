"""Keras 3 ``SimpleRNN``, ``LSTM`` and ``GRU`` whose whole-sequence loop runs fusedrnn's fused kernels.

Each class subclasses the Keras layer it replaces, so the constructor, defaults, ``get_config``,
weights (names, shapes, order), state handling (``stateful``, ``reset_state()``,
``initial_state``), masking, dropout-mask generation and ``Bidirectional``/``TimeDistributed``
behaviour are Keras's own. Only ``inner_loop`` -- the loop over time steps that Keras's
``RNN.call`` runs once the initial states and dropout masks are ready -- is replaced: when the
layer's configuration and the backend allow it, the loop runs as one fused forward op (and one
fused backward op for the gradient); otherwise Keras's own loop runs.

``layer.fused`` (read-only) says which path runs; ``layer.fused_reason`` says why not (None when
fused). A configuration is fused when all of these hold:

* Keras backend with a fused loop registered in :data:`FUSED_LOOPS` (``"tensorflow"``, and
  ``"torch"`` through the autograd ops of :mod:`fusedrnn.torch.ops`) computing on the CPU: no GPU
  visible to TensorFlow, Keras's PyTorch device ``"cpu"`` (GPU tensors go to Keras's own
  implementation, i.e. cuDNN);
* ``activation`` is tanh (SimpleRNN: tanh or relu), ``recurrent_activation`` sigmoid;
* ``0 <= dropout < 1`` and ``0 <= recurrent_dropout < 1``.

Every other argument (``use_bias``, initializers, regularizers, constraints, ``seed``,
``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``, ``unroll`` (same
numbers, no unrolling needed), ``unit_forget_bias``, ``reset_after``, ``zero_output_for_mask``,
``use_cudnn``) is compatible with the fused path. The dropout masks are the ones Keras's
``RNN.call`` draws from the layer's seed generator before the loop, so a fused layer and a stock
layer with the same ``seed`` draw the same masks.

A new backend plugs in by adding ``FUSED_LOOPS[backend_name] = loop`` with ``loop(layer,
sequences, initial_state, mask, training) -> (last_output, outputs, states)`` (Keras's
``inner_loop`` contract); :mod:`fusedrnn.keras._recurrent_loop` holds the backend-neutral part
(arguments in, results out) that the TensorFlow and PyTorch loops share.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import keras

from fusedrnn.keras._backends import backend_reason, on_gpu

__all__ = ["FUSED_LOOPS", "GRU", "LSTM", "SimpleRNN"]


def _tensorflow_loop(layer: Any, sequences: Any, initial_state: Any, mask: Any, training: bool) -> Any:
    from fusedrnn.keras import _tf_recurrent  # imports TensorFlow: only when that backend runs

    return _tf_recurrent.inner_loop(layer, sequences, initial_state, mask, training)


def _torch_loop(layer: Any, sequences: Any, initial_state: Any, mask: Any, training: bool) -> Any:
    from fusedrnn.keras import _torch_recurrent  # imports fusedrnn.torch: only when that backend runs

    return _torch_recurrent.inner_loop(layer, sequences, initial_state, mask, training)


#: backend name -> fused inner loop; a backend missing here runs Keras's own loop.
FUSED_LOOPS: Dict[str, Callable[..., Any]] = {"tensorflow": _tensorflow_loop, "torch": _torch_loop}


def _rate_reason(name: str, rate: float) -> Optional[str]:
    if not 0.0 <= rate < 1.0:
        return f"{name}={rate}: the fused kernels take rates in [0, 1)"
    return None


class _FusedRecurrentMixin:
    """The fused ``inner_loop`` shared by the three layers (mixed in before the Keras class)."""

    #: the fusedrnn cell name: "rnn", "lstm" or "gru"
    fused_cell: str = ""
    #: activations the fused kernels compute for this cell
    _fused_activations = ("tanh",)

    def _finish_init(self) -> None:
        if self.fused and keras.backend.backend() == "tensorflow":
            # tf.numpy_function cannot be compiled by XLA: model.fit's jit_compile="auto" checks this.
            # (The PyTorch ops are torch.library custom ops, which torch.compile traces.)
            self.supports_jit = False

    @property
    def fused_reason(self) -> Optional[str]:
        """Why the layer runs Keras's own loop instead of the fused kernels; None when it is fused."""
        reason = backend_reason(FUSED_LOOPS)
        if reason:
            return reason
        cell = self.cell
        name = _activation_name(cell.activation)
        if name not in self._fused_activations:
            allowed = " or ".join(self._fused_activations)
            return f"activation={name or cell.activation!r}: the fused kernels compute {allowed}"
        if self.fused_cell != "rnn" and _activation_name(cell.recurrent_activation) != "sigmoid":
            return f"recurrent_activation={cell.recurrent_activation!r}: the fused kernels compute sigmoid"
        return _rate_reason("dropout", cell.dropout) or _rate_reason("recurrent_dropout", cell.recurrent_dropout)

    @property
    def fused(self) -> bool:
        """True when the layer's loop runs on fusedrnn's fused kernels (read-only)."""
        return self.fused_reason is None

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if (self.fused and isinstance(training, (bool, type(None))) and 0 not in tuple(sequences.shape[:2])
                and not on_gpu(sequences)):
            loop = FUSED_LOOPS[keras.backend.backend()]
            return loop(self, sequences, initial_state, mask, bool(training))
        return super().inner_loop(sequences, initial_state, mask, training=training)


def _activation_name(fn: Any) -> Optional[str]:
    """'tanh', 'relu' or 'sigmoid' when ``fn`` is that Keras activation, else None."""
    for name in ("tanh", "relu", "sigmoid"):
        if fn is getattr(keras.activations, name):
            return name
    return None


@keras.saving.register_keras_serializable(package="fusedrnn")
class SimpleRNN(_FusedRecurrentMixin, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` (same arguments, weights and outputs) on fusedrnn's fused kernels.

    Fused for ``activation`` tanh or relu; see :mod:`fusedrnn.keras.recurrent` for the rules.
    """

    fused_cell = "rnn"
    _fused_activations = ("tanh", "relu")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._finish_init()


@keras.saving.register_keras_serializable(package="fusedrnn")
class LSTM(_FusedRecurrentMixin, keras.layers.LSTM):
    """``keras.layers.LSTM`` (same arguments, weights and outputs) on fusedrnn's fused kernels.

    Fused for ``activation`` tanh and ``recurrent_activation`` sigmoid (the defaults); see
    :mod:`fusedrnn.keras.recurrent` for the rules.
    """

    fused_cell = "lstm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._finish_init()


@keras.saving.register_keras_serializable(package="fusedrnn")
class GRU(_FusedRecurrentMixin, keras.layers.GRU):
    """``keras.layers.GRU`` (same arguments, weights and outputs) on fusedrnn's fused kernels.

    Fused for ``activation`` tanh and ``recurrent_activation`` sigmoid (the defaults), both
    ``reset_after`` settings; see :mod:`fusedrnn.keras.recurrent` for the rules.
    """

    fused_cell = "gru"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._finish_init()
