"""PyTorch's recurrent weights in fusedrnn's (Keras's) layout, built from the Parameters with
differentiable tensor ops so that gradients reach the Parameters.

=====================  ================================  =====================================
                       torch.nn                          fusedrnn (Keras)
=====================  ================================  =====================================
input weights          ``weight_ih`` (G*H, I)            ``kernel`` (I, G*H) = transpose
recurrent weights      ``weight_hh`` (G*H, H)            ``recurrent_kernel`` (H, G*H)
biases (RNN, LSTM)     ``bias_ih`` + ``bias_hh``         ``bias`` (G*H,): their sum
biases (GRU)           ``bias_ih``, ``bias_hh``          ``bias`` (2, 3H) (``reset_after=True``)
LSTM gate order        i, f, g, o                        i, f, c, o (the same)
GRU gate order         r, z, n                           z, r, h (r and z swap)
=====================  ================================  =====================================

PyTorch's GRU adds ``b_hn`` inside ``r * (W_hn h + b_hn)``: that is Keras's ``reset_after=True``,
whose recurrent bias row enters the candidate the same way.

:func:`keras_weights` builds the mapping from differentiable tensor ops (what torch.compile
traces). In eager mode the modules keep the mapped tensors while the Parameters are unchanged
(:class:`WeightCache`) and their one autograd node per layer and direction maps the gradients back
to PyTorch's layout by :func:`torch_gradients` (instead of autograd stepping back through a dozen
small transpose, slice and cat nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from fusedrnn.ops import PackedWeights
from fusedrnn.ops._recurrent_cache import GATES


def _gru_gate_order(w: Tensor, hidden_size: int) -> Tensor:
    """Rows (r, z, n) of a GRU weight or bias as (z, r, n); the same swap maps (z, r, n) back."""
    H = hidden_size
    return torch.cat((w[H:2 * H], w[:H], w[2 * H:]))


def keras_weights(cell: str, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Optional[Tensor],
                  bias_hh: Optional[Tensor], hidden_size: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``(kernel (I, G*H), recurrent_kernel (H, G*H), bias)`` of one layer and direction, contiguous.

    bias is (G*H,), or (2, 3H) for the GRU; zeros (not differentiable) when the module has no bias.
    """
    if cell == "gru":
        weight_ih = _gru_gate_order(weight_ih, hidden_size)
        weight_hh = _gru_gate_order(weight_hh, hidden_size)
    kernel = weight_ih.t().contiguous()
    recurrent_kernel = weight_hh.t().contiguous()
    GH = GATES[cell] * hidden_size
    if cell == "gru":
        if bias_ih is None or bias_hh is None:
            bias = weight_ih.new_zeros((2, GH))
        else:
            bias = torch.stack((_gru_gate_order(bias_ih, hidden_size), _gru_gate_order(bias_hh, hidden_size)))
    elif bias_ih is None or bias_hh is None:
        bias = weight_ih.new_zeros((GH,))
    else:
        bias = bias_ih + bias_hh
    return kernel, recurrent_kernel, bias


def _swap_first_two_gates(a: np.ndarray, hidden_size: int) -> None:
    """Swaps rows [0, H) and [H, 2H) of a (3H, ...) array in place: GRU gates (z, r, n) <-> (r, z, n)."""
    H = hidden_size
    first = a[:H].copy()
    a[:H] = a[H:2 * H]
    a[H:2 * H] = first


def torch_gradients(cell: str, d_kernel_t: Tensor, d_recurrent_kernel_t: Tensor, d_bias: Tensor, hidden_size: int
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The gradients of ``(weight_ih, weight_hh, bias_ih, bias_hh)`` from those of
    :func:`keras_weights`'s results, the weights' given transposed (``gate_major``: d_kernel_t
    (G*H, I), d_recurrent_kernel_t (G*H, H), contiguous, as the kernels write them). The inverse
    mapping: swap the GRU's r and z rows back; the summed LSTM/RNN bias passes its gradient to
    both bias vectors.

    Only the modules' eager path calls it, which runs on the CPU: the GRU's gradients, fresh arrays
    of the kernels that nothing else holds, are reordered in place (no new tensors); bias_ih's and
    bias_hh's gradients are then the two rows of d_bias."""
    if cell == "gru":
        for grad in (d_kernel_t, d_recurrent_kernel_t, d_bias[0], d_bias[1]):
            _swap_first_two_gates(grad.numpy(), hidden_size)
        return d_kernel_t, d_recurrent_kernel_t, d_bias[0], d_bias[1]
    return d_kernel_t, d_recurrent_kernel_t, d_bias, d_bias.clone()  # two Parameters: two gradient tensors


@dataclass
class MappedWeights:
    """One layer and direction's weights in Keras's layout: ``tensors`` (kernel, recurrent_kernel,
    bias, contiguous CPU tensors, not recorded by autograd), ``arrays`` NumPy views of them, and
    ``packed``, the ops.PackedWeights that inference calls pass with ``arrays`` (packed on the
    first such call, then kept: the arrays stay the same objects while the mapping is kept)."""

    tensors: Tuple[Tensor, Tensor, Tensor]
    arrays: Tuple[np.ndarray, np.ndarray, np.ndarray]
    packed: PackedWeights


class WeightCache:
    """The Keras-layout weights of one layer and direction, kept from one forward to the next while
    the Parameters are the same objects over the same memory at the same version (any in-place
    change, an optimizer step, ``load_state_dict``, ``.to()``, assigning ``.data``, makes it stale)."""

    def __init__(self) -> None:
        self._kept: Dict[Any, Tuple[List[Any], MappedWeights]] = {}

    def get(self, slot: Any, cell: str, params: List[Optional[Tensor]], hidden_size: int, activation: str = "tanh"
            ) -> MappedWeights:
        """The mapped weights of ``params`` (weight_ih, weight_hh, bias_ih or None, bias_hh or None)
        kept under ``slot`` (CPU Parameters; ``activation`` the SimpleRNN's, for the packed copy)."""
        weight_ih, weight_hh, bias_ih, bias_hh = params
        inference = torch.is_inference_mode_enabled()
        key = [inference] + [(p, p.data_ptr(), p._version) for p in params if p is not None]
        hit = self._kept.get(slot)
        if hit is None or not _same(hit[0], key):
            with torch.no_grad():
                tensors = keras_weights(cell, weight_ih, weight_hh, bias_ih, bias_hh, hidden_size)
            mapped = MappedWeights(tensors, tuple(t.numpy() for t in tensors),  # type: ignore[arg-type]
                                   PackedWeights(cell, reset_after=True, activation=activation))
            hit = self._kept[slot] = (key, mapped)
        return hit[1]


def _same(a: List[Any], b: List[Any]) -> bool:
    if len(a) != len(b) or a[0] != b[0]:
        return False
    return all(x[0] is y[0] and x[1] == y[1] and x[2] == y[2] for x, y in zip(a[1:], b[1:]))
