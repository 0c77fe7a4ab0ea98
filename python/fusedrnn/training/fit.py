"""The training loop: mini-batches, optimizer steps, validation, history and a progress bar.

``fit`` is deliberately small: every step is ``forward → loss → backward → optimizer.apply``
with the model's own layers, so that nothing but the fused kernels and a few NumPy passes runs
per step. A loss is any callable ``loss(y_true, output) -> (value, d_output)`` (see
:mod:`fusedrnn.losses`); a metric any callable ``metric(y_true, output) -> float``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from fusedrnn.grad_mode import no_grad

LossFn = Callable[[np.ndarray, np.ndarray], Tuple[float, np.ndarray]]
MetricFn = Callable[[np.ndarray, np.ndarray], float]
EpochCallback = Callable[[int, Dict[str, float]], None]


@dataclass
class History:
    """Per-epoch values, Keras-style: ``history["loss"][e]``, ``history["val_accuracy"][e]``..."""

    history: Dict[str, List[float]] = field(default_factory=dict)

    def append(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> List[float]:
        return self.history[key]

    @property
    def epochs(self) -> int:
        return max((len(v) for v in self.history.values()), default=0)


def binary_accuracy_from_logits(y_true: np.ndarray, logits: np.ndarray) -> float:
    """Fraction of examples whose logit has the label's sign (probability ≥ 0.5 ⇔ logit ≥ 0)."""
    pred = (np.asarray(logits).reshape(len(y_true), -1)[:, 0] > 0).astype(np.int64)
    return float(np.mean(pred == np.asarray(y_true).reshape(-1)))


def sparse_categorical_accuracy(y_true: np.ndarray, logits: np.ndarray) -> float:
    """Fraction of positions whose arg-max class equals the integer label."""
    return float(np.mean(np.argmax(logits, axis=-1) == y_true))


def _batches(n: int, batch_size: int, rng: Optional[np.random.Generator]) -> List[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency; stay usable without it
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=True, file=sys.stderr, dynamic_ncols=True)


def train_step(model: Any, loss: LossFn, optimizer: Any, x: Any, y: np.ndarray) -> Tuple[float, Any]:
    """One optimizer step on a batch: forward (training mode), loss, backward, update.

    Returns (loss value, model output)."""
    out = model(x, training=True)
    value, d_out = loss(y, out)
    value = float(value)
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value}; lower the learning rate or clip gradients")
    model.backward(d_out)
    optimizer.apply(model.params, model.grads)
    return value, out


def evaluate(model: Any, loss: LossFn, x: Any, y: np.ndarray, *, batch_size: int = 256,
             metrics: Optional[Mapping[str, MetricFn]] = None) -> Dict[str, float]:
    """Mean loss and metrics over (x, y) in inference mode (training=False, under
    :func:`fusedrnn.no_grad`), weighted by batch size."""
    n = len(y)
    if n == 0:
        raise ValueError("y: the evaluation set is empty")
    sums: Dict[str, float] = {"loss": 0.0, **{k: 0.0 for k in (metrics or {})}}
    for idx in _batches(n, batch_size, None):
        with no_grad():
            out = model(x[idx], training=False)
        value, _ = loss(y[idx], out)
        sums["loss"] += float(value) * len(idx)
        for name, fn in (metrics or {}).items():
            sums[name] += float(fn(y[idx], out)) * len(idx)
    return {k: v / n for k, v in sums.items()}


def fit(model: Any, loss: LossFn, optimizer: Any, x: Any, y: np.ndarray, *, batch_size: int = 32,
        epochs: int = 1, validation_data: Optional[Tuple[Any, np.ndarray]] = None,
        metrics: Optional[Mapping[str, MetricFn]] = None, shuffle: bool = True, seed: Optional[int] = None,
        steps_per_epoch: Optional[int] = None, progress: bool = True,
        callbacks: Sequence[EpochCallback] = (), initial_epoch: int = 0, history: Optional[History] = None
        ) -> History:
    """Trains `model` on (x, y); returns the :class:`History` (also extended in place if given).

    x: inputs indexable by an integer array along the first axis (N, ...); y: targets (N, ...).
    Each epoch visits the examples in a fresh order drawn from ``seed`` (deterministic), in
    batches of `batch_size` (the last one may be smaller); ``steps_per_epoch`` stops an epoch
    early. After each epoch the logs (loss, metrics, val_loss, val_<metric>, seconds) are added
    to the history and passed to every callback as ``callback(epoch, logs)`` — use one to save
    a checkpoint. As in Keras, ``epochs`` is the epoch to end with and ``initial_epoch`` the one
    to start from: with the earlier ``history`` it continues an interrupted run, training epochs
    initial_epoch..epochs-1, which with the same seed visit the examples in the orders the
    uninterrupted run would have. A non-finite loss stops training with FloatingPointError
    naming the step.
    """
    n = len(y)
    if n == 0:
        raise ValueError("y: the training set is empty")
    if len(x) != n:
        raise ValueError(f"x: expected {n} examples (as many as y), got {len(x)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative integer, got {epochs!r}")
    if not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(f"initial_epoch: expected a non-negative integer, got {initial_epoch!r}")
    rng = np.random.default_rng(seed) if shuffle else None
    for _ in range(initial_epoch if rng is not None else 0):
        rng.permutation(n)  # a resumed run sees the epochs' orders an uninterrupted one would
    history = history if history is not None else History()
    metrics = dict(metrics or {})
    for epoch in range(initial_epoch, epochs):
        batches = _batches(n, batch_size, rng)
        if steps_per_epoch is not None:
            batches = batches[:steps_per_epoch]
        bar = _progress(len(batches), f"epoch {epoch + 1}/{epochs}", progress)
        sums = {"loss": 0.0, **{k: 0.0 for k in metrics}}
        seen = 0
        start = time.perf_counter()
        for step, idx in enumerate(batches):
            try:
                value, out = train_step(model, loss, optimizer, x[idx], y[idx])
            except FloatingPointError as err:
                if bar is not None:
                    bar.close()
                raise FloatingPointError(f"epoch {epoch + 1}, step {step + 1}: {err}") from None
            sums["loss"] += value * len(idx)
            for name, fn in metrics.items():
                sums[name] += float(fn(y[idx], out)) * len(idx)
            seen += len(idx)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == len(batches) - 1:
                    bar.set_postfix({k: f"{v / seen:.4f}" for k, v in sums.items()}, refresh=False)
        logs = {k: v / max(seen, 1) for k, v in sums.items()}
        if validation_data is not None:
            val = evaluate(model, loss, validation_data[0], validation_data[1], metrics=metrics)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["seconds"] = time.perf_counter() - start
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k != "seconds"}, refresh=True)
            bar.close()
        history.append(logs)
        for callback in callbacks:
            callback(epoch, logs)
    return history
