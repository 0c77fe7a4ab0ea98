"""Cross-entropy losses with their gradients, matching Keras 3's values.

Every loss returns ``(loss, d_y_pred)``: the reduced scalar loss as a Python float and its
gradient w.r.t. ``y_pred`` (same shape and dtype as ``y_pred``, float32 or float64; the
element losses are computed in that dtype).

Reduction (Keras's default ``"sum_over_batch_size"``, read from ``keras.src.losses.loss`` in
Keras 3.15). With per-sample losses ``l_i`` (one per label of sparse categorical
cross-entropy; binary cross-entropy first averages over the last axis, as Keras does):

- no weights:                ``sum(l) / N``, N the number of per-sample losses (so binary
  cross-entropy without weights is the mean over all elements);
- ``sample_weight=w``:       ``sum(w * l) / N`` -- divided by N, *not* by ``sum(w)``; this is
  what ``keras.losses.SparseCategoricalCrossentropy()(y, p, sample_weight=mask)`` gives, so a
  0/1 mask passed as sample weights averages over all positions, padding included;
- ``mask=m`` (bool):         ``sum(w * l * m) / count(m)`` (0 when nothing is unmasked) -- what
  Keras gives when ``y_pred`` carries a Keras mask (the output of a layer behind
  ``Embedding(mask_zero=True)``, i.e. what ``model.fit`` sees): the mean over the unmasked
  positions only.

Keras 3 computes the loss of a sigmoid/softmax layer's output from its logits (the tensor
carries them). To match that, call the loss on ``dense.logits`` with ``from_logits=True`` and
pass the gradient back with ``dense.backward(d, from_logits=True)``
(:class:`fusedrnn.layers.core.Dense`).

Differences from Keras: probabilities outside [0, 1] raise ValueError (Keras clips them
silently, which hides logits passed with ``from_logits=False``); ``sample_weight`` and ``mask``
must have exactly the per-sample losses' shape (no broadcasting); only the default reduction
is implemented; labels must be integers for the sparse loss (Keras casts floats).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from fusedrnn.ops import _checks as chk

#: Keras's ``backend.epsilon()``: probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7

LossAndGrad = Tuple[float, np.ndarray]


# -- argument checks ---------------------------------------------------------------------------
def _predictions(y_pred: Any, from_logits: bool) -> np.ndarray:
    y_pred = chk.check_float("y_pred", y_pred)
    if y_pred.ndim < 1:
        raise ValueError(f"y_pred: expected at least 1 dimension, got shape {y_pred.shape}")
    if y_pred.shape[-1] < 1:
        raise ValueError(f"y_pred: expected a non-empty last axis, got shape {y_pred.shape}")
    chk.check_finite("y_pred", y_pred)
    if not from_logits and y_pred.size and (y_pred.min() < 0 or y_pred.max() > 1):
        raise ValueError(f"y_pred: expected probabilities in [0, 1] (from_logits=False), got values in "
                         f"[{float(y_pred.min()):.4g}, {float(y_pred.max()):.4g}]; pass from_logits=True for logits")
    return y_pred


def _weights(sample_weight: Any, mask: Any, shape: Tuple[int, ...], dtype: np.dtype
             ) -> Tuple[Optional[np.ndarray], float]:
    """The combined per-sample weights (or None) and the divisor of the weighted sum."""
    n = int(np.prod(shape))
    w = None
    if sample_weight is not None:
        sw = chk.as_array("sample_weight", sample_weight)
        if not (np.issubdtype(sw.dtype, np.floating) or np.issubdtype(sw.dtype, np.integer) or sw.dtype == np.bool_):
            raise TypeError(f"sample_weight: expected a numeric array, got dtype {sw.dtype}")
        chk.check_shape("sample_weight", sw, shape, "(the per-sample losses' shape)")
        w = sw.astype(dtype)
        chk.check_finite("sample_weight", w)
    if mask is None:
        return w, float(n)
    m = chk.as_array("mask", mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask: expected a boolean array, got dtype {m.dtype}")
    chk.check_shape("mask", m, shape, "(the per-sample losses' shape)")
    w = m.astype(dtype) if w is None else w * m
    return w, float(np.count_nonzero(m))


def _reduce(per_sample: np.ndarray, w: Optional[np.ndarray], divisor: float) -> Tuple[float, np.ndarray]:
    """(sum(w * l) / divisor, d loss / d l); 0 and zero gradients when the divisor is 0."""
    dtype = per_sample.dtype
    if divisor == 0:
        return 0.0, np.zeros_like(per_sample)
    scale = dtype.type(1.0 / divisor)
    weighted = per_sample if w is None else per_sample * w
    d = np.full_like(per_sample, scale) if w is None else w * scale
    return float(weighted.sum(dtype=dtype) / dtype.type(divisor)), d


def _clip_probabilities(p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Keras's clip to [eps, 1 - eps] and where it passes gradients (inside or on the bounds)."""
    lo, hi = p.dtype.type(EPSILON), p.dtype.type(1.0 - EPSILON)
    return np.clip(p, lo, hi), (p >= lo) & (p <= hi)


# -- binary cross-entropy ----------------------------------------------------------------------
def _binary_labels(y_true: Any, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    y = chk.as_array("y_true", y_true)
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise TypeError(f"y_true: expected 0/1 labels or probabilities (bool, integer or float), got dtype {y.dtype}")
    chk.check_shape("y_true", y, shape, "(the shape of y_pred)")
    y = y.astype(dtype)
    chk.check_finite("y_true", y)
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"y_true: expected labels in [0, 1], got values in [{float(y.min()):.4g}, {float(y.max()):.4g}]")
    return y


def binary_crossentropy(y_true: Any, y_pred: Any, *, from_logits: bool = False,
                        sample_weight: Any = None, mask: Any = None) -> LossAndGrad:
    """Binary cross-entropy, as ``keras.losses.BinaryCrossentropy(from_logits=...)``.

    y_pred: probabilities in [0, 1] (clipped to [1e-7, 1 - 1e-7] as Keras does; the gradient is
    zero where the clip is active, as TensorFlow's) or logits (``from_logits=True``, computed as
    ``max(z, 0) - z * y + log1p(exp(-|z|))``, finite for any finite z), any shape (..., K),
    float32/float64. y_true: same shape, 0/1 labels or soft labels in [0, 1] (bool, integer or
    float). The element losses are averaged over the last axis, then reduced as described in the
    module docstring; sample_weight (float) and mask (bool) have shape y_pred.shape[:-1] and
    need y_pred.ndim >= 2.

    Returns (loss, d_y_pred).
    """
    y_pred = _predictions(y_pred, from_logits)
    y = _binary_labels(y_true, y_pred.shape, y_pred.dtype)
    if (sample_weight is not None or mask is not None) and y_pred.ndim < 2:
        raise ValueError(f"y_pred: sample_weight/mask weigh the rows of a (batch, ..., K) array; "
                         f"got 1-D y_pred of shape {y_pred.shape} (reshape it to (batch, 1))")
    if from_logits:
        z = y_pred
        elem = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        e = np.exp(-np.abs(z))
        d_elem = np.where(z >= 0, 1 / (1 + e), e / (1 + e)) - y  # sigmoid(z) - y, overflow-free
    else:
        p, inside = _clip_probabilities(y_pred)
        elem = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        d_elem = (-y / p + (1 - y) / (1 - p)) * inside
    k = y_pred.shape[-1]
    per_sample = elem.mean(axis=-1, dtype=y_pred.dtype)
    w, divisor = _weights(sample_weight, mask, per_sample.shape, y_pred.dtype)
    loss, d_per_sample = _reduce(per_sample, w, divisor)
    grad = d_elem * (d_per_sample[..., None] / y_pred.dtype.type(k))
    return loss, grad.astype(y_pred.dtype, copy=False)


# -- sparse categorical cross-entropy ----------------------------------------------------------
def _class_labels(y_true: Any, y_pred: np.ndarray) -> np.ndarray:
    y = chk.as_array("y_true", y_true)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y_true: expected integer class ids, got dtype {y.dtype}")
    lead = y_pred.shape[:-1]
    if y.shape == lead + (1,):
        y = y.reshape(lead)
    if y.shape != lead:
        raise ValueError(f"y_true: expected shape {lead} (y_pred's shape without its class axis), "
                         f"got {y.shape} for y_pred of shape {y_pred.shape}")
    classes = y_pred.shape[-1]
    if y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise ValueError(f"y_true: class ids must lie in [0, {classes}) (y_pred's last axis), got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return y


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, *, from_logits: bool = False,
                                    sample_weight: Any = None, mask: Any = None) -> LossAndGrad:
    """Cross-entropy with integer labels, as ``keras.losses.SparseCategoricalCrossentropy``.

    y_pred: (..., C) float32/float64, e.g. (B, C) or (B, T, C): logits (``from_logits=True``;
    a log-softmax shifted by the row maximum, finite for any finite logits) or probabilities
    (``from_logits=False``: as Keras, clipped to [1e-7, 1 - 1e-7], logged, then fed to a
    softmax cross-entropy, which renormalises rows that do not sum to one). y_true: integer
    class ids in [0, C) of shape y_pred.shape[:-1] (a trailing axis of 1 is accepted).
    sample_weight (float) and mask (bool): shape y_pred.shape[:-1]; the reduction is described
    in the module docstring (a mask averages over the unmasked positions, sample weights over
    all of them).

    Returns (loss, d_y_pred).
    """
    y_pred = _predictions(y_pred, from_logits)
    labels = _class_labels(y_true, y_pred)
    if from_logits:
        z = y_pred
    else:
        p, inside = _clip_probabilities(y_pred)
        z = np.log(p)
    shifted = z - z.max(axis=-1, keepdims=True)
    picked = np.take_along_axis(shifted, labels[..., None], axis=-1)[..., 0]
    e = np.exp(shifted, out=shifted)  # in place: a (B, T, V) array of logits is large
    total = e.sum(axis=-1, keepdims=True)
    per_sample = np.log(total[..., 0]) - picked
    w, divisor = _weights(sample_weight, mask, per_sample.shape, y_pred.dtype)
    loss, d_per_sample = _reduce(per_sample, w, divisor)
    d_z = np.divide(e, total, out=e)
    np.put_along_axis(d_z, labels[..., None], np.take_along_axis(d_z, labels[..., None], axis=-1) - 1, axis=-1)
    d_z *= d_per_sample[..., None]
    if from_logits:
        return loss, d_z
    return loss, (d_z / p * inside).astype(y_pred.dtype, copy=False)


# -- Keras-style classes -----------------------------------------------------------------------
class BinaryCrossentropy:
    """``loss, d_y_pred = BinaryCrossentropy(from_logits)(y_true, y_pred, sample_weight, mask)``;
    see :func:`binary_crossentropy`."""

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None, mask: Any = None) -> LossAndGrad:
        return binary_crossentropy(y_true, y_pred, from_logits=self.from_logits, sample_weight=sample_weight,
                                   mask=mask)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}


class SparseCategoricalCrossentropy:
    """``loss, d_y_pred = SparseCategoricalCrossentropy(from_logits)(y_true, y_pred, sample_weight, mask)``;
    see :func:`sparse_categorical_crossentropy`."""

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None, mask: Any = None) -> LossAndGrad:
        return sparse_categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits,
                                               sample_weight=sample_weight, mask=mask)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}
