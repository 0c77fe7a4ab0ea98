"""Forward weights packed once and kept between calls, and the single-step ops that use them.

Every call of :func:`fusedrnn.ops.lstm_forward` (and the other forward ops) copies its weights
into the panel layout of the CPU kernels before it multiplies them; a single step (T=1) instead
multiplies the unpacked weights with BLAS. When many calls share unchanged weights, such as a
decoder's steps or a stream of sequences, a :class:`PackedWeights` keeps the packed copy::

    packed = ops.PackedWeights("lstm")
    for x_t in steps:                                                 # x_t (B, I)
        h, c = ops.lstm_step(x_t, h, c, kernel, recurrent_kernel, bias, packed=packed, out=(h, c))
    outputs, h, c, _ = ops.lstm_forward(x, h, c, kernel, recurrent_kernel, bias, packed=packed)

``PackedWeights(cell, precision="bfloat16")`` keeps float32 weights rounded to bfloat16 (8 bits of
significand, float32's exponent range), for inference only: the kernels widen them back to float32
as they load them and sum in float32, so the products that are bound by how fast the weights
stream read half the bytes. Each weight's relative error is at most 2**-9; outputs then differ from
float32's by a few 1e-3 of their scale (docs/latency.md reports the measured error). Forward passes that
keep a cache for a backward pass refuse them.

A PackedWeights packs on first use, then again only when a call passes other arrays (identity,
not contents) or when one of the arrays it was packed from has a newer version in
:mod:`fusedrnn.weight_versions` (optimizer steps and ``set_weights`` bump it; after any other
in-place edit call ``fusedrnn.weight_versions.weights_changed(array)``). The weights are checked
for NaN and inf when they are packed, not on every call. Dense input and one-hot ids keep one
packed copy each.

The step ops (:func:`rnn_step`, :func:`lstm_step`, :func:`gru_step`) run one time step on the
packed weights, without dropout or masks (inference), and write the new states into ``out``
(preallocated arrays, which may be the input states themselves) or new arrays. Their results
equal those of the forward op over a sequence of length one, within float rounding (a few ulp:
the packed kernel sums in another order than BLAS).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from fusedrnn import _C
from fusedrnn.ops import _checks as chk
from fusedrnn.ops._recurrent_cache import GATES, bias_spec
from fusedrnn.weight_versions import latest, version

__all__ = ["PackedWeights", "gru_step", "lstm_step", "rnn_step"]

PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: str) -> str:
    """ValueError unless `precision` names a precision of packed weights."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected 'float32' or 'bfloat16', got {precision!r}")
    return precision


def check_bfloat16_source(kernel: np.ndarray, precision: str) -> bool:
    """Whether `kernel` is to be packed in bfloat16; TypeError when it should but is not float32."""
    if precision != "bfloat16":
        return False
    if kernel.dtype != np.float32:
        raise TypeError(f"kernel: bfloat16 weights are packed from float32 weights, got {kernel.dtype}")
    return True


class PackedWeights:
    """The packed forward weights of one recurrent cell, repacked only when they change.

    Args: cell 'rnn', 'lstm' or 'gru'; reset_after (GRU) as in :func:`fusedrnn.ops.gru_forward`;
    activation (SimpleRNN) 'tanh' or 'relu'; precision 'float32' (the weights' own dtype, float32
    or float64: results as without packing, within float rounding) or 'bfloat16' (float32 weights
    only, inference only: half the bytes, a few 1e-3 relative error). Pass it as ``packed=`` to the
    forward ops and the step ops with the same cell options. Memory: one copy of kernel and
    recurrent kernel (per input kind), half of it in bfloat16. Not for CUDA arrays.
    """

    def __init__(self, cell: str, *, reset_after: bool = True, activation: str = "tanh",
                 precision: str = "float32") -> None:
        if cell not in GATES:
            raise ValueError(f"cell: expected 'rnn', 'lstm' or 'gru', got {cell!r}")
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation: expected 'tanh' or 'relu', got {activation!r}")
        self.cell = cell
        self.reset_after = bool(reset_after)
        self.activation = activation
        self.precision = check_precision(precision)
        self.packs = 0  # how many times the weights were packed (for tests and diagnostics)
        # one_hot -> (kernel, recurrent_kernel, their versions, the packed copy)
        self._entries: Dict[bool, Tuple[np.ndarray, np.ndarray, int, int, Any]] = {}
        # one_hot -> (latest() when made, kernel, recurrent_kernel, bias, the step plan)
        self._plans: Dict[bool, Tuple[int, np.ndarray, np.ndarray, np.ndarray, Any]] = {}

    def handle(self, kernel: np.ndarray, recurrent_kernel: np.ndarray, one_hot: bool = False) -> Any:
        """The packed copy of these arrays (for one-hot ids: of recurrent_kernel only), packing them
        first when they are not the arrays packed last or their versions changed. The arrays must
        already have the checked dtype and shape; their finiteness is checked here when packing."""
        e = self._entries.get(one_hot)
        if (e is not None and e[0] is kernel and e[1] is recurrent_kernel and e[2] == version(kernel)
                and e[3] == version(recurrent_kernel)):
            return e[4]
        bfloat16 = check_bfloat16_source(kernel, self.precision)
        if not one_hot:
            chk.check_finite("kernel", kernel)
        chk.check_finite("recurrent_kernel", recurrent_kernel)
        versions = version(kernel), version(recurrent_kernel)
        packed = _C.pack_recurrent_weights(self.cell, kernel, recurrent_kernel, self.activation, self.reset_after,
                                           one_hot, bfloat16=bfloat16)
        self._entries[one_hot] = (kernel, recurrent_kernel, *versions, packed)
        self.packs += 1
        return packed

    def step_plan(self, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray, one_hot: bool) -> Any:
        """The compiled single step on these arrays (a ``_C.RecurrentStepPlan`` over :meth:`handle`),
        kept while no weight version changes anywhere (:func:`fusedrnn.weight_versions.latest`)
        and the call passes the same arrays; else made again, repacking only what changed."""
        e = self._plans.get(one_hot)
        if (e is not None and e[0] == latest() and e[1] is kernel and e[2] is recurrent_kernel
                and e[3] is bias):
            return e[4]
        stamp = latest()
        plan = _C.RecurrentStepPlan(self.handle(kernel, recurrent_kernel, one_hot), kernel, recurrent_kernel, bias)
        self._plans[one_hot] = (stamp, kernel, recurrent_kernel, bias, plan)
        return plan

    def check_options(self, cell: str, reset_after: bool, activation: str, keep_cache: bool = False) -> None:
        """ValueError unless an op with these options may use this packed copy."""
        if keep_cache and self.precision == "bfloat16":
            raise ValueError("packed: bfloat16 weights are for inference only; pass keep_cache=False, or a "
                             "PackedWeights with precision='float32' for training")
        if cell != self.cell or (cell == "gru" and bool(reset_after) != self.reset_after) or (
                cell == "rnn" and activation != self.activation):
            raise ValueError(f"packed: made for {self!r}, but the call is {cell} (reset_after={reset_after}, "
                             f"activation={activation!r})")

    def clear(self) -> None:
        """Drops the packed copies (and the references to the arrays they were packed from)."""
        self._entries.clear()
        self._plans.clear()

    def __repr__(self) -> str:
        opts = {"gru": f", reset_after={self.reset_after}", "rnn": f", activation={self.activation!r}"}.get(self.cell, "")
        if self.precision != "float32":
            opts += f", precision={self.precision!r}"
        return f"PackedWeights({self.cell!r}{opts})"


def check_packed(packed: Any) -> PackedWeights:
    return chk.instance_of("packed", packed, PackedWeights)


def _step(cell: str, x: Any, h: Any, c: Any, kernel: Any, recurrent_kernel: Any, bias: Any, packed: Any,
          out: Optional[Sequence[Any]]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The step's fast path: the compiled step plan checks dtypes, shapes, layout and finiteness
    itself (the weights' finiteness when they are packed); when it refuses the call, _check_step
    runs the precise checks, whose error names the argument and what was expected."""
    if type(packed) is not PackedWeights:
        raise TypeError(f"packed: expected a fusedrnn.ops.PackedWeights, got {chk.describe(packed)}")
    try:
        if packed.cell != cell:
            raise ValueError("packed: for another cell")
        one_hot = x.dtype.kind in "iu"
        if one_hot and x.dtype != np.int32:
            x = x.astype(np.int32)
        plan = packed.step_plan(kernel, recurrent_kernel, bias, one_hot)
        if out is None:
            return plan(x, h, c, None, None)
        if len(out) != (2 if cell == "lstm" else 1):
            raise ValueError("out: wrong length")
        return plan(x, h, c, out[0], out[1] if cell == "lstm" else None)
    except (TypeError, ValueError, AttributeError, IndexError):
        _check_step(cell, x, h, c, kernel, recurrent_kernel, bias, packed, out)
        raise


def _check_step(cell: str, x: Any, h: Any, c: Any, kernel: Any, recurrent_kernel: Any, bias: Any,
                packed: PackedWeights, out: Optional[Sequence[Any]]) -> None:
    """Every check of a step's arguments, raising an error that names the first bad one."""
    packed.check_options(cell, packed.reset_after, packed.activation)
    gates = GATES[cell]
    x = chk.as_array("x", x)
    kernel = chk.check_float("kernel", kernel)
    dtype = kernel.dtype
    if kernel.ndim != 2 or kernel.shape[1] % gates or kernel.shape[1] == 0:
        raise ValueError(f"kernel: expected shape (features, {gates}*units), got {kernel.shape}")
    I, H = int(kernel.shape[0]), kernel.shape[1] // gates
    if x.dtype.kind in "iu":
        if x.ndim != 1:
            raise ValueError(f"x: expected integer ids of shape (batch,), got shape {x.shape}")
        chk.token_ids("x", x[:, None], I)
    else:
        x = chk.check_float("x", x, dtype)
        if x.ndim != 2 or x.shape[1] != I:
            raise ValueError(f"x: expected shape (batch, {I}) (batch, features), got {x.shape}")
        chk.check_contiguous("x", x)
        chk.check_finite("x", x)
    B = int(x.shape[0])
    if B == 0:
        raise ValueError("x: the batch must hold at least one row")
    chk.check_contiguous("kernel", kernel)
    chk.float_input("recurrent_kernel", recurrent_kernel, dtype, (H, gates * H), "(units, gates*units)")
    chk.float_input("bias", bias, dtype, *bias_spec(cell, packed.reset_after, H))
    chk.float_input("h", h, dtype, (B, H), "(batch, units)")
    if cell == "lstm":
        chk.float_input("c", c, dtype, (B, H), "(batch, units)")
    if out is not None:
        n = 2 if cell == "lstm" else 1
        if len(out) != n:
            raise ValueError(f"out: expected {n} array(s) for the new states, got {len(out)}")
        for k, o in enumerate(out):
            o = chk.check_float(f"out[{k}]", o, dtype)
            chk.check_shape(f"out[{k}]", o, (B, H), "(batch, units)")
            chk.check_contiguous(f"out[{k}]", o)
            if not o.flags.writeable:
                raise ValueError(f"out[{k}]: must be writeable")


def rnn_step(x: np.ndarray, h: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray, *,
             packed: PackedWeights, out: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """One SimpleRNN step: x (B, I) (or integer ids (B,)), h (B, H) -> the new h (B, H).

    ``packed``: a PackedWeights('rnn', activation=...); ``out``: [h_out] to write into (may be [h])."""
    return _step("rnn", x, h, None, kernel, recurrent_kernel, bias, packed, out)[0]


def lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
              bias: np.ndarray, *, packed: PackedWeights, out: Optional[Sequence[np.ndarray]] = None
              ) -> Tuple[np.ndarray, np.ndarray]:
    """One LSTM step: x (B, I) (or integer ids (B,)), h and c (B, H) -> the new (h, c), each (B, H).

    ``packed``: a PackedWeights('lstm'); ``out``: [h_out, c_out] to write into (may be [h, c])."""
    h_new, c_new = _step("lstm", x, h, c, kernel, recurrent_kernel, bias, packed, out)
    return h_new, c_new  # type: ignore[return-value]


def gru_step(x: np.ndarray, h: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray, *,
             packed: PackedWeights, out: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """One GRU step: x (B, I) (or integer ids (B,)), h (B, H) -> the new h (B, H).

    ``packed``: a PackedWeights('gru', reset_after=...), whose reset_after the step follows (bias
    (2, 3H) with reset_after=True, else (3H,)); ``out``: [h_out] to write into (may be [h])."""
    return _step("gru", x, h, None, kernel, recurrent_kernel, bias, packed, out)[0]
