"""PNG figures of the reference tasks, written atomically (matplotlib's Agg backend, no screen)."""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from fusedrnn.io_utils import atomic_write

PathLike = Union[str, "os.PathLike[str]"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Mapping[str, Sequence[float]], path: PathLike, title: str = "") -> None:
    """Loss (and accuracy, when present) per epoch, train against validation, one panel each."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = [k for k in ("loss", "accuracy", "bits_per_char") if k in history or f"val_{k}" in history]
    width = max(5.0 * len(panels), 0.11 * len(title) + 0.5)  # room for the whole title (~0.11 in per character)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for name, style in ((key, "o-"), (f"val_{key}", "s--")):
            values = history.get(name)
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, style, label=name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def plot_attention(weights: np.ndarray, source: Sequence[str], output: Sequence[str], path: PathLike,
                   title: Optional[str] = None) -> None:
    """Heat-map of attention weights (len(output), len(source)): output words down, source across."""
    plt = _pyplot()
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(output), len(source)):
        raise ValueError(f"weights: expected shape ({len(output)}, {len(source)}) (output words, source words), "
                         f"got {weights.shape}")
    fig, ax = plt.subplots(figsize=(0.55 * len(source) + 2.5, 0.45 * len(output) + 2))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-9), aspect="auto")
    ax.set_xticks(range(len(source)), labels=list(source), rotation=60, ha="right")
    ax.set_yticks(range(len(output)), labels=list(output))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax, fraction=0.04)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
