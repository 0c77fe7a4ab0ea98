"""Recurrent layers with Keras's constructor arguments, weights and return values.

``layer.set_weights(keras_layer.get_weights())`` copies a Keras layer; calling both on the same
input gives the same numbers (to float32 rounding). Every layer also has ``backward``:

    y = layer(x)                    # forward, keeps what the backward pass needs
    dx = layer.backward(dy)         # gradient w.r.t. x; fills layer.grads

``layer.grads`` is aligned with ``layer.get_weights()``: [d_kernel, d_recurrent_kernel, d_bias]
(no d_bias with ``use_bias=False``).

Keras's options ``use_bias``, ``stateful`` (with ``reset_state()``) and ``zero_output_for_mask``
behave as in Keras 3, forward and backward; see docs/layers.md.
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
from fusedrnn.weight_versions import weights_changed

ArrayOrTuple = Union[np.ndarray, Tuple[np.ndarray, ...]]


class _Recurrent(RecurrentStepMixin, abc.ABC):
    """Shared machinery of SimpleRNN, LSTM and GRU; see those classes."""

    _cell = ""
    _gates = 1
    _n_states = 1

    def __init__(self, units: int, *, use_bias: bool = True, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 zero_output_for_mask: bool = False, dropout: float = 0.0, recurrent_dropout: float = 0.0,
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
        self.use_bias = bool(use_bias)
        self.stateful = bool(stateful)
        self.zero_output_for_mask = bool(zero_output_for_mask)
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
        self._output_keep: Optional[np.ndarray] = None  # (B, T, 1) 0/1 in step order, zero_output_for_mask
        self._kept_states: Optional[List[np.ndarray]] = None  # stateful: the last call's final states
        self._zero_bias: Optional[np.ndarray] = None  # use_bias=False: the zeros the ops read as bias

    # -- weights -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.kernel is not None

    @property
    def params(self) -> List[np.ndarray]:
        """The live weights [kernel, recurrent_kernel, bias] (no bias with use_bias=False);
        optimizers update them in place."""
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build(input_dim)")
        live = [self.kernel, self.recurrent_kernel]
        if self.use_bias:
            live.append(self.bias)
        return live  # type: ignore[return-value]

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``type(layer)(**config)`` rebuilds the layer."""
        return {"units": self.units, "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": self.stateful,
                "zero_output_for_mask": self.zero_output_for_mask, "dropout": self.dropout,
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
        self.bias = self._initial_bias() if self.use_bias else None

    def get_weights(self) -> List[np.ndarray]:
        """[kernel (I, G*H), recurrent_kernel (H, G*H), bias], Keras's order and shapes; without
        the bias when use_bias=False (two arrays, as Keras)."""
        return [w.copy() for w in self.params]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets [kernel, recurrent_kernel, bias] (e.g. a Keras layer's get_weights()); only
        [kernel, recurrent_kernel] when use_bias=False."""
        count = 3 if self.use_bias else 2
        if len(weights) != count:
            names = "[kernel, recurrent_kernel, bias]" if self.use_bias else "[kernel, recurrent_kernel] (use_bias=False)"
            raise ValueError(f"weights: expected {count} arrays {names}, got {len(weights)}")
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
        self.kernel, self.recurrent_kernel = arrays[:2]
        self.bias = arrays[2] if self.use_bias else None
        weights_changed(*self.params)  # copies packed or checked from them before (even the same arrays) are stale

    def _bias_shape(self) -> Tuple[int, ...]:
        return (self._gates * self.units,)

    def _op_bias(self) -> np.ndarray:
        """The bias the ops read: the layer's own, or zeros with use_bias=False (whose gradient
        the layer drops), which computes exactly Keras's bias-free cell."""
        if self.use_bias:
            return self.bias  # type: ignore[return-value]
        if self._zero_bias is None:
            self._zero_bias = np.zeros(self._bias_shape(), self.dtype)
        return self._zero_bias

    # -- stateful ------------------------------------------------------------------------------
    @property
    def states(self) -> Optional[List[np.ndarray]]:
        """stateful=True: copies of the states the next call starts from ([h] or [h, c], each
        (batch, units)); None before the first call and for a layer that is not stateful."""
        return None if self._kept_states is None else [s.copy() for s in self._kept_states]

    def reset_state(self, states: Optional[Sequence[np.ndarray]] = None) -> None:
        """Zeros the kept states of a stateful layer (Keras's ``reset_state()``); the batch size
        stays. ``states`` ([h] or [h, c], each (batch, units) in the layer's dtype, as Keras 2's
        ``reset_states(states)``) sets them instead and fixes the batch size to theirs. On a
        layer that is not stateful, ``reset_state()`` does nothing (as Keras)."""
        if states is None:
            if self._kept_states is not None:
                self._kept_states = [np.zeros_like(s) for s in self._kept_states]
            return
        if not self.stateful:
            raise ValueError(f"states: {self.name} is not stateful (stateful=False) and keeps no states to set")
        self._kept_states = self._checked_states("states", states)

    def reset_states(self, states: Optional[Sequence[np.ndarray]] = None) -> None:
        """Alias of :meth:`reset_state` (Keras keeps both names)."""
        self.reset_state(states)

    def _checked_states(self, arg: str, states: Any) -> List[np.ndarray]:
        """Copies of [h] / [h, c]: finite float arrays (batch, units) of the layer's dtype, one batch size."""
        if isinstance(states, np.ndarray):
            states = [states]
        if not isinstance(states, (list, tuple)) or len(states) != self._n_states:
            got = f"{len(states)}" if isinstance(states, (list, tuple)) else chk.describe(states)
            names = "[h, c]" if self._n_states == 2 else "[h]"
            raise ValueError(f"{arg}: expected a list of {self._n_states} array(s) {names}, got {got}")
        first = chk.as_array(f"{arg}[0]", states[0])
        batch = int(first.shape[0]) if first.ndim else 0
        return [np.array(chk.float_input(f"{arg}[{k}]", np.ascontiguousarray(chk.as_array(f"{arg}[{k}]", s)),
                                         self.dtype, (batch, self.units), "(batch, units)"))
                for k, s in enumerate(states)]

    def _check_stateful_batch(self, batch: int) -> None:
        if self.stateful and self._kept_states is not None and self._kept_states[0].shape[0] != batch:
            kept = self._kept_states[0].shape[0]
            raise ValueError(f"x: {self.name} is stateful and keeps states for a batch of {kept}, got a batch of "
                             f"{batch}; a stateful layer's batch size is fixed (call reset_state(states) with "
                             f"states of the new batch size to change it)")

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
             dmask: Optional[np.ndarray], rmask: Optional[np.ndarray], keep_cache: bool,
             packed: Optional[ops.PackedWeights]) -> Tuple[np.ndarray, List[np.ndarray], Optional[ops.RecurrentCache]]:
        """The cell's forward op: (outputs, final states, cache); the cache is None without keep_cache.
        ``packed``: the weights' packed copy to use (see packed_calls), or None."""

    def __call__(self, x: np.ndarray, mask: Optional[np.ndarray] = None,
                 initial_state: Optional[Sequence[np.ndarray]] = None, training: bool = False) -> Any:
        """Runs the layer on x (B, T, I). Returns what Keras returns: the sequence (B, T, H) or
        the last output (B, H), followed by the final states when return_state=True.

        mask (B, T) bool: masked steps keep the states and repeat the previous output, or output
        zeros with zero_output_for_mask=True (then the last output too is zero for a row whose
        last processed step is masked, as in Keras). A stateful layer starts from the states its
        previous call ended with (zeros at first) unless initial_state is given, and keeps the
        new final states either way.

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
        self._check_stateful_batch(int(x.shape[0]))
        states: List[Optional[np.ndarray]] = [None] * self._n_states
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray):
                initial_state = [initial_state]
            if len(initial_state) != self._n_states:
                raise ValueError(f"initial_state: expected {self._n_states} array(s), got {len(initial_state)}")
            states = list(initial_state)
        elif self._kept_states is not None:
            states = list(self._kept_states)
        dmask, rmask = self._dropout_masks(int(x.shape[0]), input_dim, training)
        keep_cache = is_grad_enabled()
        packed = self._calls_packed if not keep_cache and dmask is None and rmask is None else None
        outputs, final_states, cache = self._run(x, states, mask, dmask, rmask, keep_cache, packed)
        self._cache = cache
        self._called_without_cache = not keep_cache
        self._had_initial_state = initial_state is not None
        if self.stateful:
            self._kept_states = [np.array(s) for s in final_states]
        self._output_keep = None
        if self.zero_output_for_mask and mask is not None:
            step_mask = np.asarray(mask)[:, ::-1] if self.go_backwards else np.asarray(mask)
            self._output_keep = step_mask[:, :, None].astype(self.dtype)
            outputs = outputs * self._output_keep
        out = outputs if self.return_sequences else outputs[:, -1]
        if self.return_state:
            return [out, *final_states]
        return out

    def backward(self, d_output: np.ndarray, d_states: Optional[Sequence[Optional[np.ndarray]]] = None) -> ArrayOrTuple:
        """Back-propagates through the last call.

        d_output has the shape of the output (the sequence or the last step); d_states are the
        gradients of the returned final states (return_state=True), each may be None. Returns
        dx (B, T, I) (None for one-hot id input), or (dx, dh0[, dc0]) when the call had an
        initial_state. Fills self.grads. A stateful layer's gradient stops at the states carried
        over from the previous call (truncated back-propagation through time, as in Keras).
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
        if self._output_keep is not None:  # zeroed outputs pass no gradient back
            d_outputs = d_outputs * self._output_keep
        d_outputs = np.ascontiguousarray(d_outputs)
        ds: List[Optional[np.ndarray]] = [None] * self._n_states
        if d_states is not None:
            if len(d_states) != self._n_states:
                raise ValueError(f"d_states: expected {self._n_states} array(s), got {len(d_states)}")
            ds = list(d_states)
        dx, d_initial, grads = self._backward(self._cache, d_outputs, ds)
        self.grads = grads if self.use_bias else grads[:2]
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

    def _run(self, x, states, mask, dmask, rmask, keep_cache, packed):
        outputs, h, cache = ops.rnn_forward(x, states[0], self.kernel, self.recurrent_kernel, self._op_bias(), mask=mask,
                                            go_backwards=self.go_backwards, activation=self.activation,
                                            dropout_mask=dmask, recurrent_dropout_mask=rmask, keep_cache=keep_cache,
                                            packed=packed)
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

    def _run(self, x, states, mask, dmask, rmask, keep_cache, packed):
        outputs, h, c, cache = ops.lstm_forward(x, states[0], states[1], self.kernel, self.recurrent_kernel, self._op_bias(),
                                                mask=mask, go_backwards=self.go_backwards, dropout_mask=dmask,
                                                recurrent_dropout_mask=rmask, keep_cache=keep_cache,
                                                packed=packed)
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

    def _run(self, x, states, mask, dmask, rmask, keep_cache, packed):
        outputs, h, cache = ops.gru_forward(x, states[0], self.kernel, self.recurrent_kernel, self._op_bias(), mask=mask,
                                            go_backwards=self.go_backwards, reset_after=self.reset_after,
                                            dropout_mask=dmask, recurrent_dropout_mask=rmask, keep_cache=keep_cache,
                                            packed=packed)
        return outputs, [h], cache

    def _backward(self, cache, d_outputs, ds):
        dx, dh0, dk, drk, db = ops.gru_backward(cache, d_outputs, ds[0])
        return dx, [dh0], [dk, drk, db]
