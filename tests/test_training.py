"""The training toolkit: Sequential, fit, checkpoints (round trip, atomicity, corruption)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fusedrnn
from fusedrnn.layers.core import Dense, Dropout, Embedding
from fusedrnn.losses import binary_crossentropy, sparse_categorical_crossentropy
from fusedrnn.optimizers import SGD, Adam, RMSprop
from fusedrnn.training import (CheckpointError, Sequential, binary_accuracy_from_logits, evaluate, fit,
                               load_checkpoint, save_checkpoint, train_step)


def bce(y, logits):
    return binary_crossentropy(np.asarray(y, logits.dtype).reshape(logits.shape), logits, from_logits=True)


def sce(y, logits):
    return sparse_categorical_crossentropy(y, logits, from_logits=True)


def _sentiment_like(seed, vocab=30, mask_zero=False, dtype="float64"):
    return Sequential([Embedding(vocab, 5, mask_zero=mask_zero, seed=seed, dtype=dtype),
                       fusedrnn.LSTM(4, return_sequences=True, seed=seed + 1, dtype=dtype),
                       fusedrnn.GRU(3, seed=seed + 2, dtype=dtype),
                       Dropout(0.3, seed=seed + 3),
                       Dense(1, seed=seed + 4, dtype=dtype)])


def test_sequential_gradients_match_finite_differences(rng, seed):
    model = _sentiment_like(seed, mask_zero=True)
    x = rng.integers(0, 30, (4, 6))
    x[0, :3] = 0  # pre-padding, masked
    y = rng.integers(0, 2, 4)
    value, d = bce(y, model(x))
    model.backward(d)
    grads = [g.copy() for g in model.grads]
    for p, g in zip(model.params, grads):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for k in rng.choice(flat.size, min(4, flat.size), replace=False):
            old = flat[k]
            flat[k] = old + 1e-6
            up = bce(y, model(x))[0]
            flat[k] = old - 1e-6
            down = bce(y, model(x))[0]
            flat[k] = old
            assert (up - down) / 2e-6 == pytest.approx(gflat[k], abs=1e-9, rel=1e-5), f"seed {seed}"


def test_masks_flow_from_embedding(rng, seed):
    """With mask_zero, leading padding changes nothing: the LSTM skips it as Keras does."""
    model = _sentiment_like(seed, mask_zero=True)
    x = rng.integers(1, 30, (3, 5))
    padded = np.concatenate([np.zeros((3, 4), x.dtype), x], axis=1)
    np.testing.assert_allclose(model(padded), model(x), rtol=1e-12, err_msg=f"seed {seed}")


def _toy_task(rng, n=256):
    x = rng.integers(1, 30, (n, 8))
    y = (x[:, -1] < 15).astype(np.int64)  # the label is a function of the last token
    return x, y


def test_fit_learns_and_is_deterministic(rng, seed):
    x, y = _toy_task(rng)
    runs = []
    for _ in range(2):
        model = _sentiment_like(seed, dtype="float32")
        hist = fit(model, bce, Adam(learning_rate=0.02), x, y, batch_size=32, epochs=12, seed=seed,
                   metrics={"accuracy": binary_accuracy_from_logits}, validation_data=(x, y), progress=False)
        runs.append((hist, model.get_weights()))
    hist = runs[0][0]
    assert hist.epochs == 12 and set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert hist["loss"][-1] < 0.6 * hist["loss"][0], f"seed {seed}: {hist['loss']}"
    assert hist["val_accuracy"][-1] > 0.85, f"seed {seed}: {hist['val_accuracy']}"
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b, err_msg=f"same seed, different weights (seed {seed})")


def test_fit_callbacks_steps_and_errors(rng, seed):
    x, y = _toy_task(rng, 64)
    model = _sentiment_like(seed, dtype="float32")
    seen = []
    fit(model, bce, SGD(), x, y, batch_size=16, epochs=2, steps_per_epoch=2, progress=False,
        callbacks=[lambda e, logs: seen.append((e, sorted(logs)))])
    assert [e for e, _ in seen] == [0, 1]
    with pytest.raises(ValueError, match="x: expected 64 examples"):
        fit(model, bce, SGD(), x[:10], y, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, bce, SGD(), x, y, batch_size=0, progress=False)
    def diverged(y_true, logits):
        return float("nan"), np.zeros_like(logits)

    with pytest.raises(FloatingPointError, match="epoch 1, step 1: loss is nan"):
        fit(model, diverged, SGD(), x, y, progress=False)


def _textgen_like(seed, vocab=11):
    lstm = fusedrnn.LSTM(6, seed=seed)
    lstm.build(vocab)
    return Sequential([lstm, Dense(vocab, seed=seed + 1)])


def test_checkpoint_round_trip_same_predictions_and_resume(rng, seed, tmp_path):
    model = _textgen_like(seed)
    opt = RMSprop(learning_rate=0.01)
    x = rng.integers(0, 11, (20, 7))
    y = rng.integers(0, 11, 20)
    for _ in range(3):
        train_step(model, sce, opt, x, y)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, {"vocab": "abc", "n": 3})
    ckpt = load_checkpoint(path)
    assert ckpt.meta == {"vocab": "abc", "n": 3}
    np.testing.assert_array_equal(ckpt.model(x), model(x), err_msg=f"seed {seed}")
    # resuming: one more step from the checkpoint equals one more step of the original
    train_step(model, sce, opt, x, y)
    train_step(ckpt.model, sce, ckpt.optimizer, x, y)
    for a, b in zip(model.get_weights(), ckpt.model.get_weights()):
        np.testing.assert_array_equal(a, b, err_msg=f"seed {seed}")


def test_checkpoint_write_is_atomic(rng, seed, tmp_path, monkeypatch):
    model = _textgen_like(seed)
    model(rng.integers(0, 11, (2, 3)))
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, None, {"generation": 1})
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, None, {"generation": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).meta == {"generation": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temporary left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_usual_permissions(tmp_path, umask):
    """Atomic writes go through a private temporary file; the result must still be readable
    as the user's umask allows (a checkpoint or plot shared with others, served, copied)."""
    from fusedrnn.io_utils import atomic_write

    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "out.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_corrupt_or_foreign_checkpoints(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(CheckpointError, match="not a readable fusedrnn checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="no fusedrnn header"):
        load_checkpoint(foreign)
    good = tmp_path / "good.npz"
    model = _textgen_like(0)
    with pytest.raises(RuntimeError, match="no weights yet"):
        save_checkpoint(good, model)  # the Dense layer is not built before a first call
    assert not good.exists()
    model(np.zeros((1, 2), np.int32) + 3)
    save_checkpoint(good, model)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)


def test_evaluate_weights_by_batch_size(rng, seed):
    model = _textgen_like(seed)
    x = rng.integers(0, 11, (37, 5))
    y = rng.integers(0, 11, 37)
    whole = sce(y, model(x))[0]
    assert evaluate(model, sce, x, y, batch_size=8)["loss"] == pytest.approx(whole, rel=1e-5)


def test_sequential_rejects_non_layers():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([])
    with pytest.raises(TypeError, match=r"layers\[0\]: int has no backward"):
        Sequential([3])
