"""When a call of fusedrnn.torch's ops may skip the registered operators.

Each op is a ``torch.library`` custom op (what torch.compile, fake tensors and dispatch modes see)
and, for eager calls, a plain ``torch.autograd.Function`` over the same implementation: the custom-op
dispatcher costs more per call than a small layer's kernels take.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

_PLAIN = (Tensor, torch.nn.Parameter)


def eager(tensors: Sequence[Optional[Tensor]]) -> bool:
    """Whether a call can skip the operators: not traced by torch.compile, no dispatch mode (fake
    tensors, make_fx) active, and only plain tensors or Parameters (no subclass that needs dispatch)."""
    if torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack():
        return False
    return all(t is None or type(t) in _PLAIN for t in tensors)
