"""Starting a task's training afresh or continuing it from its last checkpoint (``--resume``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable, Optional

from fusedrnn.io_utils import PathLike
from fusedrnn.training import History, resume_training


def starting_history(resume: bool, checkpoint: Optional[PathLike], model: Any, optimizer: Any, task: str,
                     cfg: Any, print_fn: Callable[[str], None]) -> History:
    """An empty History, or with `resume` the one saved in `checkpoint` after loading its
    weights and optimizer state into `model` and `optimizer` (cfg: the task's config dataclass,
    which must match the checkpoint's apart from ``epochs``). Continue with
    ``fit(..., epochs=cfg.epochs, initial_epoch=history.epochs, history=history)``."""
    if not resume:
        return History()
    if checkpoint is None:
        raise ValueError("resume: needs the checkpoint path to continue from")
    history = resume_training(checkpoint, model, optimizer, task=task, config=asdict(cfg))
    if history.epochs >= cfg.epochs:
        print_fn(f"{checkpoint} already holds {history.epochs} epochs (asked for {cfg.epochs}); nothing to train")
    else:
        print_fn(f"resuming from {checkpoint} after epoch {history.epochs} of {cfg.epochs}")
    return history
