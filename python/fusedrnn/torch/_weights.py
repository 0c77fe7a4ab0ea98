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
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from fusedrnn.ops._recurrent_cache import GATES


def _gru_gate_order(w: Tensor, hidden_size: int) -> Tensor:
    """Rows (r, z, n) of a GRU weight or bias as (z, r, n)."""
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
