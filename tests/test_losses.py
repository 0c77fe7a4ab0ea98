"""fusedrnn.losses against Keras 3's losses (values and tf.GradientTape gradients), float64
finite differences, extreme logits and bad labels.

Tolerances, relative to the largest magnitude of Keras's result: float32 element losses differ
by a few ulp (a different log/exp and summation order over <= a few hundred elements), so
1e-5; float64 (Keras losses built with dtype="float64") 1e-12. Finite differences: float64,
eps = 1e-6, truncation ~eps^2 and rounding ~1e-16/eps, so 1e-6 leaves a wide margin.
TensorFlow is imported lazily, on the first Keras test.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn import losses
from fusedrnn.layers.core import Dense, Embedding

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(scope="module")
def tfk():
    pytest.importorskip("tensorflow")
    from _keras_oracle import _tf
    return _tf()


def close(ours, theirs, what, seed, rtol, atol=0.0):
    """|ours - theirs| <= rtol * max|theirs| + atol, elementwise (atol may be an array)."""
    theirs = np.asarray(theirs, np.float64)
    ours = np.asarray(ours, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape} (seed {seed})"
    assert np.all(np.isfinite(ours)), f"{what}: not finite (seed {seed})"
    scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-6)
    excess = np.abs(ours - theirs) - (rtol * scale + np.asarray(atol, np.float64))
    err = float(np.max(np.abs(ours - theirs), initial=0.0))
    assert np.all(excess <= 0), f"{what}: max error {err:.3g} vs scale {scale:.3g} (seed {seed})"


def cancellation_atol(dtype, n, terms=1.0):
    """Rounding left by a gradient computed as a difference (p - y) / n of O(terms) numbers.

    When the two nearly cancel (a confident, correct prediction), the result is tiny but its
    absolute error is still ~eps * terms / n, so a bound relative to the largest gradient
    alone fails on such draws; this is the absolute part of the bound (4 ulp).
    """
    return 4 * np.finfo(dtype).eps * np.asarray(terms, np.float64) / n


def keras_loss(tfk, name, y_true, y_pred, *, from_logits, sample_weight=None, keras_mask=None):
    """Keras's loss value and d loss / d y_pred; keras_mask is attached to y_pred like a layer's mask."""
    tf, keras = tfk
    from keras.src import backend as keras_backend
    loss_fn = getattr(keras.losses, name)(from_logits=from_logits, dtype=y_pred.dtype.name)
    p = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(p)
        q = tf.identity(p)
        if keras_mask is not None:
            keras_backend.set_keras_mask(q, tf.constant(keras_mask))
        sw = None if sample_weight is None else tf.constant(sample_weight)
        value = loss_fn(tf.constant(y_true), q, sample_weight=sw)
    return float(value), np.asarray(tape.gradient(value, p))


def fd_gradient(f, y_pred, eps=1e-6):
    grad = np.zeros_like(y_pred)
    flat, gflat = y_pred.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(y_pred)
        flat[i] = old - eps
        down = f(y_pred)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def random_shape(rng, ndim, min_last=1):
    return tuple(int(rng.integers(1, 7)) for _ in range(ndim - 1)) + (int(rng.integers(min_last, 12)),)


def probabilities(rng, shape, dtype, axis_sum=False):
    """Random probabilities, with some exact 0/1 and sub-epsilon values to exercise the clipping."""
    if axis_sum:
        z = 3 * rng.standard_normal(shape)
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
    else:
        p = rng.random(shape)
    special = rng.random(shape) < 0.1
    p[special] = rng.choice([0.0, 1.0, 1e-9, 1 - 1e-9], size=int(special.sum()))
    return p.astype(dtype)


# -- binary cross-entropy ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_binary_crossentropy_matches_keras(tfk, dtype, from_logits, ndim, rng, seed):
    shape = random_shape(rng, ndim)
    y_pred = (4 * rng.standard_normal(shape)).astype(dtype) if from_logits else probabilities(rng, shape, dtype)
    y_true = rng.integers(0, 2, shape) if rng.random() < 0.5 else rng.random(shape)  # hard or soft labels
    y_true = y_true.astype(dtype)
    ours, grad = losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    theirs, grad_k = keras_loss(tfk, "BinaryCrossentropy", y_true, y_pred, from_logits=from_logits)
    ctx = f"shape {shape} {np.dtype(dtype).name} from_logits={from_logits}"
    close(ours, theirs, f"loss {ctx}", seed, TOL[dtype])
    assert grad.dtype == dtype
    # d/dz = (sigmoid(z) - y) / n; from probabilities, (p - y) / (p (1 - p) n).
    p = np.asarray(y_pred, np.float64)
    terms = 1.0 if from_logits else 1.0 / np.maximum(p * (1 - p), 1e-7)
    close(grad, grad_k, f"gradient {ctx}", seed, TOL[dtype], cancellation_atol(dtype, y_pred.size, terms))
    close(ours, np.mean(losses_reference_bce(y_true, y_pred, from_logits)), f"mean {ctx}", seed, TOL[dtype])


def losses_reference_bce(y, p, from_logits):
    """Element losses in float64; the clip bounds are rounded to p's dtype, as Keras's are
    (1 - 1e-7 is 1 - 1.19e-7 in float32)."""
    lo, hi = float(p.dtype.type(1e-7)), float(p.dtype.type(1 - 1e-7))
    y, p = y.astype(np.float64), p.astype(np.float64)
    if from_logits:  # no clipping: exact for any logit
        return np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
    p = np.clip(p, lo, hi)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


@pytest.mark.parametrize("weighting", ["sample_weight", "mask", "both"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_crossentropy_weighted_matches_keras(tfk, weighting, from_logits, rng, seed):
    shape = random_shape(rng, 3)
    y_pred = (3 * rng.standard_normal(shape)).astype(np.float32)
    if not from_logits:
        y_pred = 1 / (1 + np.exp(-y_pred))
    y_true = rng.integers(0, 2, shape).astype(np.float32)
    sw = rng.random(shape[:-1]).astype(np.float32) if weighting != "mask" else None
    mask = rng.random(shape[:-1]) < 0.6 if weighting != "sample_weight" else None
    ours, grad = losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits, sample_weight=sw, mask=mask)
    theirs, grad_k = keras_loss(tfk, "BinaryCrossentropy", y_true, y_pred, from_logits=from_logits,
                                sample_weight=sw, keras_mask=mask)
    close(ours, theirs, f"loss {weighting} {shape}", seed, 1e-5)
    close(grad, grad_k, f"gradient {weighting} {shape}", seed, 1e-5)


def test_binary_crossentropy_gradcheck_float64(rng, seed):
    shape = (3, 4, 5)
    y_true = rng.random(shape)
    sw, mask = rng.random(shape[:-1]), rng.random(shape[:-1]) < 0.7
    mask[0, 0] = True
    for from_logits in (True, False):
        y_pred = 2 * rng.standard_normal(shape) if from_logits else rng.uniform(0.05, 0.95, shape)

        def f(p):
            return losses.binary_crossentropy(y_true, p, from_logits=from_logits, sample_weight=sw, mask=mask)[0]

        _, grad = losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits, sample_weight=sw, mask=mask)
        numeric = fd_gradient(f, y_pred)
        close(grad, numeric, f"gradient from_logits={from_logits}", seed, 1e-6)


def test_binary_crossentropy_extreme_logits(tfk, rng, seed):
    z = np.array([[100.0, -100.0, 80.0, -80.0, 0.0, 30.0]], np.float32)
    y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0, 0.5]], np.float32)
    loss, grad = losses.binary_crossentropy(y, z, from_logits=True)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), f"seed {seed}"
    expected = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z.astype(np.float64)))))
    assert abs(loss - expected) <= 1e-6 * expected
    theirs, grad_k = keras_loss(tfk, "BinaryCrossentropy", y, z, from_logits=True)
    close(loss, theirs, "loss", seed, 1e-6)
    close(grad, grad_k, "gradient", seed, 1e-6)


def test_sigmoid_dense_loss_uses_logits_like_keras(tfk, rng, seed):
    """Keras 3 computes BCE of a sigmoid Dense output from its logits: no clipping even when
    saturated. Ours, on dense.logits with from_logits=True, gives the same loss and gradients."""
    tf, keras = tfk
    B, D = 6, 5
    k = keras.layers.Dense(1, activation="sigmoid")
    k.build((B, D))
    k.set_weights([20 * rng.standard_normal((D, 1)).astype(np.float32), np.array([0.5], np.float32)])
    x = rng.standard_normal((B, D)).astype(np.float32)
    y = rng.integers(0, 2, (B, 1)).astype(np.float32)
    with tf.GradientTape() as tape:
        value = keras.losses.BinaryCrossentropy()(tf.constant(y), k(tf.constant(x)))
    g_k = tape.gradient(value, [w.value for w in k.weights])
    ours = Dense(1, activation="sigmoid")
    ours.set_weights(k.get_weights())
    ours(x)
    loss, d_logits = losses.binary_crossentropy(y, ours.logits, from_logits=True)
    ours.backward(d_logits, from_logits=True)
    close(loss, float(value), "loss", seed, 1e-5)
    # Saturated logits: each (sigmoid - y) / B may cancel to almost nothing and keep only its
    # rounding, which the weight gradients sum over the batch (weighted by |x| for the kernel).
    atols = [cancellation_atol(np.float32, B, np.abs(x).sum(axis=0)[:, None]), cancellation_atol(np.float32, B, B)]
    for a, b, what, atol in zip(ours.grads, g_k, ["d_kernel", "d_bias"], atols):
        close(a, b, what, seed, 1e-5, atol)


# -- sparse categorical cross-entropy ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("ndim", [2, 3])
def test_sparse_categorical_crossentropy_matches_keras(tfk, dtype, from_logits, ndim, rng, seed):
    # At least two classes: Keras squeezes a trailing class axis of 1 and then rejects the shapes.
    shape = random_shape(rng, ndim, min_last=2)
    y_pred = (3 * rng.standard_normal(shape)).astype(dtype) if from_logits else probabilities(rng, shape, dtype, True)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(rng.choice([np.int32, np.int64, np.uint8]))
    if rng.random() < 0.3:
        labels = labels[..., None]  # Keras accepts a trailing axis of 1
    ours, grad = losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits)
    theirs, grad_k = keras_loss(tfk, "SparseCategoricalCrossentropy", labels, y_pred, from_logits=from_logits)
    ctx = f"shape {shape} {np.dtype(dtype).name} from_logits={from_logits}"
    close(ours, theirs, f"loss {ctx}", seed, TOL[dtype])
    assert grad.dtype == dtype
    # From logits: (softmax - one_hot) / rows; from probabilities the terms grow like 1 / p.
    terms = 1.0 if from_logits else 1.0 / np.maximum(np.asarray(y_pred, np.float64), 1e-7)
    rows = y_pred.size // shape[-1]
    close(grad, grad_k, f"gradient {ctx}", seed, TOL[dtype], cancellation_atol(dtype, rows, terms))


@pytest.mark.parametrize("weighting", ["sample_weight", "mask", "both", "all_masked"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_sparse_categorical_crossentropy_weighted_matches_keras(tfk, weighting, from_logits, rng, seed):
    """sample_weight: sum(w*l)/N; a Keras mask on y_pred: sum(w*l*m)/count(m) (0 if none)."""
    B, T, C = int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(2, 10))
    y_pred = (2 * rng.standard_normal((B, T, C))).astype(np.float32)
    if not from_logits:
        y_pred = np.exp(y_pred) / np.exp(y_pred).sum(-1, keepdims=True)
    labels = rng.integers(0, C, (B, T))
    sw = rng.random((B, T)).astype(np.float32) if weighting in ("sample_weight", "both") else None
    mask = None
    if weighting != "sample_weight":
        mask = rng.random((B, T)) < 0.6 if weighting != "all_masked" else np.zeros((B, T), bool)
    ours, grad = losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits,
                                                        sample_weight=sw, mask=mask)
    theirs, grad_k = keras_loss(tfk, "SparseCategoricalCrossentropy", labels, y_pred, from_logits=from_logits,
                                sample_weight=sw, keras_mask=mask)
    close(ours, theirs, f"loss {weighting}", seed, 1e-5)
    close(grad, grad_k, f"gradient {weighting}", seed, 1e-5)
    if weighting == "all_masked":
        assert ours == 0.0 and not grad.any()


def test_masked_sequence_loss_matches_keras_model(tfk, rng, seed):
    """The mask a masked layer output carries (Embedding(mask_zero) -> Dense) in Keras, and the
    same mask given explicitly to ours: the mean over unmasked steps; also with mask as weights."""
    tf, keras = tfk
    B, T, V, E, C = 4, 7, 11, 6, 5
    ids = rng.integers(1, V, (B, T))
    for b in range(B):
        ids[b, int(rng.integers(1, T + 1)):] = 0  # post-padding
    labels = rng.integers(0, C, (B, T))
    k_emb, k_dense = keras.layers.Embedding(V, E, mask_zero=True), keras.layers.Dense(C)
    with tf.GradientTape() as tape:
        logits_k = k_dense(k_emb(tf.constant(ids)))
        assert getattr(logits_k, "_keras_mask", None) is not None
        value = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(tf.constant(labels), logits_k)
    g_k = tape.gradient(value, [w.value for w in k_dense.weights])
    emb, dense = Embedding(V, E, mask_zero=True), Dense(C)
    emb.set_weights(k_emb.get_weights())
    dense.set_weights(k_dense.get_weights())
    x = emb(ids)
    logits = dense(x)
    mask = dense.compute_mask(None, emb.compute_mask(ids, None))
    loss, d_logits = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True, mask=mask)
    dense.backward(d_logits)
    close(loss, float(value), "masked loss", seed, 1e-5)
    # Each (softmax - onehot) / n of a confident, correct step may cancel to its rounding, which
    # the weight gradients sum over the n valid steps (weighted by |x| for the kernel).
    n = int(mask.sum())
    atols = [cancellation_atol(np.float32, n, np.abs(x[mask]).sum(axis=0)[:, None]), cancellation_atol(np.float32, n, n)]
    for a, b, what, atol in zip(dense.grads, g_k, ["d_kernel", "d_bias"], atols):
        close(a, b, what, seed, 1e-5, atol)
    # The same mask given as sample weights divides by B*T instead of the number of valid steps.
    sw = mask.astype(np.float32)
    weighted, _ = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True, sample_weight=sw)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, np.asarray(logits_k), sample_weight=sw)
    close(weighted, float(theirs), "mask as sample_weight", seed, 1e-5)
    close(weighted, loss * mask.sum() / mask.size, "mask as sample_weight vs mask", seed, 1e-5)


def test_sparse_categorical_crossentropy_gradcheck_float64(rng, seed):
    B, T, C = 3, 4, 5
    labels = rng.integers(0, C, (B, T))
    sw, mask = rng.random((B, T)), rng.random((B, T)) < 0.7
    mask[0, 0] = True
    for from_logits in (True, False):
        y_pred = 2 * rng.standard_normal((B, T, C)) if from_logits else rng.uniform(0.05, 0.9, (B, T, C))

        def f(p):
            return losses.sparse_categorical_crossentropy(labels, p, from_logits=from_logits,
                                                          sample_weight=sw, mask=mask)[0]

        _, grad = losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits,
                                                         sample_weight=sw, mask=mask)
        close(grad, fd_gradient(f, y_pred), f"gradient from_logits={from_logits}", seed, 1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_categorical_crossentropy_extreme_logits(tfk, dtype, rng, seed):
    z = (100 * np.sign(rng.standard_normal((4, 3, 6)))).astype(dtype)
    z[0, 0] = [100, -100, 100, -100, 100, -100]
    labels = rng.integers(0, 6, (4, 3))
    labels[0, 0] = 1  # a -100 logit next to +100 ones: loss 200
    loss, grad = losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), f"seed {seed}"
    theirs, grad_k = keras_loss(tfk, "SparseCategoricalCrossentropy", labels, z, from_logits=True)
    close(loss, theirs, "loss", seed, TOL[dtype])
    close(grad, grad_k, "gradient", seed, TOL[dtype])


def test_loss_classes(rng):
    y_pred = rng.standard_normal((3, 4))
    labels = rng.integers(0, 4, 3)
    a = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, y_pred)
    b = losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    y = rng.integers(0, 2, (3, 4))
    a = losses.BinaryCrossentropy(from_logits=True)(y, y_pred)
    b = losses.binary_crossentropy(y, y_pred, from_logits=True)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert losses.BinaryCrossentropy().get_config() == {"from_logits": False}


# -- bad input ---------------------------------------------------------------------------------
def test_bad_labels_and_predictions():
    logits = np.zeros((2, 3, 4), np.float32) + np.arange(4, dtype=np.float32)
    scce = losses.sparse_categorical_crossentropy
    with pytest.raises(TypeError, match="y_true: expected integer"):
        scce(np.zeros((2, 3), np.float32), logits, from_logits=True)
    with pytest.raises(ValueError, match=r"y_true: class ids must lie in \[0, 4\)"):
        scce(np.full((2, 3), 4), logits, from_logits=True)
    with pytest.raises(ValueError, match="y_true"):
        scce(np.full((2, 3), -1), logits, from_logits=True)
    with pytest.raises(ValueError, match=r"y_true: expected shape \(2, 3\)"):
        scce(np.zeros((2, 4), np.int64), logits, from_logits=True)
    with pytest.raises(TypeError, match="y_pred"):
        scce(np.zeros((2, 3), np.int64), logits.astype(np.int32), from_logits=True)
    with pytest.raises(ValueError, match="y_pred: expected probabilities"):
        scce(np.zeros((2, 3), np.int64), logits)  # logits passed as probabilities
    with pytest.raises(ValueError, match="y_pred"):
        scce(np.zeros((2, 3), np.int64), np.full((2, 3, 4), np.nan), from_logits=True)
    with pytest.raises(ValueError, match="sample_weight"):
        scce(np.zeros((2, 3), np.int64), logits, from_logits=True, sample_weight=np.ones(2))
    with pytest.raises(TypeError, match="mask"):
        scce(np.zeros((2, 3), np.int64), logits, from_logits=True, mask=np.ones((2, 3)))
    with pytest.raises(ValueError, match="mask"):
        scce(np.zeros((2, 3), np.int64), logits, from_logits=True, mask=np.ones((3, 2), bool))
    bce = losses.binary_crossentropy
    with pytest.raises(ValueError, match=r"y_true: expected labels in \[0, 1\]"):
        bce(np.full((2, 3, 4), 2.0, np.float32), logits, from_logits=True)
    with pytest.raises(ValueError, match="y_true: expected shape"):
        bce(np.zeros((2, 3), np.float32), logits, from_logits=True)
    with pytest.raises(TypeError, match="y_true"):
        bce(np.zeros((2, 3, 4), "U1"), logits, from_logits=True)
    with pytest.raises(TypeError, match="y_true"):
        bce([[0, 1]], np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="y_pred"):
        bce(np.zeros(3), np.full(3, 0.5), sample_weight=np.ones(()))
