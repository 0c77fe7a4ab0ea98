"""Bidirectional wrapper around a fusedrnn recurrent layer, as ``keras.layers.Bidirectional``."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from fusedrnn.layers.recurrent import GRU, LSTM, SimpleRNN, _Recurrent
from fusedrnn.ops import _checks as chk

MERGE_MODES = ("concat", "sum", "mul", "ave")
_RECURRENT = {cls.__name__: cls for cls in (SimpleRNN, LSTM, GRU)}

LayerOrConfig = Union[_Recurrent, Dict[str, Any]]


def _as_layer(arg: str, value: LayerOrConfig) -> _Recurrent:
    """A recurrent layer, or one rebuilt from ``{"class_name": ..., "config": ...}`` (get_config's form)."""
    if isinstance(value, _Recurrent):
        return value
    if isinstance(value, dict) and value.get("class_name") in _RECURRENT and isinstance(value.get("config"), dict):
        return _RECURRENT[value["class_name"]](**value["config"])
    raise TypeError(f"{arg}: expected a fusedrnn SimpleRNN, LSTM or GRU layer (or its serialised form "
                    f"{{'class_name': ..., 'config': ...}}), got {type(value).__name__}")


def _serialise(layer: _Recurrent) -> Dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


class Bidirectional:
    """Runs a recurrent layer forwards and a copy backwards over time and merges the outputs.

    ``layer``: a fusedrnn SimpleRNN, LSTM or GRU. As in Keras, the wrapper builds its own
    ``forward_layer`` from the layer's config (``forward_<name>``) and, unless ``backward_layer``
    is given, ``backward_layer = type(layer)(**config)`` with ``go_backwards`` flipped
    (``backward_<name>``). The given layer's weights are not used (Keras does the same); the
    copies draw their initial weights from generators spawned from the layer's own.

    Input: x (B, T, I) in the layer's dtype (or integer ids (B, T), see the recurrent layers),
    optional mask (B, T) bool. Output with H units: (B, T, 2H) for 'concat' and (B, T, H) for
    'sum', 'mul' and 'ave' when return_sequences, else (B, 2H) / (B, H). With return_sequences
    the backward output is flipped back into time order before merging. As Keras, the wrapper
    sets both layers' ``zero_output_for_mask`` to ``return_sequences``: outputs at masked steps
    are zero in the sequences, and the last outputs are the layers' own without them.

    ``stateful`` comes from the layer (the backward layer must agree): each direction keeps its
    own final states between calls; ``reset_state()`` zeros both (AttributeError when the
    wrapper is not stateful, as Keras) and ``states`` lists the forward then the backward ones.

    Weights: the forward layer's [kernel, recurrent_kernel, bias] then the backward layer's
    (each without the bias when it has use_bias=False), Keras's order; ``params``/``grads``
    likewise. ``return_state=True`` is not supported.
    """

    def __init__(self, layer: LayerOrConfig, merge_mode: str = "concat",
                 backward_layer: Optional[LayerOrConfig] = None, name: Optional[str] = None) -> None:
        layer = _as_layer("layer", layer)
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {MERGE_MODES}, got {merge_mode!r}")
        if layer.return_state:
            raise ValueError("layer: return_state=True is not supported by Bidirectional; "
                             "use return_state=False")
        seeds = np.random.SeedSequence(int(layer.rng.integers(1 << 63))).spawn(2)
        config = layer.get_config()
        base = layer.name.removeprefix("forward_").removeprefix("backward_")
        self.forward_layer = type(layer)(**{**config, "name": f"forward_{base}"})
        if backward_layer is None:
            self.backward_layer = type(layer)(**{**config, "go_backwards": not layer.go_backwards,
                                                 "name": f"backward_{base}"})
        else:
            self.backward_layer = _as_layer("backward_layer", backward_layer)
            self._check_backward_layer()
        self.forward_layer.rng = np.random.default_rng(seeds[0])
        if backward_layer is None:
            self.backward_layer.rng = np.random.default_rng(seeds[1])
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.stateful = layer.stateful
        self.units = layer.units
        self.dtype = layer.dtype
        self.name = name or f"bidirectional_{base}"
        self._cache: Optional[Dict[str, Any]] = None

    def _check_backward_layer(self) -> None:
        f, b = self.forward_layer, self.backward_layer
        if b.go_backwards == f.go_backwards:
            raise ValueError("backward_layer: expected go_backwards different from the forward layer's "
                             f"({f.go_backwards}), got {b.go_backwards}")
        for attr in ("return_sequences", "return_state", "stateful", "units", "dtype"):
            if getattr(b, attr) != getattr(f, attr):
                raise ValueError(f"backward_layer: expected {attr}={getattr(f, attr)!r} like the forward layer, "
                                 f"got {getattr(b, attr)!r}")

    # -- weights -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    def build(self, input_dim: int) -> None:
        """Builds both layers for inputs of `input_dim` features (or a one-hot vocabulary size)."""
        self.forward_layer.build(input_dim)
        self.backward_layer.build(input_dim)

    @property
    def params(self) -> List[np.ndarray]:
        """The live weights: the forward layer's, then the backward layer's."""
        return self.forward_layer.params + self.backward_layer.params

    @property
    def grads(self) -> List[np.ndarray]:
        """Gradients aligned with ``params`` (filled by ``backward``)."""
        return self.forward_layer.grads + self.backward_layer.grads

    def get_weights(self) -> List[np.ndarray]:
        """Forward [kernel, recurrent_kernel, bias], then backward (six arrays; four with
        use_bias=False), as Keras."""
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets the arrays of ``get_weights()`` (e.g. a Keras Bidirectional's)."""
        n_forward = 3 if self.forward_layer.use_bias else 2
        n_backward = 3 if self.backward_layer.use_bias else 2
        if len(weights) != n_forward + n_backward:
            raise ValueError(f"weights: expected {n_forward + n_backward} arrays (forward then backward "
                             f"[kernel, recurrent_kernel{', bias' if self.forward_layer.use_bias else ''}]), "
                             f"got {len(weights)}")
        self.forward_layer.set_weights(list(weights[:n_forward]))
        self.backward_layer.set_weights(list(weights[n_forward:]))

    # -- stateful ------------------------------------------------------------------------------
    @property
    def states(self) -> Optional[List[np.ndarray]]:
        """The forward layer's kept states then the backward layer's; None until both keep some."""
        f, b = self.forward_layer.states, self.backward_layer.states
        return None if f is None or b is None else f + b

    def reset_state(self) -> None:
        """Zeros both directions' kept states (Keras's Bidirectional.reset_state)."""
        if not self.stateful:
            raise AttributeError(f"{self.name}: reset_state() needs a stateful layer (stateful=True)")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self) -> None:
        """Alias of :meth:`reset_state` (Keras keeps both names)."""
        self.reset_state()

    def get_config(self) -> Dict[str, Any]:
        """JSON-serialisable; ``Bidirectional(**config)`` rebuilds an equal (unbuilt) wrapper."""
        forward = _serialise(self.forward_layer)
        return {"layer": forward, "merge_mode": self.merge_mode,
                "backward_layer": _serialise(self.backward_layer), "name": self.name}

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The input mask with return_sequences, otherwise none (Keras)."""
        return mask if self.return_sequences else None

    # -- forward / backward --------------------------------------------------------------------
    def __call__(self, x: Any, mask: Optional[np.ndarray] = None, training: bool = False) -> np.ndarray:
        """Runs both directions on x (B, T, I) and merges; see the class docstring for shapes."""
        y_f = self.forward_layer(x, mask=mask, training=training)
        y_b = self.backward_layer(x, mask=mask, training=training)
        if self.return_sequences:
            y_b = y_b[:, ::-1]
        if self.merge_mode == "concat":
            out = np.concatenate([y_f, y_b], axis=-1)
        elif self.merge_mode == "sum":
            out = y_f + y_b
        elif self.merge_mode == "ave":
            out = (y_f + y_b) / 2
        else:
            out = y_f * y_b
        self._cache = {"y_f": y_f, "y_b": y_b, "shape": out.shape}
        return np.ascontiguousarray(out)

    def backward(self, d_output: np.ndarray) -> Optional[np.ndarray]:
        """Returns dx (B, T, I) (None for integer-id input) and fills both layers' grads."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        c = self._cache
        d = chk.check_float("d_output", d_output, self.dtype)
        chk.check_shape("d_output", d, c["shape"], "(the output's shape)")
        H = self.units
        if self.merge_mode == "concat":
            d_f, d_b = d[..., :H], d[..., H:]
        elif self.merge_mode == "sum":
            d_f, d_b = d, d
        elif self.merge_mode == "ave":
            d_f = d_b = d / 2
        else:
            d_f, d_b = d * c["y_b"], d * c["y_f"]
        if self.return_sequences:
            d_b = d_b[:, ::-1]
        dx_f = self.forward_layer.backward(np.ascontiguousarray(d_f))
        dx_b = self.backward_layer.backward(np.ascontiguousarray(d_b))
        if dx_f is None or dx_b is None:
            return None
        return dx_f + dx_b

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r})"
