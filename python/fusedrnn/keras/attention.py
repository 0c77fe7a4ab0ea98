"""Keras 3 ``Attention`` and ``AdditiveAttention`` computed by fusedrnn's fused attention kernels.

Each class subclasses the Keras layer it replaces, so the constructor and its defaults
(``use_scale``, ``score_mode``, ``dropout``, ``seed``), ``get_config``, the weights (``scale``:
shape () for ``Attention``, (dim,) for ``AdditiveAttention``), ``compute_mask`` and the call
signature (``inputs=[query, value(, key)]``, ``mask=[query_mask, value_mask]``,
``return_attention_scores``, ``training``, ``use_causal_mask``) are Keras's own. Only ``call``
is replaced: when the configuration and the backend allow it, the scores, the masked softmax
and the weighted sum run as one fused op forward (``fusedrnn.ops.dot_attention_forward`` /
``additive_attention_forward``) and one fused op backward; otherwise Keras's own ``call`` runs.

``layer.fused`` (read-only) says which path runs; ``layer.fused_reason`` says why not (None when
fused). A configuration is fused when all of these hold:

* the Keras backend is TensorFlow and TensorFlow sees no GPU (as for the recurrent layers of
  :mod:`fusedrnn.keras.recurrent`; GPU tensors always go to Keras's own implementation);
* ``score_mode="dot"`` (``Attention``; ``"concat"`` runs Keras's implementation);
* ``dropout == 0`` (the kernels have no attention dropout).

The results equal Keras's, including the cases where the kernels' own convention differs:
a batch that holds a query row with no allowed key (fully masked) is computed by Keras's own
implementation inside the same graph (see :mod:`fusedrnn.keras._tf_attention`); queries, values
or keys with a zero-sized static axis also run Keras's implementation. Under a ``mixed_*``
precision policy the kernels compute in float32 and the results are cast to the compute dtype.
Non-finite inputs raise an error naming the argument (Keras would return NaN).
"""

from __future__ import annotations

from typing import Any, Optional

import keras

from fusedrnn.keras._backends import backend_reason, on_gpu as _on_gpu

__all__ = ["AdditiveAttention", "Attention"]


class _FusedAttentionMixin:
    """The fused ``call`` shared by the two layers (mixed in before the Keras class)."""

    #: the fusedrnn attention form: "dot" or "additive"
    fused_kind: str = ""

    def _finish_init(self) -> None:
        if self.fused:
            # tf.numpy_function cannot be compiled by XLA: model.fit's jit_compile="auto" checks this.
            self.supports_jit = False

    @property
    def fused_reason(self) -> Optional[str]:
        """Why the layer runs Keras's own implementation instead of the fused kernels; None when fused."""
        reason = backend_reason(["tensorflow"])
        if reason:
            return reason
        if self.fused_kind == "dot" and self.score_mode != "dot":
            return f"score_mode={self.score_mode!r}: the fused kernels compute score_mode='dot'"
        if self.dropout != 0:
            return f"dropout={self.dropout}: the fused kernels have no attention dropout"
        return None

    @property
    def fused(self) -> bool:
        """True when the layer runs on fusedrnn's fused attention kernels (read-only)."""
        return self.fused_reason is None

    def _fused_call_possible(self, inputs: Any, mask: Any) -> bool:
        if not self.fused or any(_on_gpu(t) for t in inputs):
            return False
        if any(len(t.shape) != 3 or 0 in t.shape for t in inputs):
            return False   # other ranks, or a zero-sized static axis: Keras's implementation
        return not mask or all(m is None or len(m.shape) == 2 for m in mask[:2])

    def call(self, inputs, mask=None, training=False, return_attention_scores=False, use_causal_mask=False):
        self._validate_inputs(inputs=inputs, mask=mask)
        if not self._fused_call_possible(inputs, mask):
            return super().call(inputs, mask=mask, training=training, return_attention_scores=return_attention_scores,
                                use_causal_mask=use_causal_mask)
        from fusedrnn.keras import _tf_attention  # imports TensorFlow: only when that backend runs

        def keras_call():
            return super(_FusedAttentionMixin, self).call(inputs, mask=mask, training=training,
                                                          return_attention_scores=True,
                                                          use_causal_mask=use_causal_mask)

        return _tf_attention.call(self, self.fused_kind, inputs, mask, return_attention_scores, use_causal_mask,
                                  keras_call)


@keras.saving.register_keras_serializable(package="fusedrnn")
class Attention(_FusedAttentionMixin, keras.layers.Attention):
    """``keras.layers.Attention`` (same arguments, weights and outputs) on fusedrnn's fused kernels.

    Dot-product (Luong) attention: ``scores = scale * query @ key^T`` (B, Tq, Tv), a softmax over
    the unmasked keys, ``output = weights @ value`` (B, Tq, Dv). Fused for ``score_mode="dot"``
    and ``dropout=0`` (the defaults); see :mod:`fusedrnn.keras.attention` for the rules.
    """

    fused_kind = "dot"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._finish_init()


@keras.saving.register_keras_serializable(package="fusedrnn")
class AdditiveAttention(_FusedAttentionMixin, keras.layers.AdditiveAttention):
    """``keras.layers.AdditiveAttention`` (same arguments, weights and outputs) on fusedrnn's fused kernels.

    Additive (Bahdanau) attention: ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] +
    key[b, j, d])``, then the masked softmax and weighted sum of :class:`Attention`. Fused for
    ``dropout=0`` (the default); see :mod:`fusedrnn.keras.attention` for the rules.
    """

    fused_kind = "additive"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._finish_init()
