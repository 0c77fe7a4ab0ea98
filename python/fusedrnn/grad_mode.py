"""``fusedrnn.no_grad()``: run layers for inference only, without keeping what backward needs.

Inside ``with fusedrnn.no_grad():`` the recurrent layers (SimpleRNN, LSTM, GRU, and those inside
Bidirectional or a model) call their ops with ``keep_cache=False``: the kernels keep only the
state of the previous step instead of every step's gates and states, which is faster and needs
O(batch * units) memory instead of O(batch * time * gates * units). Outputs are the same,
bit for bit. A layer's ``backward()`` after such a call raises RuntimeError.

The setting is per thread and nests; ``fusedrnn.training`` uses it for ``predict`` and
``evaluate``, the tasks for sampling, translating and scoring.
"""

from __future__ import annotations

import functools
import threading
from types import TracebackType
from typing import Any, Callable, List, Optional, Type, TypeVar

_state = threading.local()

F = TypeVar("F", bound=Callable[..., Any])


def is_grad_enabled() -> bool:
    """Whether layer calls on this thread keep what their backward pass needs (the default)."""
    return getattr(_state, "enabled", True)


class no_grad:  # noqa: N801 (a context manager named like the function it stands for, as in PyTorch)
    """Context manager (and decorator) under which layer calls keep no cache for backward."""

    def __init__(self) -> None:
        self._before: List[bool] = []  # one entry per active `with` (an instance may be re-entered)

    def __enter__(self) -> "no_grad":
        self._before.append(is_grad_enabled())
        _state.enabled = False
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        _state.enabled = self._before.pop()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
