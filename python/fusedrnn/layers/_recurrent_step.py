"""The single-step API of the recurrent layers (decoders, sampling, streaming), on weights packed
once and kept between steps (:mod:`fusedrnn.ops.packed`)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional, Sequence

import numpy as np

from fusedrnn import ops
from fusedrnn.ops import packed as ops_packed
from fusedrnn.weight_versions import weights_changed


class RecurrentStepMixin:
    """``layer.step(x_t, states)`` and ``layer.weights_changed()`` for SimpleRNN, LSTM and GRU."""

    _step_packed: Optional[ops.PackedWeights] = None   # the float32 copy kept between steps and blocks
    _kept_bfloat16: Optional[ops.PackedWeights] = None  # the same in bfloat16 (packed_calls(keep=True, ...))
    _calls_packed: Optional[ops.PackedWeights] = None  # set inside packed_calls()

    @contextlib.contextmanager
    def packed_calls(self, precision: str = "float32", keep: bool = False) -> Iterator[Any]:
        """Inside the block, calls of the layer that keep nothing for a backward pass and draw no
        dropout (inference under :func:`fusedrnn.no_grad`), and its :meth:`step` calls, run on the
        weights packed once at the first call instead of packing them in every call: for loops of
        calls on unchanging weights, such as sampling text one character at a time. The weights
        must not change inside the block other than through ``set_weights`` or an optimizer (see
        :meth:`weights_changed`).

        ``precision='bfloat16'`` (float32 layers only) keeps the packed weights in bfloat16 for
        the block: half the bytes to stream per step, outputs within a few 1e-3 of float32's
        (see :class:`fusedrnn.ops.PackedWeights`). Calls that keep a cache for a backward pass
        (training) are not affected and stay float32.

        ``keep=True``: the block uses the packed copy that the layer keeps between blocks (in
        float32 the one :meth:`step` uses outside blocks), so a block entered again on unchanged
        weights, such as one per translated sentence, packs nothing; it is packed again after
        ``set_weights``, an optimizer step or :meth:`weights_changed`, whether inside a block or
        between blocks. Costs one packed copy of the weights held by the layer per precision."""
        before = self._calls_packed
        self._calls_packed = self._kept_packed(precision) if keep else self._new_packed(precision)
        try:
            yield self
        finally:
            self._calls_packed = before

    def _new_packed(self, precision: str = "float32") -> ops.PackedWeights:
        return ops.PackedWeights(self._cell, reset_after=getattr(self, "reset_after", True),  # type: ignore[attr-defined]
                                 activation=getattr(self, "activation", "tanh"), precision=precision)

    def _kept_packed(self, precision: str = "float32") -> ops.PackedWeights:
        """The PackedWeights of this precision that the layer keeps between steps and blocks
        (made at first use)."""
        if precision == "bfloat16":
            if self._kept_bfloat16 is None:
                self._kept_bfloat16 = self._new_packed(precision)
            return self._kept_bfloat16
        if self._step_packed is None:
            self._step_packed = self._new_packed(precision)  # checks the precision's name
        return self._step_packed

    def step(self, x_t: Any, states: Sequence[np.ndarray], out: Optional[Sequence[np.ndarray]] = None,
             precision: str = "float32") -> List[np.ndarray]:
        """One time step, for inference: x_t (B, I) (or integer ids (B,) standing for one-hot rows,
        after ``build(vocabulary_size)``) and the states [h] ([h, c] for the LSTM), each (B, H).

        Returns the new states, the output being the new h: the same numbers (to float rounding)
        as calling the layer on ``x_t[:, None]`` with ``initial_state=states``, without dropout.
        ``out``: arrays to write the new states into (may be ``states`` itself, to update them in
        place), else new arrays. ``precision``: 'float32', or 'bfloat16' for weights kept in
        bfloat16 (see :meth:`packed_calls`); inside a :meth:`packed_calls` block the step runs on
        the block's packed weights, in the block's precision. The layer keeps its weights packed between steps and packs them
        again after ``set_weights`` or an optimizer step; after editing the weights in place any
        other way call :meth:`weights_changed` (see :mod:`fusedrnn.weight_versions`).
        """
        if not self.built:  # type: ignore[attr-defined]
            self._build_for_step(x_t)
        packed = self._calls_packed or self._kept_packed(precision)
        if isinstance(states, np.ndarray):
            states = [states]
        n = self._n_states  # type: ignore[attr-defined]
        if len(states) != n:
            raise ValueError(f"states: expected {n} array(s) ({'[h, c]' if n == 2 else '[h]'}), got {len(states)}")
        bias = self._op_bias()  # type: ignore[attr-defined]  # zeros with use_bias=False
        new = ops_packed._step(self._cell, x_t, states[0], states[1] if n == 2 else None,  # type: ignore[attr-defined]
                               self.kernel, self.recurrent_kernel, bias, packed, out)  # type: ignore[attr-defined]
        return [new[0], new[1]] if n == 2 else [new[0]]

    def _build_for_step(self, x_t: Any) -> None:
        """Builds the layer from a float x_t (its input size), else says how to build it."""
        if isinstance(x_t, np.ndarray) and x_t.ndim == 2 and x_t.dtype.kind == "f":
            self.build(int(x_t.shape[1]))  # type: ignore[attr-defined]
        else:
            raise RuntimeError(f"{self.name}: the layer has no weights yet; call it on data or "  # type: ignore[attr-defined]
                               "build(input_dim) first")

    def weights_changed(self) -> None:
        """Call after editing the weights in place (other than through an optimizer or set_weights),
        so that the packed copy that :meth:`step` keeps is packed again."""
        weights_changed(self.kernel, self.recurrent_kernel, self.bias)  # type: ignore[attr-defined]
