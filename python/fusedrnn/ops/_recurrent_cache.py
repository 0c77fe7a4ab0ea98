"""What the recurrent ops of every device share: the gate counts and the cache a forward op keeps
for its backward op. The CPU and CUDA paths both depend on this module; nothing here depends on
either of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


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
