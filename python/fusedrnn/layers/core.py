"""Embedding, Dense and Dropout with Keras's constructor arguments, weights and results.

These follow the layer contract of :mod:`fusedrnn.layers.base` (``params``/``grads``,
``get_weights``/``set_weights``, ``compute_mask``, ``get_config``, ``__call__`` / ``backward``)
and are written in NumPy: each forward keeps what its backward needs.

``layer.set_weights(keras_layer.get_weights())`` copies a Keras layer; both then give the same
numbers to float32 rounding.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from fusedrnn import initializers as init
from fusedrnn import ops
from fusedrnn.ops import _checks as chk
from fusedrnn.weight_versions import weights_changed

ACTIVATIONS = (None, "linear", "sigmoid", "tanh", "relu", "softmax")


def _layer_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in chk.FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow for large |z| (same dtype as z)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum (same dtype as z)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def segment_sums(ids: np.ndarray, rows: np.ndarray, direct_ranks: int = 4):
    """Sums the rows (N, D) that share an id (N,): returns (unique ids (U,), sums (U, D)).

    The ids are sorted once; the k-th occurrence of every id (k < direct_ranks) is added with
    one vectorised gather/scatter per k, and the rare longer runs with ``np.add.reduceat``
    (which is slow per segment, so it only gets the few long ones). For 2560 ids x 128
    features this takes about 0.3 ms, ``np.add.at`` about 3 ms.
    """
    if ids.size == 0:
        return np.zeros(0, np.intp), rows[:0].copy()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    n = sorted_ids.size
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    counts = np.diff(np.r_[starts, n])
    g = rows[order]
    sums = g[starts]  # the first occurrence of each id
    longest = int(counts.max())
    if longest > 1:
        segment = np.repeat(np.arange(starts.size), counts)
        rank = np.arange(n) - np.repeat(starts, counts)  # occurrence number within its run
        for k in range(1, min(longest, direct_ranks)):
            sel = np.flatnonzero(rank == k)
            sums[segment[sel]] += g[sel]  # ids are distinct within one rank: no collisions
        if longest > direct_ranks:
            rest = np.flatnonzero(rank >= direct_ranks)
            rest_segment = segment[rest]
            rest_starts = np.flatnonzero(np.r_[True, rest_segment[1:] != rest_segment[:-1]])
            sums[rest_segment[rest_starts]] += np.add.reduceat(g[rest], rest_starts, axis=0)
    return sorted_ids[starts].astype(np.intp), sums


class Embedding:
    """Lookup table, as ``keras.layers.Embedding``: ids (...) -> vectors (..., output_dim).

    Weights: ``embeddings`` (input_dim, output_dim), initialised uniform in [-0.05, 0.05]
    (Keras's default). Input: integer ids of shape (B,) or (B, T), any integer dtype, each in
    [0, input_dim). Output: (B, output_dim) or (B, T, output_dim) in the layer's dtype.

    ``backward(d)`` returns None (ids have no gradient) and sets ``grads[0]`` to the dense
    (input_dim, output_dim) gradient: the rows of ``d`` summed per id. Rows of ids that did not
    occur are zero; ``touched_rows`` holds the sorted unique ids of the last backward so that an
    optimizer may update only those rows.

    Masks: with ``mask_zero=True`` the output mask is ``x != 0`` (id 0 is padding). Otherwise the
    incoming mask is passed on unchanged (Keras returns None there; an Embedding is normally a
    model's first layer, so the two agree in practice).
    """

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False, seed: Optional[int] = None,
                 dtype: Any = "float32", name: Optional[str] = None) -> None:
        self.input_dim = _positive_int("input_dim", input_dim)
        self.output_dim = _positive_int("output_dim", output_dim)
        self.mask_zero = bool(mask_zero)
        self.dtype = _layer_dtype(dtype)
        self.name = name or "embedding"
        self.rng = np.random.default_rng(seed)
        self.embeddings = self.rng.uniform(-0.05, 0.05, (self.input_dim, self.output_dim)).astype(self.dtype)
        self.grads: List[np.ndarray] = []
        self.touched_rows: Optional[np.ndarray] = None
        self._ids: Optional[np.ndarray] = None

    @property
    def params(self) -> List[np.ndarray]:
        """The live weights [embeddings]."""
        return [self.embeddings]

    def get_weights(self) -> List[np.ndarray]:
        """[embeddings (input_dim, output_dim)], a copy."""
        return [self.embeddings.copy()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets [embeddings] (e.g. a Keras Embedding's get_weights())."""
        if len(weights) != 1:
            raise ValueError(f"weights: expected 1 array [embeddings], got {len(weights)}")
        w = np.asarray(weights[0])
        chk.check_shape("weights[0] (embeddings)", w, (self.input_dim, self.output_dim), "(input_dim, output_dim)")
        self.embeddings = np.ascontiguousarray(w, dtype=self.dtype)
        weights_changed(self.embeddings)

    def get_config(self) -> Dict[str, Any]:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim, "mask_zero": self.mask_zero,
                "dtype": self.dtype.name, "name": self.name}

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """``x != 0`` (same shape as x) with mask_zero, else the incoming mask."""
        if self.mask_zero:
            return np.asarray(x) != 0
        return mask

    def _check_ids(self, x: Any) -> np.ndarray:
        x = chk.as_array("x", x)
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"x: expected integer ids, got dtype {x.dtype}")
        if x.ndim not in (1, 2):
            raise ValueError(f"x: expected ids of shape (batch,) or (batch, time), got shape {x.shape}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >= self.input_dim):
            raise ValueError(f"x: ids must lie in [0, {self.input_dim}) (input_dim), got values in "
                             f"[{int(x.min())}, {int(x.max())}]")
        return x

    def __call__(self, x: Any, mask: Optional[np.ndarray] = None, training: bool = False) -> np.ndarray:
        """Looks up the rows of ``x``: (B,) -> (B, output_dim), (B, T) -> (B, T, output_dim)."""
        x = self._check_ids(x)
        self._ids = x
        return self.embeddings[x]

    def backward(self, d_output: np.ndarray) -> None:
        """Sets ``grads = [d_embeddings]`` from d_output (..., output_dim); returns None.

        The scatter-add is :func:`segment_sums` (about 10x faster than ``np.add.at``).
        """
        if self._ids is None:
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        d_output = chk.check_float("d_output", d_output, self.dtype)
        chk.check_shape("d_output", d_output, self._ids.shape + (self.output_dim,), "(ids shape..., output_dim)")
        ids = self._ids.reshape(-1)
        grad = np.zeros_like(self.embeddings)
        touched, sums = segment_sums(ids, d_output.reshape(-1, self.output_dim))
        grad[touched] = sums
        self.touched_rows = touched
        self.grads = [grad]
        return None

    def __repr__(self) -> str:
        return f"Embedding(input_dim={self.input_dim}, output_dim={self.output_dim}, mask_zero={self.mask_zero})"


class Dense:
    """Fully-connected layer, as ``keras.layers.Dense``: ``activation(x @ kernel + bias)``.

    Weights: kernel (D, units) (glorot uniform), bias (units,) (zeros) when use_bias. Input:
    (B, D) or (B, T, D) (any leading axes; one GEMM over the flattened rows) in the layer's
    dtype. Output: (..., units). activation: None/'linear', 'sigmoid', 'tanh', 'relu' or
    'softmax' (over the last axis). The mask passes through unchanged.

    ``logits`` keeps the pre-activation of the last call (..., units). A loss computed from
    logits (what Keras 3 does for a sigmoid/softmax output) gives the gradient w.r.t. it; pass
    that gradient with ``backward(d, from_logits=True)``.
    """

    def __init__(self, units: int, activation: Optional[str] = None, use_bias: bool = True,
                 seed: Optional[int] = None, dtype: Any = "float32", name: Optional[str] = None) -> None:
        self.units = _positive_int("units", units)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
        self.activation = None if activation == "linear" else activation
        self.use_bias = bool(use_bias)
        self.dtype = _layer_dtype(dtype)
        self.name = name or "dense"
        self.rng = np.random.default_rng(seed)
        self.kernel: Optional[np.ndarray] = None
        self.bias: Optional[np.ndarray] = None
        self.grads: List[np.ndarray] = []
        self.logits: Optional[np.ndarray] = None
        self._x: Optional[np.ndarray] = None
        self._y: Optional[np.ndarray] = None

    @property
    def built(self) -> bool:
        return self.kernel is not None

    def build(self, input_dim: int) -> None:
        """Creates kernel (input_dim, units) and bias (units,) with Keras's default initialisers."""
        input_dim = _positive_int("input_dim", input_dim)
        self.kernel = init.glorot_uniform((input_dim, self.units), self.rng, self.dtype)
        self.bias = init.zeros((self.units,), self.dtype) if self.use_bias else None

    def _require_built(self) -> None:
        if not self.built:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or build(input_dim)")

    @property
    def params(self) -> List[np.ndarray]:
        """The live weights [kernel, bias] ([kernel] without bias)."""
        self._require_built()
        return [self.kernel] + ([self.bias] if self.use_bias else [])  # type: ignore[list-item]

    def get_weights(self) -> List[np.ndarray]:
        """[kernel (D, units), bias (units,)] (no bias when use_bias=False), copies."""
        return [w.copy() for w in self.params]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets [kernel, bias] (e.g. a Keras Dense's get_weights()); builds the layer if needed."""
        n = 2 if self.use_bias else 1
        if len(weights) != n:
            raise ValueError(f"weights: expected {n} array(s) [kernel{', bias' if self.use_bias else ''}], "
                             f"got {len(weights)}")
        kernel = np.asarray(weights[0])
        if kernel.ndim != 2 or kernel.shape[1] != self.units:
            raise ValueError(f"weights[0] (kernel): expected shape (input_dim, {self.units}), got {kernel.shape}")
        self.kernel = np.ascontiguousarray(kernel, dtype=self.dtype)
        if self.use_bias:
            bias = np.asarray(weights[1])
            chk.check_shape("weights[1] (bias)", bias, (self.units,), "(units,)")
            self.bias = np.ascontiguousarray(bias, dtype=self.dtype)
        weights_changed(*self.params)  # copies checked from them before (even the same arrays) are stale

    def get_config(self) -> Dict[str, Any]:
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "dtype": self.dtype.name, "name": self.name}

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The incoming mask, unchanged."""
        return mask

    def __call__(self, x: Any, mask: Optional[np.ndarray] = None, training: bool = False) -> np.ndarray:
        """x (..., D) -> (..., units)."""
        x = chk.check_float("x", x)
        if x.ndim < 2:
            raise ValueError(f"x: expected at least 2 dimensions (batch, ..., features), got shape {x.shape}")
        if x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype} (the layer's dtype), got {x.dtype}")
        if not self.built:
            self.build(int(x.shape[-1]))
        if x.shape[-1] != self.kernel.shape[0]:  # type: ignore[union-attr]
            raise ValueError(f"x: expected {self.kernel.shape[0]} features in the last axis "  # type: ignore[union-attr]
                             f"(the kernel's rows), got shape {x.shape}")
        # fusedrnn's own GEMM, on its threads: NumPy's BLAS threads keep spinning for a while after
        # each call and would steal the cores from the recurrent kernels that run next.
        x = np.ascontiguousarray(x)
        z = ops.dense_forward(x, self.kernel, self.bias if self.use_bias else None)
        if self.activation is None:
            y = z
        elif self.activation == "sigmoid":
            y = sigmoid(z)
        elif self.activation == "tanh":
            y = np.tanh(z)
        elif self.activation == "relu":
            y = np.maximum(z, 0)
        else:
            y = softmax(z)
        self._x, self.logits, self._y = x, z, y
        return y

    def backward(self, d_output: np.ndarray, from_logits: bool = False) -> np.ndarray:
        """Returns dx (..., D) and sets ``grads = [d_kernel, d_bias]``.

        d_output: the gradient of the output (..., units), or, with ``from_logits=True``, of the
        pre-activation ``logits`` (the activation's derivative is then skipped).
        """
        if self._x is None:
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        d = chk.check_float("d_output", d_output, self.dtype)
        chk.check_shape("d_output", d, self._y.shape, "(..., units)")  # type: ignore[union-attr]
        y, z = self._y, self.logits
        if not from_logits and self.activation is not None:
            if self.activation == "sigmoid":
                d = d * y * (1 - y)
            elif self.activation == "tanh":
                d = d * (1 - y * y)
            elif self.activation == "relu":
                d = d * (z > 0)
            else:  # softmax: J^T d = y * (d - <d, y>)
                d = y * (d - np.sum(d * y, axis=-1, keepdims=True))
        dx, d_kernel, d_bias = ops.dense_backward(self._x, self.kernel, np.ascontiguousarray(d),  # type: ignore[arg-type]
                                                  with_bias=self.use_bias)
        self.grads = [d_kernel, d_bias] if self.use_bias else [d_kernel]
        return dx

    def __repr__(self) -> str:
        return f"Dense(units={self.units}, activation={self.activation!r}, use_bias={self.use_bias})"


class Dropout:
    """Inverted dropout, as ``keras.layers.Dropout``.

    With ``training=True`` each element is kept with probability 1 - rate and scaled by
    1 / (1 - rate); otherwise (and for rate 0) the input is returned unchanged. Input: any
    float32/float64 array; output: same shape and dtype. No weights; the mask passes through.
    Unlike Keras, rate must be < 1 and there is no ``noise_shape`` (one draw per element).
    """

    def __init__(self, rate: float, seed: Optional[int] = None, name: Optional[str] = None) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) \
                or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate: expected a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.name = name or "dropout"
        self.rng = np.random.default_rng(seed)
        self.grads: List[np.ndarray] = []
        self._scale: Optional[np.ndarray] = None
        self._shape: Optional[tuple] = None

    @property
    def params(self) -> List[np.ndarray]:
        return []

    def get_weights(self) -> List[np.ndarray]:
        return []

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        if len(weights) != 0:
            raise ValueError(f"weights: Dropout has no weights, got {len(weights)} array(s)")

    def get_config(self) -> Dict[str, Any]:
        return {"rate": self.rate, "name": self.name}

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return mask

    def __call__(self, x: Any, mask: Optional[np.ndarray] = None, training: bool = False) -> np.ndarray:
        x = chk.check_float("x", x)
        self._shape = x.shape
        if not training or self.rate == 0.0:
            self._scale = None
            return x
        keep = self.rng.random(x.shape) >= self.rate
        self._scale = keep * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._scale

    def backward(self, d_output: np.ndarray) -> np.ndarray:
        """The gradient of the input: d_output times the last call's scaled keep-mask."""
        if self._shape is None:
            raise RuntimeError(f"{self.name}: backward() called before the layer was called")
        d = chk.check_float("d_output", d_output)
        chk.check_shape("d_output", d, self._shape, "(the input's shape)")
        return d if self._scale is None else d * self._scale

    def __repr__(self) -> str:
        return f"Dropout(rate={self.rate})"
