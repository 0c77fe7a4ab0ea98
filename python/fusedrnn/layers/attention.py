"""Attention layers: Keras's ``Attention`` and ``AdditiveAttention``, and ``BahdanauAttention``.

``Attention`` and ``AdditiveAttention`` take Keras's constructor and call arguments, weights and
return values (``layer.set_weights(keras_layer.get_weights())`` copies a Keras layer), with the
deviations documented in :mod:`fusedrnn.ops.attention` (fully masked rows give zeros; masked
keys get exactly zero weight; no attention dropout). Every layer has ``backward``::

    context = layer([query, value])             # forward, keeps what the backward pass needs
    d_query, d_value = layer.backward(d_context) # input gradients; fills layer.grads

``layer.grads`` is aligned with ``layer.get_weights()``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from fusedrnn import initializers as init
from fusedrnn import ops
from fusedrnn.ops import _checks as chk
from fusedrnn.weight_versions import weights_changed


def _layer_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in chk.FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


class Attention:
    """Dot-product (Luong) attention, as ``keras.layers.Attention`` with ``score_mode="dot"``.

    ``scores = scale * query @ key^T``, ``weights = softmax(scores)`` over the unmasked keys,
    ``output = weights @ value``. With ``use_scale=True`` the layer has one weight, ``scale`` of
    shape () initialised to 1, as Keras's. Only ``score_mode="dot"`` and ``dropout=0`` are
    supported.

    Call: ``layer([query, value])`` or ``layer([query, value, key])`` with query (B, Tq, D),
    value (B, Tv, Dv), key (B, Tv, D); ``mask=[query_mask, value_mask]`` (boolean, either may be
    None); ``use_causal_mask``; ``return_attention_scores`` to also get the weights (B, Tq, Tv).
    """

    _kind = "dot"

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: Optional[int] = None, dtype: Any = "float32", name: Optional[str] = None) -> None:
        if score_mode != "dot":
            raise ValueError(f"score_mode: only 'dot' is supported, got {score_mode!r}")
        self._check_dropout(dropout)
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = 0.0
        self.dtype = _layer_dtype(dtype)
        self.name = name or type(self).__name__.lower()
        self.rng = np.random.default_rng(seed)
        self.scale: Optional[np.ndarray] = None
        self._built = False
        self.grads: List[np.ndarray] = []
        self._cache: Optional[ops.AttentionCache] = None
        self._n_inputs = 2

    @staticmethod
    def _check_dropout(dropout: float) -> None:
        if float(dropout) != 0.0:
            raise ValueError(f"dropout: attention dropout is not supported, expected 0.0, got {dropout!r}")

    # -- weights -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self._built

    def _scale_shape(self, dim: int) -> Tuple[int, ...]:
        return ()

    def _initial_scale(self, dim: int) -> np.ndarray:
        return np.ones((), self.dtype)  # Keras: initializer="ones"

    def build(self, dim: int) -> None:
        """Creates the weights (Keras's initialisers) for queries of `dim` features."""
        self.scale = self._initial_scale(int(dim)) if self.use_scale else None
        self._built = True

    def get_weights(self) -> List[np.ndarray]:
        """[scale] when use_scale, else []; Keras's order and shapes."""
        if not self.use_scale:
            return []
        if not self._built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build(dim)")
        return [np.array(self.scale, copy=True)]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets [scale] (e.g. a Keras layer's get_weights()), or [] without use_scale."""
        expected = 1 if self.use_scale else 0
        if len(weights) != expected:
            raise ValueError(f"weights: expected {expected} array(s) {'[scale]' if expected else '[]'}, "
                             f"got {len(weights)}")
        if not self.use_scale:
            self._built = True
            return
        w = np.asarray(weights[0])
        if self._kind == "dot":
            if w.shape != ():
                raise ValueError(f"weights[0] (scale): expected shape (), got {w.shape}")
        elif w.ndim != 1 or w.shape[0] == 0:
            raise ValueError(f"weights[0] (scale): expected shape (dim,), got {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError("weights[0] (scale): contains NaN or inf")
        self.scale = np.array(w, dtype=self.dtype, order="C")  # keeps a 0-d scale 0-d
        self._built = True

    # -- forward / backward --------------------------------------------------------------------
    def __call__(self, inputs: Sequence[np.ndarray], mask: Optional[Sequence[Optional[np.ndarray]]] = None,
                 training: bool = False, return_attention_scores: bool = False,
                 use_causal_mask: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Runs the layer. Returns the output (B, Tq, Dv), and the weights (B, Tq, Tv) too when
        return_attention_scores. `training` has no effect (no dropout)."""
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"inputs: expected a list [query, value] or [query, value, key], "
                             f"got {chk.describe(inputs)}" +
                             (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple)) else ""))
        query_mask = value_mask = None
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
                raise ValueError(f"mask: expected a list [query_mask, value_mask], got {chk.describe(mask)}")
            query_mask, value_mask = mask[0], mask[1]
        query = chk.check_float("inputs[0] (query)", inputs[0])
        if query.dtype != self.dtype:
            raise TypeError(f"inputs[0] (query): expected dtype {self.dtype} (the layer's dtype), got {query.dtype}")
        if query.ndim != 3:
            raise ValueError(f"inputs[0] (query): expected a 3-D array (batch, Tq, dim), got shape {query.shape}")
        if not self._built:
            self.build(int(query.shape[-1]))
        value = inputs[1]
        key = inputs[2] if len(inputs) > 2 else None
        forward = ops.dot_attention_forward if self._kind == "dot" else ops.additive_attention_forward
        context, weights, cache = forward(query, value, key, scale=self.scale, query_mask=query_mask,
                                          value_mask=value_mask, causal=use_causal_mask)
        self._cache = cache
        self._n_inputs = len(inputs)
        if return_attention_scores:
            return context, weights
        return context

    def backward(self, d_output: np.ndarray, d_attention_scores: Optional[np.ndarray] = None) -> List[np.ndarray]:
        """Back-propagates through the last call.

        d_output (B, Tq, Dv) is the output's gradient, d_attention_scores (B, Tq, Tv) that of the
        returned weights (or None). Returns the gradients of the inputs, in their order:
        [d_query, d_value] or [d_query, d_value, d_key]. Fills self.grads ([d_scale] or []).
        """
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        backward = ops.dot_attention_backward if self._kind == "dot" else ops.additive_attention_backward
        d_query, d_key, d_value, d_scale = backward(self._cache, d_output, d_attention_scores)
        self.grads = [d_scale] if self.use_scale else []
        if self._n_inputs == 3:
            return [d_query, d_value, d_key]
        return [d_query, d_value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(use_scale={self.use_scale})"


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention, as ``keras.layers.AdditiveAttention``.

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])``, then the same
    masked softmax and weighted sum as :class:`Attention`. With ``use_scale=True`` (the default,
    as in Keras) the layer has one weight, ``scale`` of shape (dim,), Glorot-uniform initialised.
    Query and key must have the same last axis ``dim``.
    """

    _kind = "additive"

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed: Optional[int] = None,
                 dtype: Any = "float32", name: Optional[str] = None) -> None:
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, dtype=dtype, name=name)

    def _initial_scale(self, dim: int) -> np.ndarray:
        # Keras's glorot_uniform on a 1-D shape uses fan_in = fan_out = dim.
        return init.glorot_uniform((dim,), self.rng, self.dtype)


class BahdanauAttention:
    """Encoder-decoder additive attention (Bahdanau et al., 2015) with its two projections.

    For decoder queries ``q_i`` (B, [Tq,] Dq) and encoder outputs ``h_j`` (B, Tv, Dv)::

        e_ij  = v^T tanh(W1^T q_i + W2^T h_j [+ b])      score, (B, Tq, Tv)
        a_ij  = exp(e_ij) / sum_k exp(e_ik)                weights, over unmasked j
        c_i   = sum_j a_ij h_j                             context, (B, Tq, Dv)

    with ``W1`` (Dq, units), ``W2`` (Dv, units), ``v`` (units,) and, when ``use_bias=True``, one
    bias ``b`` (units,). This is the TensorFlow NMT tutorial's ``BahdanauAttention``
    (``V(tanh(W1(query) + W2(values)))``) with its two Dense biases merged into ``b`` and ``V``'s
    bias dropped (a constant added to every score cancels in the softmax). The score is
    :func:`fusedrnn.ops.additive_attention_forward` on the projected query and keys with
    ``scale = v``; masking follows it (a row with every key masked gets zero weights).

    Weights: ``[W1, W2, v]``, or ``[W1, W2, v, b]`` with ``use_bias``; Glorot-uniform kernels
    (``v`` as a Dense(1) kernel), zero bias.

    Call: ``context, weights = layer(query, values, value_mask=None)``. A 2-D query (B, Dq) is
    one decoder step and gives context (B, Dv) and weights (B, Tv); a 3-D query (B, Tq, Dq) a
    whole target sequence. When decoding step by step, compute ``keys = layer.project_keys(
    values)`` once and pass ``projected_keys=keys`` to every step: that skips the (B*Tv, Dv) x
    (Dv, units) projection, the largest part of a step (inference only: ``backward`` then
    refuses). ``backward(d_context, d_weights=None)`` returns ``(d_query, d_values)`` and fills
    ``grads``, aligned with ``get_weights()``.
    """

    def __init__(self, units: int, use_bias: bool = False, seed: Optional[int] = None, dtype: Any = "float32",
                 name: Optional[str] = None) -> None:
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"units: expected a positive integer, got {units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.dtype = _layer_dtype(dtype)
        self.name = name or "bahdanau_attention"
        self.rng = np.random.default_rng(seed)
        self.W1: Optional[np.ndarray] = None
        self.W2: Optional[np.ndarray] = None
        self.v: Optional[np.ndarray] = None
        self.b: Optional[np.ndarray] = None
        self.grads: List[np.ndarray] = []
        self._saved: Optional[Tuple[Any, ...]] = None

    # -- weights -------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.W1 is not None

    def build(self, query_dim: int, value_dim: int) -> None:
        """Creates the weights for queries of `query_dim` and values of `value_dim` features."""
        U = self.units
        self.W1 = init.glorot_uniform((int(query_dim), U), self.rng, self.dtype)
        self.W2 = init.glorot_uniform((int(value_dim), U), self.rng, self.dtype)
        self.v = init.glorot_uniform((U, 1), self.rng, self.dtype).reshape(U)
        self.b = init.zeros((U,), self.dtype) if self.use_bias else None

    @property
    def params(self) -> List[np.ndarray]:
        """The live weights [W1, W2, v] (+ [b]) (optimizers update them in place)."""
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build()")
        w = [self.W1, self.W2, self.v]
        return w + [self.b] if self.use_bias else w  # type: ignore[return-value,list-item]

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments: ``BahdanauAttention(**config)`` makes an equal, unbuilt layer."""
        return {"units": self.units, "use_bias": self.use_bias, "dtype": self.dtype.name, "name": self.name}

    def get_weights(self) -> List[np.ndarray]:
        """[W1 (Dq, units), W2 (Dv, units), v (units,)] (+ [b (units,)] with use_bias)."""
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build()")
        w = [self.W1.copy(), self.W2.copy(), self.v.copy()]  # type: ignore[union-attr]
        return w + [self.b.copy()] if self.use_bias else w  # type: ignore[union-attr]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets [W1, W2, v] (+ [b] with use_bias)."""
        n = 4 if self.use_bias else 3
        if len(weights) != n:
            raise ValueError(f"weights: expected {n} arrays {'[W1, W2, v, b]' if self.use_bias else '[W1, W2, v]'}, "
                             f"got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        U = self.units
        names = ["W1", "W2", "v", "b"]
        for k, a in enumerate(arrays):
            ok = a.ndim == 2 and a.shape[1] == U and a.shape[0] > 0 if k < 2 else a.shape == (U,)
            if not ok:
                want = f"(features, {U})" if k < 2 else f"({U},)"
                raise ValueError(f"weights[{k}] ({names[k]}): expected shape {want}, got {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"weights[{k}] ({names[k]}): contains NaN or inf")
        arrays = [np.ascontiguousarray(a, dtype=self.dtype) for a in arrays]
        self.W1, self.W2, self.v = arrays[:3]
        self.b = arrays[3] if self.use_bias else None
        weights_changed(*self.params)  # copies checked from them before (even the same arrays) are stale

    # -- forward / backward --------------------------------------------------------------------
    def _values(self, values: Any) -> np.ndarray:
        values = chk.check_float("values", values)
        if values.dtype != self.dtype:
            raise TypeError(f"values: expected dtype {self.dtype} (the layer's dtype), got {values.dtype}")
        if values.ndim != 3:
            raise ValueError(f"values: expected a 3-D array (batch, Tv, value_dim), got shape {values.shape}")
        return np.ascontiguousarray(values)  # a layer takes any strides; the ops want C order

    def project_keys(self, values: np.ndarray) -> np.ndarray:
        """W2^T h_j for every encoder output: (B, Tv, units). Reuse it across decoder steps."""
        values = self._values(values)
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build()")
        if values.shape[-1] != self.W2.shape[0]:  # type: ignore[union-attr]
            raise ValueError(f"values: expected {self.W2.shape[0]} features (W2 is {self.W2.shape}), "  # type: ignore[union-attr]
                             f"got shape {values.shape}")
        return ops.dense_forward(values, self.W2)

    def __call__(self, query: np.ndarray, values: np.ndarray, value_mask: Optional[np.ndarray] = None,
                 query_mask: Optional[np.ndarray] = None, *, projected_keys: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
        """Returns ``(context, weights)``: (B, Dv), (B, Tv) for a 2-D query (one decoder step);
        (B, Tq, Dv), (B, Tq, Tv) for a 3-D one. value_mask (B, Tv) masks encoder positions;
        query_mask (B, Tq) (3-D queries) zeroes the context of masked target positions."""
        query = np.ascontiguousarray(chk.check_float("query", query))
        if query.dtype != self.dtype:
            raise TypeError(f"query: expected dtype {self.dtype} (the layer's dtype), got {query.dtype}")
        if query.ndim not in (2, 3):
            raise ValueError(f"query: expected (batch, query_dim) or (batch, Tq, query_dim), got shape {query.shape}")
        values = self._values(values)
        if values.shape[0] != query.shape[0]:
            raise ValueError(f"values: batch size {values.shape[0]} does not match the query's {query.shape[0]}")
        if not self.built:
            self.build(int(query.shape[-1]), int(values.shape[-1]))
        if query.shape[-1] != self.W1.shape[0]:  # type: ignore[union-attr]
            raise ValueError(f"query: expected {self.W1.shape[0]} features (W1 is {self.W1.shape}), "  # type: ignore[union-attr]
                             f"got shape {query.shape}")
        step = query.ndim == 2
        if step and query_mask is not None:
            raise ValueError("query_mask: only for a 3-D query (batch, Tq, query_dim)")
        q3 = query[:, None, :] if step else query
        if projected_keys is None:
            keys = self.project_keys(values)
        else:
            keys = chk.float_input("projected_keys", projected_keys, self.dtype,
                                   (values.shape[0], values.shape[1], self.units), "(batch, Tv, units)")
        pq = ops.dense_forward(q3, self.W1, self.b)
        context, weights, cache = ops.additive_attention_forward(pq, values, keys, scale=self.v,
                                                                 query_mask=query_mask, value_mask=value_mask)
        self._saved = (q3, values, cache, step, projected_keys is not None)
        if step:
            return context[:, 0], weights[:, 0]
        return context, weights

    def backward(self, d_context: np.ndarray, d_weights: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
        """Gradients of the last call: ``(d_query, d_values)`` shaped like query and values.
        Fills ``grads`` = [dW1, dW2, dv] (+ [db])."""
        if self._saved is None:
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        q3, values, cache, step, given_keys = self._saved
        if given_keys:
            raise RuntimeError(f"{self.name}: backward() is not available after a call with projected_keys "
                               "(inference only); call the layer without them to train")
        if step:
            B, Dv, Tv = values.shape[0], values.shape[2], values.shape[1]
            d_context = chk.check_float("d_context", d_context, self.dtype)
            chk.check_shape("d_context", d_context, (B, Dv), "(batch, value_dim)")
            d_context = d_context.reshape(B, 1, Dv)
            if d_weights is not None:
                d_weights = chk.check_float("d_weights", d_weights, self.dtype)
                chk.check_shape("d_weights", d_weights, (B, Tv), "(batch, Tv)")
                d_weights = d_weights.reshape(B, 1, Tv)
        d_pq, d_keys, d_values, d_v = ops.additive_attention_backward(cache, d_context, d_weights)
        d_q3, dW1, db = ops.dense_backward(q3, self.W1, d_pq, with_bias=self.use_bias)  # type: ignore[arg-type]
        d_values_k, dW2, _ = ops.dense_backward(values, self.W2, d_keys)  # type: ignore[arg-type]
        d_values += d_values_k
        self.grads = [dW1, dW2, d_v] + ([db] if self.use_bias else [])
        d_query = d_q3[:, 0] if step else d_q3
        return d_query, d_values

    def __repr__(self) -> str:
        return f"BahdanauAttention(units={self.units}, use_bias={self.use_bias})"
