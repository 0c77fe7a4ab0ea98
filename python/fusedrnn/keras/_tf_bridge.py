"""Run a fusedrnn NumPy op inside TensorFlow, forward and backward.

:func:`call_fused` wraps a pair of NumPy functions (a fused forward op and its backward op) into
a TensorFlow computation that works eagerly and inside ``tf.function`` graphs (``model.fit``,
``evaluate``, ``predict``). The forward runs through ``tf.numpy_function`` with the static shapes
the caller declares; the gradient is registered with ``tf.custom_gradient`` and runs the backward
op through a second ``tf.numpy_function``.

Interface (what a caller provides)::

    outputs = call_fused(forward, backward, inputs, output_specs, differentiable, name="lstm")

* ``inputs``: a list of ``tf.Tensor`` or ``None`` (an absent optional argument). Read Keras
  variables into tensors first (``tf.convert_to_tensor(variable)``); the gradient flows back to
  the variable through that read.
* ``differentiable``: one bool per input; False for masks, dropout masks, integer ids. Those get
  no gradient (None).
* ``output_specs``: one ``(shape, dtype)`` per output; ``shape`` may hold None for unknown sizes
  (e.g. the batch). The outputs get these static shapes.
* ``forward(arrays, keep_cache) -> (outputs, cache)``: ``arrays`` is the list of inputs as
  C-contiguous NumPy arrays (None where the input was None); ``outputs`` a tuple of arrays, one
  per output spec (cast to the declared dtype here); ``cache`` whatever ``backward`` needs (None
  when ``keep_cache`` is False).
* ``backward(cache, arrays, upstream) -> grads``: ``upstream`` holds one array or None per
  output (None: no gradient arrives there); ``grads`` one array or None per input (None: zero).

Where the forward cache lives: the forward stores it in a process-wide registry under a fresh
integer token, which travels to the backward as a scalar tensor; the backward pops it, so its
memory is freed as soon as the gradient has been computed. The forward keeps a cache only when
a ``tf.GradientTape`` watches one of the inputs at the time the op is created (traced or run
eagerly) -- true inside ``model.fit``'s train step, false under ``predict``/``evaluate`` and
plain eager calls, which then run the op with ``keep_cache=False`` (no per-step storage).
When the backward finds no cache for its token (the forward kept none because no tape was
visible when it was traced, e.g. a ``tf.function`` differentiated from an outer tape, or the
entry was evicted), it reruns the forward with ``keep_cache=True`` on the same inputs (the same
numbers: every random mask is an input) and goes on: the gradient is always right, at the cost
of one more forward pass. Entries a backward never consumes (a tape that never asks for this
gradient) are evicted oldest first once the registry holds more than :data:`MAX_ENTRIES` caches
or :data:`MAX_BYTES` bytes; :func:`set_cache_limits` changes both, :func:`cache_stats` reports
what happened, :func:`clear_caches` empties the registry.

The ops run on the host: TensorFlow copies GPU tensors to host memory for ``numpy_function``.
The Keras layers of this package send GPU tensors to Keras's own implementation instead. A
``numpy_function`` cannot be compiled by XLA: layers using this bridge set ``supports_jit=False``.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import record as _tape_record

__all__ = ["MAX_BYTES", "MAX_ENTRIES", "cache_stats", "call_fused", "clear_caches", "gradient_wanted", "set_cache_limits"]

ForwardFn = Callable[[List[Optional[np.ndarray]], bool], Tuple[Sequence[np.ndarray], Any]]
BackwardFn = Callable[[Any, List[Optional[np.ndarray]], List[Optional[np.ndarray]]], Sequence[Optional[np.ndarray]]]

#: Most forward caches kept waiting for their backward pass at once (older ones are evicted).
MAX_ENTRIES = 64
#: Most bytes of forward caches kept at once (older ones are evicted; the newest always stays).
MAX_BYTES = 4 << 30


def _nbytes(obj: Any) -> int:
    """Bytes held by the NumPy arrays in a cache (a dataclass, tuple, list or dict of them)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(_nbytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(o) for o in obj.values())
    return 0


class _CacheRegistry:
    """Forward caches by token, oldest first, thread-safe (TensorFlow runs ops on its own threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: "OrderedDict[int, Tuple[Any, int]]" = OrderedDict()
        self._bytes = 0
        self._tokens = itertools.count(1)
        self.max_entries = MAX_ENTRIES
        self.max_bytes = MAX_BYTES
        self.counts = {"stored": 0, "consumed": 0, "recomputed": 0, "evicted": 0, "inference": 0}

    def put(self, cache: Any) -> int:
        size = _nbytes(cache)
        with self._lock:
            token = next(self._tokens)
            self._entries[token] = (cache, size)
            self._bytes += size
            self.counts["stored"] += 1
            while len(self._entries) > 1 and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
                _, (_, old_size) = self._entries.popitem(last=False)
                self._bytes -= old_size
                self.counts["evicted"] += 1
            return token

    def pop(self, token: int) -> Any:
        with self._lock:
            entry = self._entries.pop(token, None)
            if entry is None:
                return None
            self._bytes -= entry[1]
            self.counts["consumed"] += 1
            return entry[0]

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def stats(self) -> dict:
        with self._lock:
            return {**self.counts, "live_entries": len(self._entries), "live_bytes": self._bytes}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


_REGISTRY = _CacheRegistry()


def cache_stats() -> dict:
    """Counters since start: ``stored`` (forward caches kept), ``consumed`` (popped by their
    backward), ``recomputed`` (backward passes that reran the forward), ``evicted``, ``inference``
    (forward passes run with ``keep_cache=False``); and ``live_entries``/``live_bytes`` now."""
    return _REGISTRY.stats()


def clear_caches() -> None:
    """Drop every waiting forward cache (their backward passes, if any, will recompute)."""
    _REGISTRY.clear()


def set_cache_limits(max_entries: Optional[int] = None, max_bytes: Optional[int] = None) -> None:
    """Change how many forward caches (count, bytes) wait for their backward pass at most."""
    if max_entries is not None:
        if int(max_entries) < 1:
            raise ValueError(f"max_entries: expected a positive integer, got {max_entries!r}")
        _REGISTRY.max_entries = int(max_entries)
    if max_bytes is not None:
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes: expected a non-negative integer, got {max_bytes!r}")
        _REGISTRY.max_bytes = int(max_bytes)


def gradient_wanted(tensors: Sequence[Any]) -> bool:
    """True when a ``tf.GradientTape`` active now (while the op is traced or run eagerly) watches
    one of ``tensors``; :func:`call_fused` keeps a forward cache exactly then."""
    return bool(_tape_record.should_record_backprop([tf.convert_to_tensor(t) for t in tensors]))


def _as_arrays(present: Sequence[bool], values: Sequence[np.ndarray]) -> List[Optional[np.ndarray]]:
    """Re-insert None where an optional input was absent; make the rest C-contiguous (0-d arrays
    stay 0-d, which np.ascontiguousarray would turn into shape (1,))."""
    it = iter(values)
    return [np.require(next(it), requirements="C") if p else None for p in present]


def call_fused(forward: ForwardFn, backward: BackwardFn, inputs: Sequence[Optional[tf.Tensor]],
               output_specs: Sequence[Tuple[Sequence[Optional[int]], tf.DType]],
               differentiable: Sequence[bool], name: str = "fused") -> List[tf.Tensor]:
    """The outputs of ``forward`` on ``inputs`` as tensors, differentiable through ``backward``.

    See the module docstring for the contract of ``forward``/``backward``. Returns a list of
    ``len(output_specs)`` tensors with the declared dtypes and static shapes.
    """
    if len(differentiable) != len(inputs):
        raise ValueError(f"differentiable: expected one flag per input ({len(inputs)}), got {len(differentiable)}")
    present = [t is not None for t in inputs]
    tensors = [tf.convert_to_tensor(t) for t in inputs if t is not None]
    out_dtypes = [tf.as_dtype(d) for _, d in output_specs]
    out_np_dtypes = [d.as_numpy_dtype for d in out_dtypes]
    keep_cache = gradient_wanted([t for t, d in zip(inputs, differentiable) if t is not None and d])

    def np_forward(*values: np.ndarray) -> List[np.ndarray]:
        outputs, cache = forward(_as_arrays(present, values), keep_cache)
        if len(outputs) != len(output_specs):
            raise ValueError(f"{name}: the forward function returned {len(outputs)} outputs, expected {len(output_specs)}")
        if keep_cache:
            token = _REGISTRY.put(cache)
        else:
            token = 0
            _REGISTRY.count("inference")
        return [np.asarray(o, dtype=d) for o, d in zip(outputs, out_np_dtypes)] + [np.int64(token)]

    diff_index = [i for i, (p, d) in enumerate(zip(present, differentiable)) if p and d]
    position = {i: sum(present[:i]) for i in diff_index}   # input index -> index among the present inputs

    @tf.custom_gradient
    def fused(*xs: tf.Tensor):
        results = tf.numpy_function(np_forward, list(xs), out_dtypes + [tf.int64], name=f"{name}_forward")
        outputs, token = results[:-1], results[-1]
        for out, (shape, _) in zip(outputs, output_specs):
            out.set_shape(shape)

        def grad_fn(*upstream: Optional[tf.Tensor]):
            up_present = [g is not None for g in upstream]
            ups = [tf.convert_to_tensor(g) for g in upstream if g is not None]
            grad_dtypes = [xs[position[i]].dtype for i in diff_index]

            def np_backward(token_value: np.ndarray, *values: np.ndarray) -> List[np.ndarray]:
                arrays = _as_arrays(present, values[:len(xs)])
                upstream_arrays = _as_arrays(up_present, values[len(xs):])
                cache = _REGISTRY.pop(int(token_value))
                if cache is None:
                    _REGISTRY.count("recomputed")
                    _, cache = forward(arrays, True)
                grads = backward(cache, arrays, upstream_arrays)
                del cache
                result = []
                for i, dt in zip(diff_index, grad_dtypes):
                    g = grads[i]
                    result.append(np.zeros(arrays[i].shape, dt.as_numpy_dtype) if g is None
                                  else np.asarray(g, dtype=dt.as_numpy_dtype))
                return result

            grads = tf.numpy_function(np_backward, [token, *xs, *ups], grad_dtypes, name=f"{name}_backward")
            by_position: List[Optional[tf.Tensor]] = [None] * len(xs)
            for i, g in zip(diff_index, grads):
                g.set_shape(xs[position[i]].shape)
                by_position[position[i]] = g
            return by_position

        return list(outputs), grad_fn

    return list(fused(*tensors))
