"""The backend-neutral part of the fused ``inner_loop``: what goes into the fused op and how its
results become Keras's ``(last_output, outputs, states)``.

Each backend's loop (:mod:`fusedrnn.keras._tf_recurrent`, :mod:`fusedrnn.keras._torch_recurrent`)
is three steps: :func:`loop_args` (written with ``keras.ops``, so it yields tensors of the running
backend), the backend's call of the fused op, and :func:`loop_results`.

Semantics mirrored from Keras's ``RNN.call`` / ``inner_loop``:

* dtypes: a float64 layer computes in float64; every other compute dtype (float32, and the
  float16 / bfloat16 of the ``mixed_*`` policies) computes in float32: the inputs, weights,
  states and dropout masks are cast up and Keras's ``RNN.call`` casts the results back down;
* dropout masks: the ones ``RNN.call`` drew from the cell's seed generator before the loop
  (``cell.get_dropout_mask`` returns that cached mask), only when ``training``; a list of one mask
  per gate becomes one (G, B, n) tensor;
* ``use_bias=False``: a zero bias of the shape the kernels take, which gets no gradient;
* ``zero_output_for_mask``: the outputs of masked steps are zeros (in processing order, so the mask
  is reversed under ``go_backwards``); ``last_output`` is the last processed step's output.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List, Sequence, Tuple

import keras
import numpy as np

__all__ = ["GATES", "LoopArgs", "loop_args", "loop_results", "one_hot_ids"]

#: gates per cell (columns of the kernels: G * units)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclasses.dataclass
class LoopArgs:
    """The fused op's arguments for one call, as tensors of the running backend.

    ``x`` (B, T, I), ``h0``/``c0`` (B, H) (``c0`` None but for the LSTM), ``kernel`` (I, G*H),
    ``recurrent_kernel`` (H, G*H), ``bias`` (G*H,) or (2, 3H) (GRU ``reset_after=True``), all in
    ``compute_dtype`` ("float32" or "float64"); ``mask`` (B, T) bool or None; ``dropout_mask``
    (B, I) or (G, B, I) and ``recurrent_dropout_mask`` (B, H) or (G, B, H), or None.
    ``has_bias`` is False when the bias is the zero stand-in of ``use_bias=False``.
    """

    cell: str
    x: Any
    h0: Any
    c0: Any
    kernel: Any
    recurrent_kernel: Any
    bias: Any
    has_bias: bool
    mask: Any
    dropout_mask: Any
    recurrent_dropout_mask: Any
    go_backwards: bool
    activation: str
    reset_after: bool
    compute_dtype: str


def _compute_dtype(sequences: Any) -> str:
    return "float64" if keras.backend.standardize_dtype(sequences.dtype) == "float64" else "float32"


def _dropout_mask(masks: Any, dtype: str) -> Any:
    """Keras's cached dropout mask: one (B, n) tensor, or a list of one per gate -> (G, B, n)."""
    if masks is None:
        return None
    if isinstance(masks, (list, tuple)):
        return keras.ops.cast(keras.ops.stack(list(masks)), dtype)
    return keras.ops.cast(masks, dtype)


def _bias(layer: Any, dtype: str) -> Any:
    cell, units = layer.cell, layer.cell.units
    if cell.use_bias:
        return keras.ops.cast(cell.bias.value, dtype)
    shape = (2, 3 * units) if layer.fused_cell == "gru" and cell.reset_after else (GATES[layer.fused_cell] * units,)
    return keras.ops.zeros(shape, dtype)   # no bias: zeros, and the gradient there is dropped


def loop_args(layer: Any, sequences: Any, initial_state: Sequence[Any], mask: Any, training: bool) -> LoopArgs:
    """The arguments of Keras's ``inner_loop`` as the fused op takes them (see :class:`LoopArgs`)."""
    cell, kind = layer.cell, layer.fused_cell
    dtype = _compute_dtype(sequences)
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    states = [keras.ops.cast(s, dtype) for s in initial_state]
    dropout_mask = recurrent_dropout_mask = None
    if training and 0.0 < cell.dropout < 1.0:
        dropout_mask = _dropout_mask(cell.get_dropout_mask(sequences[:, 0, :]), dtype)
    if training and 0.0 < cell.recurrent_dropout < 1.0:
        recurrent_dropout_mask = _dropout_mask(cell.get_recurrent_dropout_mask(initial_state[0]), dtype)
    return LoopArgs(cell=kind, x=keras.ops.cast(sequences, dtype), h0=states[0],
                    c0=states[1] if kind == "lstm" else None,
                    kernel=keras.ops.cast(cell.kernel.value, dtype),
                    recurrent_kernel=keras.ops.cast(cell.recurrent_kernel.value, dtype),
                    bias=_bias(layer, dtype), has_bias=bool(cell.use_bias),
                    mask=None if mask is None else keras.ops.cast(mask, "bool"),
                    dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask,
                    go_backwards=bool(layer.go_backwards),
                    activation="relu" if cell.activation is keras.activations.relu else "tanh",
                    reset_after=bool(getattr(cell, "reset_after", True)), compute_dtype=dtype)


def loop_results(layer: Any, args: LoopArgs, outputs: Any, final_states: Sequence[Any]) -> Tuple[Any, Any, List[Any]]:
    """Keras's ``(last_output (B, H), outputs (B, T, H), states)`` from the fused op's (B, T, H)
    outputs (in processing order) and final states ([h] or [h, c])."""
    if args.mask is not None and layer.zero_output_for_mask:
        keep = args.mask
        if args.go_backwards:
            keep = keras.ops.flip(keep, axis=1)   # outputs are in processing order
        outputs = keras.ops.where(keep[:, :, None], outputs, keras.ops.zeros_like(outputs))
    return outputs[:, -1], outputs, list(final_states)


def one_hot_ids(x: np.ndarray) -> np.ndarray:
    """The (B, T) int32 ids of ``x`` when every (b, t) row of it is one-hot (a single 1, zeros
    elsewhere), else ``x`` itself. The ops compute the same results from the ids (a row gather of
    the kernel instead of a GEMM), but give no gradient for ``x``."""
    if x.ndim != 3 or x.shape[2] < 2 or x.size == 0:
        return x
    ones = x == 1
    if not (np.count_nonzero(x) == x.shape[0] * x.shape[1] and bool((ones.sum(axis=2) == 1).all())):
        return x
    return np.ascontiguousarray(ones.argmax(axis=2), dtype=np.int32)
