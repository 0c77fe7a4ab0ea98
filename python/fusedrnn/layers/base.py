"""The contract every fusedrnn layer follows, so that containers can chain them.

A layer is a plain object with explicit forward and backward passes over NumPy arrays::

    y = layer(x, mask=None, training=False)   # forward; keeps what backward needs
    dx = layer.backward(dy)                   # gradient w.r.t. x (None for integer inputs)
    layer.grads                               # weight gradients, aligned with layer.params

and these attributes:

- ``params``: the live weight arrays, in ``get_weights()`` order. Optimizers update them in
  place, so a layer must never rebind them after ``build`` (``set_weights`` copies into new
  arrays and is not used during training).
- ``grads``: one array per entry of ``params`` (same shape and dtype), filled by ``backward``.
- ``get_weights()`` / ``set_weights(ws)``: copies, in Keras's order and shapes.
- ``compute_mask(x, mask)``: the (B, T) boolean mask of this layer's output, or None. Keras's
  mask propagation: ``Embedding(mask_zero=True)`` creates one, layers that keep the time axis
  pass it on, a recurrent layer without ``return_sequences`` drops it.
- ``get_config()``: the constructor arguments as a JSON-serialisable dict, so that
  ``type(layer)(**layer.get_config())`` makes an equal (unbuilt) layer; used by checkpoints.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Layer(Protocol):
    """Structural type of a fusedrnn layer; see the module docstring for the contract."""

    name: str
    grads: List[np.ndarray]

    @property
    def params(self) -> List[np.ndarray]: ...

    def __call__(self, x: Any, mask: Optional[np.ndarray] = None, training: bool = False) -> Any: ...

    def backward(self, d_output: np.ndarray) -> Any: ...

    def compute_mask(self, x: Any, mask: Optional[np.ndarray]) -> Optional[np.ndarray]: ...

    def get_weights(self) -> List[np.ndarray]: ...

    def set_weights(self, weights: List[np.ndarray]) -> None: ...

    def get_config(self) -> Dict[str, Any]: ...
