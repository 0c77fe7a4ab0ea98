"""Weight gradients of many backward calls of one recurrent op, computed together at the end.

A decoder that runs its recurrent cell one step at a time (attention between the steps, as in
the translate task's model) calls the backward op once per step. Computed call by call, each
step's weight gradients are products over only B rows (the batch), and summing them reads and
writes every weight gradient once per step: for a GRU of 1024 units over 1280 inputs that is
28 MB per step. Deferred, each call keeps only its gate gradients (B, T, G*H), and
:meth:`DeferredWeightGrads.result` computes the sums over all calls as products over all their
rows at once::

    deferred = ops.DeferredWeightGrads()
    for t in reversed(range(steps)):
        dx, dh, _, _, _ = ops.gru_backward(caches[t], None, dh, defer_weight_grads=deferred)
        ...
    d_kernel, d_recurrent_kernel, d_bias = deferred.result()

CPU only. The sums equal the sums of the per-call weight gradients to float rounding (the
products add the rows in another order).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from fusedrnn import _C
from fusedrnn.ops import _checks as chk
from fusedrnn.ops._recurrent_cache import RecurrentCache

__all__ = ["DeferredWeightGrads"]


class DeferredWeightGrads:
    """Collects the gate gradients of backward calls given ``defer_weight_grads=self`` (those calls
    return None for their weight gradients) and computes the weight gradients they leave out,
    summed over every call, with :meth:`result`.

    The calls must share one configuration: the cell, its activation and ``reset_after``, the
    weights' shapes and dtype, and the kind of input (float ``x`` or one-hot ids); batch sizes and
    sequence lengths may differ. The object keeps every call's cache and gate gradients until
    :meth:`clear` or until it is dropped.
    """

    def __init__(self) -> None:
        self._calls: List[Tuple[RecurrentCache, np.ndarray, Optional[np.ndarray]]] = []

    def __len__(self) -> int:
        """The number of backward calls collected."""
        return len(self._calls)

    def clear(self) -> None:
        """Forgets every collected call (and frees their memory)."""
        self._calls = []

    def add(self, cache: RecurrentCache, d_gates: np.ndarray, d_recurrent_gates: Optional[np.ndarray]) -> None:
        """Called by the backward ops: one call's cache and gate gradients, (B, T, G*H) each
        (``d_recurrent_gates`` only for the GRU with ``reset_after=True``)."""
        if self._calls:
            first = self._calls[0][0]
            mine = _configuration(cache)
            theirs = _configuration(first)
            if mine != theirs:
                raise ValueError(f"cache: this call of {_describe(mine)} cannot add its weight gradients to those "
                                 f"of the calls of {_describe(theirs)} collected before; use one "
                                 f"DeferredWeightGrads per op")
        self._calls.append((cache, d_gates, d_recurrent_gates))

    def result(self, *, gate_major: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(d_kernel, d_recurrent_kernel, d_bias)``: the sums over every collected call of the
        weight gradients their backward op would have returned, in the same shapes and layout
        (``gate_major`` as in :func:`fusedrnn.ops.rnn_backward`)."""
        gate_major = chk.check_flag("gate_major", gate_major)
        if not self._calls:
            raise ValueError("DeferredWeightGrads.result: no backward call deferred its weight gradients here; "
                             "pass defer_weight_grads=this object to the backward ops first")
        caches = [c for c, _, _ in self._calls]
        first = caches[0]
        dtype = first.kernel.dtype
        ids = not np.issubdtype(first.x.dtype, np.floating)
        x = _rows([c.x[..., None] if ids else c.x for c in caches])
        if ids:
            x = x[:, :, 0]
        d_rec = None if self._calls[0][2] is None else _rows([d for _, _, d in self._calls])
        aux = _rows([c.aux for c in caches]) if first.cell == "gru" and not first.reset_after else None
        return _C.recurrent_weight_grads(
            first.cell, x, first.kernel, first.recurrent_kernel, first.bias,
            _stacked_masks([(c.dropout_mask, c.batch, c.steps) for c in caches], first.kernel.shape[0], dtype),
            _stacked_masks([(c.recurrent_dropout_mask, c.batch, c.steps) for c in caches], first.units, dtype),
            first.activation, first.reset_after, _rows([c.hprev for c in caches]), aux,
            _rows([d for _, d, _ in self._calls]), d_rec, gate_major)


def _configuration(cache: RecurrentCache) -> Tuple[Any, ...]:
    ids = not np.issubdtype(cache.x.dtype, np.floating)
    return (cache.cell, cache.activation if cache.cell == "rnn" else None,
            cache.reset_after if cache.cell == "gru" else None, tuple(cache.kernel.shape),
            tuple(cache.recurrent_kernel.shape), str(cache.kernel.dtype), ids)


def _describe(configuration: Tuple[Any, ...]) -> str:
    cell, activation, reset_after, kernel, recurrent, dtype, ids = configuration
    options = [o for o in (activation, None if reset_after is None else f"reset_after={reset_after}") if o]
    return (f"{cell}{'(' + ', '.join(options) + ')' if options else ''} (kernel {kernel}, recurrent_kernel "
            f"{recurrent}, {dtype}, {'one-hot ids' if ids else 'dense input'})")


def _rows(arrays: List[np.ndarray]) -> np.ndarray:
    """(B_i, T_i, n) arrays as one (sum of B_i*T_i, 1, n) batch of single steps, rows b*T_i + t."""
    return np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays])[:, None, :]


def _stacked_masks(masks: List[Tuple[Optional[np.ndarray], int, int]], width: int, dtype: Any) -> Optional[np.ndarray]:
    """The calls' dropout masks (``(mask (n, B_i, width) scaled, or None, B_i, T_i)``) as one
    (n, sum of B_i*T_i, width) mask of the stacked rows: each sequence's row repeated for its T_i
    steps; ones for a call without one, and a single mask repeated for every gate where other
    calls have one per gate. None when no call has one."""
    if all(m is None for m, _, _ in masks):
        return None
    n = max(m.shape[0] for m, _, _ in masks if m is not None)
    out = np.ones((n, sum(b * t for _, b, t in masks), width), dtype)
    at = 0
    for m, batch, steps in masks:
        if m is not None:
            out[:, at:at + batch * steps] = np.repeat(m, steps, axis=1)
        at += batch * steps
    return out
