"""Version counters of weight arrays: how a packed copy of weights knows that they changed.

The recurrent kernels can keep their weights packed between calls (:class:`fusedrnn.ops.PackedWeights`,
``layer.step``), and ops can check weights for NaN and inf once instead of on every call
(:class:`fusedrnn.ops.CheckedWeights`). Either remembers which arrays it packed or checked and
their versions here, and packs or checks again when a call passes other arrays or when the
version of one of them has grown. No array is ever compared element by element.

What bumps a version:

* ``Optimizer.apply(params, grads)`` (every optimizer of :mod:`fusedrnn.optimizers`), after it
  has updated the params in place;
* ``layer.set_weights(...)`` of every fusedrnn layer, for the arrays it binds (usually copies; the
  arrays passed in themselves when they already have the layer's dtype and layout, so setting
  the same arrays again after editing them counts as a change too);
* ``weights_changed(*arrays)`` or ``layer.weights_changed()``: **the documented route for any
  other in-place edit** (``layer.kernel[...] = ...``, ``np.add(w, d, out=w)``, an edit through a
  view). Call it after the edit, before the next call; without it the packed copy still holds
  the old values.

Versions are kept per array object (the ones a layer holds in ``params``, not views of them);
an array that was never bumped has version 0.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, Dict, Tuple

__all__ = ["latest", "version", "weights_changed"]

_counter = itertools.count(1)
_versions: Dict[int, Tuple["weakref.ref[Any]", int]] = {}
_latest = 0  # the newest version given to any array


def _forget(key: int, ref: "weakref.ref[Any]") -> None:
    entry = _versions.get(key)
    if entry is not None and entry[0] is ref:
        del _versions[key]


def weights_changed(*arrays: Any) -> None:
    """Marks arrays as changed (each gets a new, larger version): copies packed from them repack."""
    global _latest
    for a in arrays:
        if a is None:
            continue
        key = id(a)
        entry = _versions.get(key)
        ref = entry[0] if entry is not None and entry[0]() is a else weakref.ref(a, lambda r, k=key: _forget(k, r))
        _latest = next(_counter)
        _versions[key] = (ref, _latest)


def latest() -> int:
    """The newest version given to any array (0 before the first change). While it stays the same,
    no array's version has changed: a cache validated at that value needs no per-array look-up."""
    return _latest


def version(a: Any) -> int:
    """The array's version: 0 until weights_changed(a) is first called, then growing."""
    entry = _versions.get(id(a))
    if entry is None or entry[0]() is not a:
        return 0
    return entry[1]
