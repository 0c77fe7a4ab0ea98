"""A dense kernel packed once and kept between calls, for products of few rows.

:func:`fusedrnn.ops.dense_forward` multiplies with BLAS. For a handful of rows that wastes most
of the time: BLAS's GEMM first copies the whole kernel into its own layout on every call (the
translation decoder's output projection, a (1024, 4935) kernel of 20 MB, once per word), and
GEMV reads it once per row. A :class:`PackedDense` keeps the kernel in the layout of fusedrnn's
panel kernel, so that a call of up to 16 rows reads it once for all of them::

    packed = ops.PackedDense()                                          # or precision="bfloat16"
    for h in states:                                                    # h (beam, U)
        logits = ops.dense_forward(h, kernel, bias, packed=packed)      # kernel packed at the first call

Calls of more rows use BLAS as without it (bfloat16 weights: the packed copy at any number of
rows). It packs again when a call passes another array or when the kernel's version grew
(:mod:`fusedrnn.weight_versions`: optimizer steps and ``set_weights`` bump it; after any other
in-place edit call ``fusedrnn.weight_versions.weights_changed(kernel)``), and checks the kernel for
NaN and inf when it packs it, not on every call. ``precision="bfloat16"`` (float32 kernels only,
for inference) keeps it rounded to bfloat16: half the bytes, sums in float32, outputs within a few
1e-3 of float32's. The results equal BLAS's to float rounding (another order of the same sums).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from fusedrnn import _C
from fusedrnn.ops import _checks as chk
from fusedrnn.ops.packed import check_bfloat16_source, check_precision
from fusedrnn.weight_versions import version

__all__ = ["PackedDense"]


class PackedDense:
    """The packed copy of one dense kernel (in, units), packed again only when it changes.

    ``precision``: 'float32' (the kernel's own dtype, float32 or float64) or 'bfloat16' (float32
    kernels only). Memory: one copy of the kernel (half of it in bfloat16). ``packs`` counts the
    packings (for tests and diagnostics). CPU arrays only.
    """

    def __init__(self, precision: str = "float32") -> None:
        self.precision = check_precision(precision)
        self.packs = 0
        self._entry: Optional[Tuple[np.ndarray, int, Any]] = None

    def handle(self, kernel: np.ndarray) -> Any:
        """The packed copy of `kernel` (already of a checked dtype and shape), packing it first when
        it is not the array packed last or its version changed; its finiteness is checked then."""
        e = self._entry
        if e is not None and e[0] is kernel and e[1] == version(kernel):
            return e[2]
        self._entry = None  # nothing stale survives a failed packing
        bfloat16 = check_bfloat16_source(kernel, self.precision)
        chk.check_finite("kernel", kernel)
        v = version(kernel)
        packed = _C.pack_dense(kernel, bfloat16=bfloat16)
        self._entry = (kernel, v, packed)
        self.packs += 1
        return packed

    def clear(self) -> None:
        """Drops the packed copy (and the reference to the kernel it was packed from)."""
        self._entry = None

    def __repr__(self) -> str:
        return f"PackedDense(precision={self.precision!r})"


def check_packed_dense(packed: Any) -> PackedDense:
    return chk.instance_of("packed", packed, PackedDense)
