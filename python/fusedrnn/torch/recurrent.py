"""Drop-in replacements for ``torch.nn.RNN``, ``LSTM`` and ``GRU`` running fusedrnn's kernels.

Each class is built by ``torch.nn.RNNBase``, the base of its ``torch.nn`` counterpart, so it has
the same constructor, parameters (names, shapes, order, initialisation) and ``state_dict``, and
takes the same ``forward(input, hx=None)`` (``PackedSequence`` in and out, unbatched 2-D input)
with the same return values. Where the configuration is one fusedrnn computes (:attr:`fused`),
every layer and direction runs as one fused op of :mod:`fusedrnn.torch.recurrent_ops`, with the
weights mapped to Keras's layout by :mod:`fusedrnn.torch._weights`; anything else runs the
``torch.nn`` class's own ``forward``. (The classes derive from ``RNNBase`` rather than from
``torch.nn.LSTM`` etc. because ``torch.compile`` refuses to trace instances of those: they are not
``isinstance`` of them.)

Variable lengths (a ``PackedSequence``) become a (batch, time) mask over the right-padded batch.
fusedrnn's masks carry the state over masked steps, so the forward direction ends with each
sequence's state at its last valid step (PyTorch's ``h_n``). The reverse direction reads the
padded batch from the end (``go_backwards``) with the same mask: the padding comes first, is
masked, and leaves the initial state untouched and the outputs zero, so each sequence's valid
steps are then read last to first from the initial state, as PyTorch does.
"""

from __future__ import annotations

import functools
from typing import Any, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from fusedrnn.torch import recurrent_ops
from fusedrnn.torch._arrays import FLOAT_DTYPES
from fusedrnn.torch._eager import eager as _eager
from fusedrnn.torch._weights import WeightCache, keras_weights, torch_gradients

__all__ = ["GRU", "LSTM", "RNN"]

_CELLS = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


class _FusedRecurrent(torch.nn.RNNBase):
    """What RNN, LSTM and GRU share."""

    _torch_class: type  # the torch.nn class whose forward runs the configurations fusedrnn does not

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs fusedrnn's kernels (read-only): float32/float64 parameters on
        the CPU and ``proj_size == 0``. Otherwise ``torch.nn``'s implementation runs."""
        if self.proj_size != 0:
            return False
        return all(p.is_cpu and p.dtype in FLOAT_DTYPES for p in self._flat_weights)

    @property
    def _cell(self) -> str:
        return _CELLS[self.mode]

    def forward(self, input: Union[Tensor, PackedSequence], hx: Any = None) -> Tuple[Any, Any]:  # noqa: A002 - torch.nn's name
        data = input.data if isinstance(input, PackedSequence) else input
        if not self.fused or not isinstance(data, Tensor) or data.device.type != "cpu" or data.numel() == 0:
            return self._torch_class.forward(self, input, hx)
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        return self._forward_tensor(input, hx)

    # -- the two kinds of input ------------------------------------------------------------------
    def _forward_tensor(self, input: Tensor, hx: Any) -> Tuple[Tensor, Any]:
        if input.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        torch_input = input if batched else input.unsqueeze(batch_dim)
        states = self._initial_states(hx, batched)
        self._check(torch_input, states, None)
        x = torch_input if self.batch_first else torch_input.transpose(0, 1)
        output, finals = self._layers(x, None, states)
        if not self.batch_first:
            output = output.transpose(0, 1)
        output = output.contiguous()
        if not batched:
            output = output.squeeze(batch_dim)
            finals = [s.squeeze(1) for s in finals]
        return output, self._pack_states(finals)

    def _forward_packed(self, input: PackedSequence, hx: Any) -> Tuple[PackedSequence, Any]:
        states = self._initial_states(hx, True)
        self._check(input.data, states, input.batch_sizes)
        x, lengths = pad_packed_sequence(input, batch_first=True)  # the caller's batch order
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        output, finals = self._layers(x, mask, states)
        if input.sorted_indices is not None:
            output = output.index_select(0, input.sorted_indices.to(output.device))
            lengths = lengths.index_select(0, input.sorted_indices.cpu())
        packed = pack_padded_sequence(output, lengths, batch_first=True, enforce_sorted=True)
        return (PackedSequence(packed.data, packed.batch_sizes, input.sorted_indices, input.unsorted_indices),
                self._pack_states(finals))

    # -- states ----------------------------------------------------------------------------------
    def _initial_states(self, hx: Any, batched: bool) -> Optional[List[Tensor]]:
        """hx as a list of (layers*directions, batch, size) tensors ([h0] or [h0, c0]), or None."""
        if hx is None:
            return None
        if self._cell == "lstm":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h_0, c_0) for LSTM, got {type(hx).__name__}")
            states = list(hx)
        else:
            states = [hx]
        want = 3 if batched else 2
        for s in states:
            if not isinstance(s, Tensor):
                raise TypeError(f"hx: expected tensors, got {type(s).__name__}")
            if s.dim() != want:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got {s.dim()}-D tensor")
        return states if batched else [s.unsqueeze(1) for s in states]

    def _pack_states(self, finals: List[Tensor]) -> Any:
        return (finals[0], finals[1]) if self._cell == "lstm" else finals[0]

    def _check(self, input: Tensor, states: Optional[List[Tensor]], batch_sizes: Optional[Tensor]) -> None:
        """torch.nn's own checks of input and hx (the same messages)."""
        if states is None:
            self.check_input(input, batch_sizes)
            return
        for s in states:
            if s.dtype != input.dtype or s.device != input.device:
                raise ValueError(f"hx: expected {input.dtype} tensors on {input.device} (those of the input), "
                                 f"got {s.dtype} on {s.device}")
        self.check_forward_args(input, self._pack_states(states), batch_sizes)

    # -- the layers ------------------------------------------------------------------------------
    def _params(self, layer: int, direction: int) -> List[Optional[Tensor]]:
        """[weight_ih, weight_hh, bias_ih, bias_hh] of one layer and direction (None, None without bias)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        names = ["weight_ih" + suffix, "weight_hh" + suffix] + (["bias_ih" + suffix, "bias_hh" + suffix] if self.bias else [])
        registered = self._parameters
        if all(name in registered for name in names):  # what getattr reads, without nn.Module.__getattr__'s cost
            params: List[Optional[Tensor]] = [registered[name] for name in names]
        else:  # e.g. a parametrized weight
            params = [getattr(self, name) for name in names]
        return params + [None, None] * (not self.bias)

    def _direction(self, x: Tensor, mask: Optional[Tensor], states: Optional[List[Tensor]], index: int,
                   layer: int, reverse: bool, eager: bool) -> Tuple[Tensor, List[Tensor]]:
        """One layer in one direction: (outputs (B, T, H) in time order, [h_last] or [h_last, c_last]).

        Eager (no torch.compile, plain tensors): the weights in Keras's layout are kept from one call
        to the next while the Parameters are unchanged (:class:`fusedrnn.torch._weights.WeightCache`),
        and one autograd node maps the gradients back to the Parameters. Otherwise they are built
        from the Parameters by differentiable tensor ops, traced into the graph.
        """
        params = self._params(layer, int(reverse))
        h0 = None if states is None else states[0][index]
        c0 = None if states is None or self._cell != "lstm" else states[1][index]
        activation = "relu" if self.mode == "RNN_RELU" else "tanh"
        if eager:
            cache = self.__dict__.get("_keras_weights")
            if cache is None:
                cache = self.__dict__["_keras_weights"] = WeightCache()
            weights = cache.get((layer, int(reverse)), self._cell, params, self.hidden_size, activation)
            to_params = functools.partial(torch_gradients, self._cell, hidden_size=self.hidden_size)
            results = recurrent_ops.eager_layer(self._cell, x, h0, c0, weights, tuple(p for p in params if p is not None),
                                                to_params, mask=mask, go_backwards=reverse, activation=activation)
        else:
            kernel, recurrent_kernel, bias = keras_weights(self._cell, *params, self.hidden_size)
            options = dict(mask=mask, go_backwards=reverse)
            if self._cell == "lstm":
                results = recurrent_ops.lstm(x, h0, c0, kernel, recurrent_kernel, bias, **options)
            elif self._cell == "gru":
                results = recurrent_ops.gru(x, h0, kernel, recurrent_kernel, bias, reset_after=True, **options)
            else:
                results = recurrent_ops.rnn(x, h0, kernel, recurrent_kernel, bias, activation=activation, **options)
        out, finals = results[0], list(results[1:])
        if reverse:  # outputs[:, s] belongs to time T-1-s
            out = out.flip(1)
        return out, finals

    def _layers(self, x: Tensor, mask: Optional[Tensor], states: Optional[List[Tensor]]
                ) -> Tuple[Tensor, List[Tensor]]:
        """Every layer over x (B, T, I): (output (B, T, D*H), [h_n] or [h_n, c_n] (L*D, B, H))."""
        directions = 2 if self.bidirectional else 1
        eager = not torch.compiler.is_compiling() and _eager([x, mask] + (states or []) + self._flat_weights)
        finals: List[List[Tensor]] = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                out, last = self._direction(x, mask, states, layer * directions + d, layer, bool(d), eager)
                outs.append(out)
                finals.append(last)
            x = outs[0] if directions == 1 else torch.cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        if len(finals) == 1:
            return x, [s.unsqueeze(0) for s in finals[0]]
        return x, [torch.stack([f[k] for f in finals]) for k in range(len(finals[0]))]


class RNN(_FusedRecurrent):
    """``torch.nn.RNN`` (Elman RNN, ``nonlinearity`` 'tanh' or 'relu') on fusedrnn's kernels."""

    _torch_class = torch.nn.RNN

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(modes[nonlinearity], input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


class LSTM(_FusedRecurrent):
    """``torch.nn.LSTM`` on fusedrnn's kernels (``proj_size > 0`` runs on torch.nn's)."""

    _torch_class = torch.nn.LSTM
    # torch.nn.LSTM's own checks and permutation of the (h_0, c_0) pair
    get_expected_cell_size = torch.nn.LSTM.get_expected_cell_size
    check_forward_args = torch.nn.LSTM.check_forward_args  # type: ignore[assignment]
    permute_hidden = torch.nn.LSTM.permute_hidden  # type: ignore[assignment]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(_FusedRecurrent):
    """``torch.nn.GRU`` on fusedrnn's kernels."""

    _torch_class = torch.nn.GRU

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
