"""Recurrent layers with Keras's constructor arguments, weights and return values.

``layer.set_weights(keras_layer.get_weights())`` copies a Keras layer; calling both on the same
input gives the same numbers (to float32 rounding). Every layer also has ``backward``:

    y = layer(x)                    # forward, keeps what the backward pass needs
    dx = layer.backward(dy)         # gradient w.r.t. x; fills layer.grads

``layer.grads`` is aligned with ``layer.get_weights()``: [d_kernel, d_recurrent_kernel, d_bias].
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from fusedrnn import initializers as init
from fusedrnn import ops
from fusedrnn.grad_mode import is_grad_enabled
from fusedrnn.layers._recurrent_step import RecurrentStepMixin
from fusedrnn.ops import _checks as chk

ArrayOrTuple = Union[np.ndarray, Tuple[np.ndarray, ...]]


class _Recurrent(RecurrentStepMixin, abc.ABC):
    """Shared machinery of SimpleRNN, LSTM and GRU; see those classes."""

    _cell = ""
    _gates = 1
    _n_states = 1

    def __init__(self, units: int, *, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Optional[int] = None, dtype: Any = "float32", name: Optional[str] = None) -> None:
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"units: expected a positive integer, got {units!r}")
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise ValueError(f"{arg}: expected a rate in [0, 1), got {rate!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in chk.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.name = name or type(self).__name__.lower()
        self.rng = np.random.default_rng(seed)
        self.kernel: Optional[np.ndarray] = None
        self.recurrent_kernel: Optional[np.ndarray] = None
        self.bias: Optional[np.ndarray] = None
        self.grads: List[np.ndarray] = []
        self._cache: Optional[ops.RecurrentCache] = None
        self._called_without_cache = False
        self._had_initial_state = False

    # -- weights -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.kernel is not None

    @property
    def params(self) -> List[np.ndarray]:
        """The live weights [kernel, recurrent_kernel, bias] (optimizers update them in place)."""
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build(input_dim)")
        return [self.kernel, self.recurrent_kernel, self.bias]  # type: ignore[list-item]

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``type(layer)(**config)`` rebuilds the layer."""
        return {"units": self.units, "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "dtype": self.dtype.name, "name": self.name}

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The output's mask: the input mask with return_sequences (Keras), otherwise none."""
        return mask if self.return_sequences else None

    def _initial_bias(self) -> np.ndarray:
        return init.zeros((self._gates * self.units,), self.dtype)

    def build(self, input_dim: int) -> None:
        """Creates the weights with Keras's default initialisers for inputs of `input_dim` features."""
        width = self._gates * self.units
        self.kernel = init.glorot_uniform((input_dim, width), self.rng, self.dtype)
        self.recurrent_kernel = init.orthogonal((self.units, width), self.rng, self.dtype)
        self.bias = self._initial_bias()

    def get_weights(self) -> List[np.ndarray]:
        """[kernel (I, G*H), recurrent_kernel (H, G*H), bias], Keras's order and shapes."""
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build(input_dim)")
        return [self.kernel.copy(), self.recurrent_kernel.copy(), self.bias.copy()]  # type: ignore[union-attr]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets [kernel, recurrent_kernel, bias] (e.g. a Keras layer's get_weights())."""
        if len(weights) != 3:
            raise ValueError(f"weights: expected 3 arrays [kernel, recurrent_kernel, bias], got {len(weights)}")
        kernel = np.asarray(weights[0])
        if kernel.ndim != 2 or kernel.shape[1] != self._gates * self.units:
            raise ValueError(f"weights[0] (kernel): expected shape (input_dim, {self._gates * self.units}), "
                             f"got {kernel.shape}")
        expected = [kernel.shape, (self.units, self._gates * self.units), self._bias_shape()]
        arrays = []
        for k, (w, shape) in enumerate(zip(weights, expected)):
            w = np.asarray(w)
            if w.shape != tuple(shape):
                raise ValueError(f"weights[{k}]: expected shape {tuple(shape)}, got {w.shape}")
            arrays.append(np.ascontiguousarray(w, dtype=self.dtype))
        self.kernel, self.recurrent_kernel, self.bias = arrays

    def _bias_shape(self) -> Tuple[int, ...]:
        return (self._gates * self.units,)

    # -- forward / backward --------------------------------------------------------------------
    def _dropout_masks(self, batch: int, input_dim: int, training: bool) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Keras's masks: one per sequence, inverted scaling; one per gate when recurrent dropout is on."""
        if not training:
            return None, None
        per_gate = self.recurrent_dropout > 0.0 and self._gates > 1

        def draw(rate: float, width: int) -> Optional[np.ndarray]:
            if rate <= 0.0:
                return None
            shape = (self._gates, batch, width) if per_gate else (batch, width)
            keep = self.rng.random(shape) >= rate
            return (keep / (1.0 - rate)).astype(self.dtype)

        return draw(self.dropout, input_dim), draw(self.recurrent_dropout, self.units)

    @abc.abstractmethod
    def _run(self, x: np.ndarray, states: List[Optional[np.ndarray]], mask: Optional[np.ndarray],
             dmask: Optional[np.ndarray], rmask: Optional[np.ndarray], keep_cache: bool
             ) -> Tuple[np.ndarray, List[np.ndarray], Optional[ops.RecurrentCache]]:
        """The cell's forward op: (outputs, final states, cache); the cache is None without keep_cache."""

    def __call__(self, x: np.ndarray, mask: Optional[np.ndarray] = None,
                 initial_state: Optional[Sequence[np.ndarray]] = None, training: bool = False) -> Any:
        """Runs the layer on x (B, T, I). Returns what Keras returns: the sequence (B, T, H) or
        the last output (B, H), followed by the final states when return_state=True.

        x may also be integer ids (B, T) standing for one-hot vectors of width I (a character
        model's input, see :mod:`fusedrnn.ops`): build the layer first with ``build(I)``; the
        results equal those for the one-hot float input, and ``backward`` returns None for x.
        """
        x = chk.as_array("x", x)
        if np.issubdtype(x.dtype, np.integer):
            if not self.built:
                raise RuntimeError(f"{self.name}: integer (one-hot) input needs the vocabulary size: "
                                   "call build(vocabulary_size) first")
            x = chk.token_ids("x", x, int(self.kernel.shape[0]))  # type: ignore[union-attr]
            input_dim = int(self.kernel.shape[0])  # type: ignore[union-attr]
        else:
            x = chk.check_float("x", x)
            if x.ndim != 3:
                raise ValueError(f"x: expected a 3-D array (batch, time, features), got shape {x.shape}")
            if x.dtype != self.dtype:
                raise TypeError(f"x: expected dtype {self.dtype} (the layer's dtype), got {x.dtype}")
            input_dim = int(x.shape[2])
        if not self.built:
            self.build(input_dim)
        states: List[Optional[np.ndarray]] = [None] * self._n_states
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray):
                initial_state = [initial_state]
            if len(initial_state) != self._n_states:
                raise ValueError(f"initial_state: expected {self._n_states} array(s), got {len(initial_state)}")
            states = list(initial_state)
        dmask, rmask = self._dropout_masks(int(x.shape[0]), input_dim, training)
        keep_cache = is_grad_enabled()
        outputs, final_states, cache = self._run(x, states, mask, dmask, rmask, keep_cache)
        self._cache = cache
        self._called_without_cache = not keep_cache
        self._had_initial_state = initial_state is not None
        out = outputs if self.return_sequences else outputs[:, -1]
        if self.return_state:
            return [out, *final_states]
        return out

    def backward(self, d_output: np.ndarray, d_states: Optional[Sequence[Optional[np.ndarray]]] = None) -> ArrayOrTuple:
        """Back-propagates through the last call.

        d_output has the shape of the output (the sequence or the last step); d_states are the
        gradients of the returned final states (return_state=True), each may be None. Returns
        dx (B, T, I) (None for one-hot id input), or (dx, dh0[, dc0]) when the call had an
        initial_state. Fills self.grads.
        """
        if self._cache is None:
            if self._called_without_cache:
                raise RuntimeError(f"{self.name}: the last call ran under fusedrnn.no_grad(), which keeps nothing "
                                   "for backward(); call the layer outside it to take gradients")
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        B, T, H = self._cache.batch, self._cache.steps, self.units
        d_output = chk.check_float("d_output", d_output, self.dtype)
        if self.return_sequences:
            chk.check_shape("d_output", d_output, (B, T, H), "(batch, time, units)")
            d_outputs = d_output
        else:
            chk.check_shape("d_output", d_output, (B, H), "(batch, units)")
            d_outputs = np.zeros((B, T, H), self.dtype)
            d_outputs[:, -1] = d_output
        d_outputs = np.ascontiguousarray(d_outputs)
        ds: List[Optional[np.ndarray]] = [None] * self._n_states
        if d_states is not None:
            if len(d_states) != self._n_states:
                raise ValueError(f"d_states: expected {self._n_states} array(s), got {len(d_states)}")
            ds = list(d_states)
        dx, d_initial, grads = self._backward(self._cache, d_outputs, ds)
        self.grads = grads
        if self._had_initial_state:
            return (dx, *d_initial)
        return dx

    @abc.abstractmethod
    def _backward(self, cache: ops.RecurrentCache, d_outputs: np.ndarray, ds: List[Optional[np.ndarray]]
                  ) -> Tuple[np.ndarray, List[np.ndarray], List[np.ndarray]]:
        """The cell's backward op: (dx, initial-state gradients, weight gradients)."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(units={self.units}, return_sequences={self.return_sequences}, "
                f"return_state={self.return_state}, go_backwards={self.go_backwards})")


class SimpleRNN(_Recurrent):
    """Fully-connected RNN, ``h_t = activation(x_t W + b + h_{t-1} U)``, as keras.layers.SimpleRNN.

    Weights: kernel (I, H), recurrent_kernel (H, H), bias (H,). activation: 'tanh' or 'relu'.
    """

    _cell = "rnn"
    _gates = 1
    _n_states = 1

    def __init__(self, units: int, activation: str = "tanh", **kwargs: Any) -> None:
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation: expected 'tanh' or 'relu', got {activation!r}")
        super().__init__(units, **kwargs)
        self.activation = activation

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "activation": self.activation}

    def _run(self, x, states, mask, dmask, rmask, keep_cache):
        outputs, h, cache = ops.rnn_forward(x, states[0], self.kernel, self.recurrent_kernel, self.bias, mask=mask,
                                            go_backwards=self.go_backwards, activation=self.activation,
                                            dropout_mask=dmask, recurrent_dropout_mask=rmask, keep_cache=keep_cache)
        return outputs, [h], cache

    def _backward(self, cache, d_outputs, ds):
        dx, dh0, dk, drk, db = ops.rnn_backward(cache, d_outputs, ds[0])
        return dx, [dh0], [dk, drk, db]


class LSTM(_Recurrent):
    """Long short-term memory, as keras.layers.LSTM (gates i, f, c, o; sigmoid and tanh).

    Weights: kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,); unit_forget_bias=True starts
    the forget gate's bias at one, as Keras does. States: [h, c].
    """

    _cell = "lstm"
    _gates = 4
    _n_states = 2

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}

    def _initial_bias(self) -> np.ndarray:
        if self.unit_forget_bias:
            return init.lstm_unit_forget_bias(self.units, self.dtype)
        return super()._initial_bias()

    def _run(self, x, states, mask, dmask, rmask, keep_cache):
        outputs, h, c, cache = ops.lstm_forward(x, states[0], states[1], self.kernel, self.recurrent_kernel, self.bias,
                                                mask=mask, go_backwards=self.go_backwards, dropout_mask=dmask,
                                                recurrent_dropout_mask=rmask, keep_cache=keep_cache)
        return outputs, [h, c], cache

    def _backward(self, cache, d_outputs, ds):
        dx, dh0, dc0, dk, drk, db = ops.lstm_backward(cache, d_outputs, ds[0], ds[1])
        return dx, [dh0, dc0], [dk, drk, db]


class GRU(_Recurrent):
    """Gated recurrent unit, as keras.layers.GRU (gates z, r, h).

    ``reset_after=True`` (Keras 3's default) uses bias (2, 3H): input and recurrent biases;
    ``reset_after=False`` the original formulation with bias (3H,). Weights: kernel (I, 3H),
    recurrent_kernel (H, 3H).
    """

    _cell = "gru"
    _gates = 3
    _n_states = 1

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "reset_after": self.reset_after}

    def _bias_shape(self) -> Tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _initial_bias(self) -> np.ndarray:
        return init.zeros(self._bias_shape(), self.dtype)

    def _run(self, x, states, mask, dmask, rmask, keep_cache):
        outputs, h, cache = ops.gru_forward(x, states[0], self.kernel, self.recurrent_kernel, self.bias, mask=mask,
                                            go_backwards=self.go_backwards, reset_after=self.reset_after,
                                            dropout_mask=dmask, recurrent_dropout_mask=rmask, keep_cache=keep_cache)
        return outputs, [h], cache

    def _backward(self, cache, d_outputs, ds):
        dx, dh0, dk, drk, db = ops.gru_backward(cache, d_outputs, ds[0])
        return dx, [dh0], [dk, drk, db]
