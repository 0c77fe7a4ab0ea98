"""``Sequential``: a stack of layers run one after the other, forward and backward.

Masks flow as in Keras: each layer's ``compute_mask`` gives the mask the next layer receives,
so ``Embedding(mask_zero=True)`` → ``LSTM`` masks the padding. Stacked recurrent layers need
``return_sequences=True`` on all but the last, as in Keras.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from fusedrnn.grad_mode import no_grad


class Sequential:
    """Layers applied in order; ``backward`` runs them in reverse.

    Example (the IMDB sentiment model)::

        model = Sequential([Embedding(20000, 128), LSTM(128, dropout=0.2, recurrent_dropout=0.2),
                            Dense(1)])
        logits = model(x_ids, training=True)       # (B, 1)
        model.backward(d_logits)                   # fills every layer's grads
        optimizer.apply(model.params, model.grads)
    """

    def __init__(self, layers: Iterable[Any], name: str = "sequential") -> None:
        self.layers: List[Any] = list(layers)
        if not self.layers:
            raise ValueError("layers: expected at least one layer")
        for k, layer in enumerate(self.layers):
            for attr in ("backward", "compute_mask", "get_weights", "set_weights", "get_config"):
                if not callable(getattr(layer, attr, None)):
                    raise TypeError(f"layers[{k}]: {type(layer).__name__} has no {attr}(); "
                                    "expected a fusedrnn layer (see fusedrnn.layers.base)")
        self.name = name

    def __call__(self, x: Any, mask: Optional[np.ndarray] = None, training: bool = False) -> Any:
        """Runs every layer on the output of the previous one; returns the last output."""
        for layer in self.layers:
            next_mask = layer.compute_mask(x, mask)
            x = layer(x, mask=mask, training=training)
            mask = next_mask
        return x

    def backward(self, d_output: np.ndarray) -> Optional[np.ndarray]:
        """Back-propagates through the last call; returns the input gradient (None for ids)."""
        d: Optional[np.ndarray] = d_output
        for layer in reversed(self.layers):
            d = layer.backward(d)
            if d is None:  # reached a layer whose input has no gradient (integer ids)
                break
        return d

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Inference in batches of `batch_size` along the first axis (training=False, under
        :func:`fusedrnn.no_grad`: the recurrent layers keep no cache)."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        n = len(x)
        with no_grad():
            parts = [self(x[i:i + batch_size], training=False) for i in range(0, n, batch_size)]
        return np.concatenate(parts, axis=0)

    # -- weights -------------------------------------------------------------------------------
    @property
    def params(self) -> List[np.ndarray]:
        """Every layer's live weights, in layer order (optimizers update them in place)."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> List[np.ndarray]:
        """Every layer's gradients from the last backward, aligned with ``params``."""
        out: List[np.ndarray] = []
        for layer in self.layers:
            if len(layer.grads) != len(layer.params):
                raise RuntimeError(f"{layer.name}: no gradients yet; call backward() after a forward pass")
            out.extend(layer.grads)
        return out

    def get_weights(self) -> List[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: List[np.ndarray]) -> None:
        """Sets all weights (built layers only), each layer taking as many arrays as its
        get_weights() returns. Checkpoints restore layer by layer instead (see checkpoint.py)."""
        k = 0
        for layer in self.layers:
            if not _is_built(layer):
                raise RuntimeError(f"{layer.name}: not built; call the model on data first")
            count = len(layer.get_weights())
            layer.set_weights(list(weights[k:k + count]))
            k += count
        if k != len(weights):
            raise ValueError(f"weights: expected {k} arrays for this model, got {len(weights)}")

    def get_config(self) -> Dict[str, Any]:
        """{'name', 'layers': [{'class': name, 'config': ...}]}: rebuild with fusedrnn.training.model_from_config."""
        return {"name": self.name,
                "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    def summary(self) -> str:
        """One line per layer with its weight shapes and the parameter count."""
        lines, total = [], 0
        for layer in self.layers:
            shapes = [tuple(w.shape) for w in layer.get_weights()] if _is_built(layer) else []
            count = int(sum(np.prod(s) for s in shapes))
            total += count
            lines.append(f"{layer.name:<20} {type(layer).__name__:<14} {count:>10,}  {shapes}")
        lines.append(f"{'total':<35} {total:>10,}")
        return "\n".join(lines)


def _is_built(layer: Any) -> bool:
    built = getattr(layer, "built", True)
    return bool(built)
