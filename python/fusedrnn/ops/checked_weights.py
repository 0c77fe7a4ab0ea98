"""Weights checked for NaN and inf once per version instead of on every call.

Every op checks its float inputs for NaN and inf. For the inputs that are weights, repeated
calls on unchanged weights repeat that check for nothing: a decoder's output projection, for
instance, reads a (units, vocabulary) kernel (20 MB in the translation task) once per output
word, and checking it costs a third of the multiplication. A :class:`CheckedWeights` remembers
which arrays it found finite and at which version (:mod:`fusedrnn.weight_versions`), and checks
an array again only when a call passes another array in its place or when its version grew::

    checked = ops.CheckedWeights()
    for h in states:                                             # h (B, U): data, always checked
        logits = ops.dense_forward(h, kernel, bias, checked=checked)  # kernel, bias: once

It is the same bookkeeping as :class:`fusedrnn.ops.PackedWeights` (optimizer steps and
``set_weights`` bump the versions; after any other in-place edit call
``fusedrnn.weight_versions.weights_changed(array)``, or the edit goes unchecked). Only weights
go through it: inputs that are data (states, embeddings of user ids, ...) are checked on every
call as before.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from fusedrnn.ops import _checks as chk
from fusedrnn.weight_versions import version

__all__ = ["CheckedWeights"]


class CheckedWeights:
    """Which weight arrays were found free of NaN and inf, and at which version.

    One slot per argument name ("kernel", "bias"): a slot remembers the last array checked
    under that name, so keep one CheckedWeights per place of use (one layer's projection), as
    with PackedWeights. ``checks`` counts the arrays actually scanned (for tests and diagnostics).
    """

    def __init__(self) -> None:
        self.checks = 0
        self._slots: Dict[str, Tuple[np.ndarray, int]] = {}

    def check(self, name: str, a: Optional[np.ndarray]) -> None:
        """ValueError naming `name` if `a` holds NaN or inf; skipped when `a` is the array last
        found finite under `name` and its version has not changed since. None passes."""
        if a is None:
            return
        v = version(a)
        slot = self._slots.get(name)
        if slot is not None and slot[0] is a and slot[1] == v:
            return
        self._slots.pop(name, None)  # a failed check leaves nothing that could vouch for `a`
        chk.check_finite(name, a)
        self.checks += 1
        self._slots[name] = (a, v)

    def clear(self) -> None:
        """Forgets every array (and drops the references to them)."""
        self._slots.clear()

    def __repr__(self) -> str:
        return f"CheckedWeights({sorted(self._slots)})"


def check_checked(checked: Any) -> CheckedWeights:
    return chk.instance_of("checked", checked, CheckedWeights)
