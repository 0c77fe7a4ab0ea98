"""What the recurrent ops of every device share: the gate counts, the expected weight shapes (and
the errors for others) and the cache a forward op keeps for its backward op. The CPU and CUDA
paths both depend on this module; nothing here depends on either of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def units_from_kernel(cell: str, kernel_shape: Sequence[int], input_size: int) -> int:
    """The number of units H of a kernel of shape (input_size, G*H); ValueError naming `kernel` otherwise."""
    gates = GATES[cell]
    shape = tuple(int(d) for d in kernel_shape)
    if len(shape) != 2 or shape[0] != input_size or shape[1] % gates != 0 or shape[1] == 0:
        raise ValueError(f"kernel: expected shape ({input_size}, {gates}*units) (features, gates*units), got {shape}")
    return shape[1] // gates


def bias_spec(cell: str, reset_after: bool, units: int) -> Tuple[Tuple[int, ...], str]:
    """(the bias shape, its description for error messages): (G*H,), or (2, 3H) for the GRU with
    ``reset_after=True`` (input bias, then recurrent bias, as Keras keeps them)."""
    if cell == "gru" and reset_after:
        return (2, 3 * units), "(2, 3*units): input and recurrent bias, as Keras's GRU with reset_after=True"
    note = " (GRU with reset_after=False)" if cell == "gru" else ""
    return (GATES[cell] * units,), f"(gates*units,){note}"


@dataclass(frozen=True)
class RecurrentCache:
    """What a forward op keeps for its backward op (treat as opaque).

    ``x`` is the input (B, T, I) or the one-hot ids (B, T) as int32. ``gates`` (B, T, G*H) holds
    the activated gate values, ``hprev`` (B, T, H) the state entering every step and ``aux``
    (B, T, H) the cell state (LSTM) or the GRU's candidate term; all in input-time order. The
    arrays are NumPy arrays from the CPU path, CUDA arrays (CuPy or torch) from the CUDA path.
    """

    cell: str
    activation: str
    reset_after: bool
    go_backwards: bool
    x: Any
    h0: Any
    c0: Optional[Any]
    kernel: Any
    recurrent_kernel: Any
    bias: Any
    mask: Optional[Any]
    dropout_mask: Optional[Any]
    recurrent_dropout_mask: Optional[Any]
    gates: Any
    hprev: Any
    aux: Optional[Any]

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def units(self) -> int:
        return int(self.h0.shape[1])
