"""GRU encoder-decoder with Bahdanau attention, trained with teacher forcing (the translation task).

Shapes: B batch, Ts source length, Tt target length, E embedding size, U units, V target
vocabulary. Ids are integer arrays with 0 as padding (post-padded).

Encoder: ``Embedding(Vs, E) → GRU(U, return_sequences, return_state)`` over the source, with
the padding masked (masked steps carry the state, so the final state is that of the last word).

Decoder, for each target step t with state ``h`` (the encoder's final state at t = 0)::

    context, weights = BahdanauAttention(U)(query=h, values=encoder outputs, mask=source != 0)
    x = concat(context, Embedding(Vt, E)(target[:, t]))          (B, U + E)
    h = GRU(U) one step on x from state h                        (B, U)
    logits[:, t] = Dense(Vt)(h)                                  (B, V)

The decoder GRU starts each step from the previous state (the TensorFlow tutorial's decoder
restarts its GRU from zeros at every step and passes the state only as the attention query;
carrying it is the usual formulation and trains at least as well).

What makes a step cheap: the encoder outputs are projected for the attention (``W2 h_j``) once
per batch, not once per step; the output projection ``Dense(Vt)`` runs once over all steps
(one (B*Tt, U) x (U, V) GEMM) after the loop, and so does its gradient; each step is then a
(B, U) x (U, units) query projection, the fused additive-attention kernel and the fused GRU
kernel on a single step.

What makes decoding one sentence cheap (under :func:`fusedrnn.no_grad`, as every decoder here
runs): the encoder and the decoder GRU run on weights packed once and kept from sentence to
sentence (``encoder.packed_calls(keep=True)``, ``decoder.step``), and the projections (W1, W2,
the output Dense) check their weights for NaN and inf once per weight version
(:class:`fusedrnn.ops.CheckedWeights`), not once per word. Both are redone after
``set_weights`` or an optimizer step; after editing weights in place any other way call
:func:`fusedrnn.weight_versions.weights_changed` on them (as for ``layer.step``). With
``model.decoding_precision = "bfloat16"`` both GRUs keep their decoding weights in bfloat16,
and so do the per-word query and output projections (:class:`fusedrnn.ops.PackedDense`): half
the bytes per word (see :class:`fusedrnn.ops.PackedWeights`); training is unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fusedrnn import GRU, no_grad, ops
from fusedrnn.grad_mode import is_grad_enabled
from fusedrnn.layers.attention import BahdanauAttention
from fusedrnn.layers.core import Dense, Embedding
from fusedrnn.losses import sparse_categorical_crossentropy
from fusedrnn.training import register_model


@dataclass
class _StepCache:
    hidden_in: np.ndarray            # (B, U): decoder state entering the step (the query)
    attention: Any                   # ops.AttentionCache
    gru: Any                         # ops.RecurrentCache


@register_model
class AttentionSeq2Seq:
    """Encoder-decoder translation model; see the module docstring for the equations.

    Call ``model((source, target_in), training=...)`` → logits (B, Tt, V) for teacher forcing
    (target_in = the target sentence without its last word); ``backward(d_logits)`` fills
    ``grads`` aligned with ``params``. ``encode``, ``decode_step`` and :func:`greedy_decode` /
    :func:`beam_search` are for inference.
    """

    def __init__(self, source_vocab: int, target_vocab: int, embedding_dim: int = 256, units: int = 1024,
                 seed: Optional[int] = 0, dtype: Any = "float32", name: str = "seq2seq") -> None:
        s = 0 if seed is None else int(seed)
        self.source_vocab, self.target_vocab = int(source_vocab), int(target_vocab)
        self.embedding_dim, self.units, self.seed = int(embedding_dim), int(units), seed
        self.dtype = np.dtype(dtype)
        self.name = name
        self.source_embedding = Embedding(self.source_vocab, self.embedding_dim, seed=s, dtype=dtype,
                                          name="source_embedding")
        self.encoder = GRU(self.units, return_sequences=True, return_state=True, seed=s + 1, dtype=dtype,
                           name="encoder")
        self.attention = BahdanauAttention(self.units, seed=s + 2, dtype=dtype, name="attention")
        self.target_embedding = Embedding(self.target_vocab, self.embedding_dim, seed=s + 3, dtype=dtype,
                                          name="target_embedding")
        self.decoder = GRU(self.units, seed=s + 4, dtype=dtype, name="decoder")
        self.output = Dense(self.target_vocab, seed=s + 5, dtype=dtype, name="output")
        self.encoder.build(self.embedding_dim)
        self.attention.build(self.units, self.units)
        self.decoder.build(self.units + self.embedding_dim)
        self.output.build(self.units)
        self.layers = [self.source_embedding, self.encoder, self.attention, self.target_embedding,
                       self.decoder, self.output]
        self._saved: Optional[Dict[str, Any]] = None
        # weights checked for NaN/inf once per version (the optimizer's steps bump it), not once per
        # call: one per projection, and the decoder GRU's in training (decoding packs them)
        self._checked = {name: ops.CheckedWeights() for name in ("keys", "query", "output", "decoder")}
        # 'float32' or 'bfloat16': the encoder's and decoder GRU's weights while decoding (no_grad),
        # and in bfloat16 the query and output projections' kernels too (kept packed)
        self.decoding_precision = "float32"
        self._packed_bf16 = {"query": ops.PackedDense("bfloat16"), "output": ops.PackedDense("bfloat16")}

    # -- weights and config ----------------------------------------------------------------------
    @property
    def params(self) -> List[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> List[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    def get_weights(self) -> List[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def get_config(self) -> Dict[str, Any]:
        return {"source_vocab": self.source_vocab, "target_vocab": self.target_vocab,
                "embedding_dim": self.embedding_dim, "units": self.units, "seed": self.seed,
                "dtype": self.dtype.name, "name": self.name}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "AttentionSeq2Seq":
        return cls(**config)

    # -- inference building blocks --------------------------------------------------------------
    def _check_ids(self, name: str, ids: Any, vocab: int) -> np.ndarray:
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 2:
            raise ValueError(f"{name}: expected integer ids of shape (batch, time), got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise ValueError(f"{name}: ids must lie in [0, {vocab})")
        return ids

    def _inference_packed(self, projection: str) -> Optional[ops.PackedDense]:
        """The bfloat16 PackedDense of a per-word projection ("query", "output") when decoding in
        bfloat16 under no_grad, else None (float32 decoding multiplies with BLAS: at one row its
        GEMV reads the kernel as fast as the packed kernel does)."""
        if is_grad_enabled() or self.decoding_precision != "bfloat16":
            return None
        return self._packed_bf16[projection]

    def encode(self, source: np.ndarray, training: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(encoder outputs (B, Ts, U), final state (B, U), projected keys (B, Ts, U), mask (B, Ts))."""
        source = self._check_ids("source", source, self.source_vocab)
        mask = source != 0
        if not mask[:, 0].all():
            raise ValueError("source: every sentence needs at least one word (post-padded, no leading padding)")
        emb = self.source_embedding(source, training=training)
        # packed_calls only serves inference calls (no_grad, no dropout); keep: packed once, not per sentence
        with self.encoder.packed_calls(precision=self.decoding_precision, keep=True):
            enc_out, h = self.encoder(emb, mask=mask, training=training)
        keys = ops.dense_forward(enc_out, self.attention.W2, checked=self._checked["keys"])  # once per batch
        return enc_out, h, keys, mask

    def decode_step(self, tokens: np.ndarray, hidden: np.ndarray, enc_out: np.ndarray, keys: np.ndarray,
                    mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[_StepCache]]:
        """One decoder step: (new state (B, U), attention weights (B, Ts), step input x, cache).

        Under :func:`fusedrnn.no_grad` (decoding) the GRU runs as ``decoder.step``, on its weights
        packed once and kept between steps and sentences, and the cache is None; otherwise
        (training) as the op that keeps what the backward pass needs."""
        att = self.attention
        pq = ops.dense_forward(hidden[:, None, :], att.W1, att.b, checked=self._checked["query"],
                               packed=self._inference_packed("query"))
        context, weights, att_cache = ops.additive_attention_forward(pq, enc_out, keys, scale=att.v, value_mask=mask)
        x = np.concatenate([context, self.target_embedding.embeddings[tokens][:, None, :]], axis=-1)
        dec = self.decoder
        if not is_grad_enabled():
            h_new = dec.step(x[:, 0], [hidden], precision=self.decoding_precision)[0]
            return h_new, weights[:, 0], x, None
        _, h_new, gru_cache = ops.gru_forward(x, hidden, dec.kernel, dec.recurrent_kernel, dec.bias,
                                              checked=self._checked["decoder"])
        return h_new, weights[:, 0], x, _StepCache(hidden, att_cache, gru_cache)

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """Output projection of decoder states (..., U) → (..., V)."""
        return ops.dense_forward(np.ascontiguousarray(hidden), self.output.kernel, self.output.bias,
                                 checked=self._checked["output"], packed=self._inference_packed("output"))

    # -- training ---------------------------------------------------------------------------------
    def __call__(self, inputs: Tuple[np.ndarray, np.ndarray], mask: Optional[np.ndarray] = None,
                 training: bool = False) -> np.ndarray:
        """Teacher-forced logits (B, Tt, V) for inputs = (source (B, Ts), target_in (B, Tt))."""
        source, target_in = inputs
        target_in = self._check_ids("target_in", target_in, self.target_vocab)
        enc_out, hidden, keys, src_mask = self.encode(source, training=training)
        if target_in.shape[0] != enc_out.shape[0]:
            raise ValueError(f"target_in: batch size {target_in.shape[0]} does not match the source's {enc_out.shape[0]}")
        self.target_embedding(target_in, training=training)  # registers the ids for its backward
        steps: List[_StepCache] = []
        states = []
        for t in range(target_in.shape[1]):
            hidden, _, _, cache = self.decode_step(target_in[:, t], hidden, enc_out, keys, src_mask)
            steps.append(cache)
            states.append(hidden)
        dec_states = np.stack(states, axis=1)  # (B, Tt, U)
        logits = self.output(dec_states, training=training)
        # (Under no_grad the steps keep no caches: a backward pass then says it has nothing.)
        self._saved = {"enc_out": enc_out, "steps": steps} if is_grad_enabled() else None
        return logits

    def backward(self, d_logits: np.ndarray) -> None:
        """Back-propagates d_logits (B, Tt, V) through the last call; fills every layer's grads."""
        if self._saved is None:
            raise RuntimeError(f"{self.name}: backward() called before the model was called")
        enc_out, steps = self._saved["enc_out"], self._saved["steps"]
        att, dec = self.attention, self.decoder
        d_states = self.output.backward(np.ascontiguousarray(d_logits, dtype=self.dtype))  # (B, Tt, U)
        B, Tt, U = d_states.shape
        E = self.embedding_dim
        dh = np.zeros((B, U), self.dtype)
        d_keys = np.zeros_like(enc_out)
        d_enc = np.zeros_like(enc_out)
        d_target_emb = np.empty((B, Tt, E), self.dtype)
        d_scale = np.zeros_like(att.v)
        # The weight gradients of the per-step GRU and query projection come once, after the loop,
        # from products over the rows of every step (not a product of B rows per step, summed).
        deferred = ops.DeferredWeightGrads()
        queries = np.empty((Tt, B, U), self.dtype)    # the query projection's inputs and gradients
        d_queries = np.empty((Tt, B, U), self.dtype)
        for t in range(Tt - 1, -1, -1):
            cache = steps[t]
            dh += d_states[:, t]
            dx, dh_prev, _, _, _ = ops.gru_backward(cache.gru, None, dh, defer_weight_grads=deferred)
            d_context = np.ascontiguousarray(dx[:, :, :U])  # (B, 1, U)
            d_target_emb[:, t] = dx[:, 0, U:]
            d_pq, d_key, d_value, d_v = ops.additive_attention_backward(cache.attention, d_context)
            d_keys += d_key
            d_enc += d_value
            d_scale += d_v
            d_query, _, _ = ops.dense_backward(cache.hidden_in[:, None, :], att.W1, d_pq, weight_grad=False)
            queries[t] = cache.hidden_in
            d_queries[t] = d_pq[:, 0]
            dh = dh_prev + d_query[:, 0]
        _, dW1, db1 = ops.dense_backward(queries, att.W1, d_queries, with_bias=att.use_bias, input_grad=False)
        d_enc_from_keys, dW2, _ = ops.dense_backward(enc_out, att.W2, d_keys)
        d_enc += d_enc_from_keys
        dec.grads = list(deferred.result())
        att.grads = [dW1, dW2, d_scale] + ([db1] if att.use_bias else [])  # the order of att.params
        self.target_embedding.backward(d_target_emb)
        d_emb = self.encoder.backward(d_enc, [dh])
        self.source_embedding.backward(d_emb)
        self._saved = None


class PairedInputs:
    """(source, target_in) arrays indexable together along the first axis, for ``fit``."""

    def __init__(self, source: np.ndarray, target_in: np.ndarray) -> None:
        if len(source) != len(target_in):
            raise ValueError(f"target_in: expected {len(source)} rows (as many as source), got {len(target_in)}")
        self.source, self.target_in = source, target_in

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, idx: Any) -> Tuple[np.ndarray, np.ndarray]:
        return self.source[idx], self.target_in[idx]


def masked_sequence_loss(target_out: np.ndarray, logits: np.ndarray) -> Tuple[float, np.ndarray]:
    """Cross-entropy of logits (B, T, V) against ids (B, T), padding (id 0) masked out, averaged
    over all B*T positions (padding counting as zero) — the TensorFlow NMT tutorial's loss, and
    Keras's for a 0/1 sample weight. Returns (loss, d_logits)."""
    target_out = np.asarray(target_out)
    if logits.shape[:2] != target_out.shape:
        raise ValueError(f"target_out: expected shape {logits.shape[:2]} (the logits' batch and time), "
                         f"got {target_out.shape}")
    weight = (target_out != 0).astype(logits.dtype)
    return sparse_categorical_crossentropy(target_out, logits, from_logits=True, sample_weight=weight)


# -- decoding -------------------------------------------------------------------------------------
@dataclass
class Translation:
    """A decoded sentence: target ids (without <start>, ending with <end> when reached), the
    attention weights of each output step (len(ids), Ts) and the score (mean log-probability)."""

    ids: List[int]
    attention: np.ndarray
    score: float


@no_grad()
def greedy_decode(model: AttentionSeq2Seq, source: np.ndarray, start_id: int, end_id: int,
                  max_length: int) -> Translation:
    """Arg-max decoding of one source sentence (1, Ts) until <end> or `max_length` words."""
    enc_out, hidden, keys, mask = model.encode(source)
    token = np.array([start_id])
    ids: List[int] = []
    weights: List[np.ndarray] = []
    logp = 0.0
    for _ in range(max_length):
        hidden, w, _, _ = model.decode_step(token, hidden, enc_out, keys, mask)
        scores = _log_softmax(model.logits(hidden))[0]
        nxt = int(np.argmax(scores))
        logp += float(scores[nxt])
        ids.append(nxt)
        weights.append(w[0])
        if nxt == end_id:
            break
        token = np.array([nxt])
    return Translation(ids, np.stack(weights), logp / len(ids))


@no_grad()
def beam_search(model: AttentionSeq2Seq, source: np.ndarray, start_id: int, end_id: int, max_length: int,
                beam: int = 4, length_penalty: float = 1.0) -> Translation:
    """Beam search over one source sentence (1, Ts): keeps the `beam` best partial translations by
    total log-probability; a finished one (ending in <end>, or at `max_length`) is ranked by its
    log-probability divided by ``length ** length_penalty``. With beam=1 it equals greedy decoding."""
    if beam < 1:
        raise ValueError(f"beam: expected a positive integer, got {beam!r}")
    enc_out, hidden, keys, mask = model.encode(source)
    # live hypotheses: (log-probability, ids, attention rows), with their states stacked
    live: List[Tuple[float, List[int], List[np.ndarray]]] = [(0.0, [], [])]
    states = hidden
    finished: List[Tuple[float, Translation]] = []
    repeated: Dict[int, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # k -> the encoder's arrays for k rows
    for step in range(max_length):
        k = len(live)
        if k not in repeated:
            repeated[k] = (np.repeat(enc_out, k, axis=0), np.repeat(keys, k, axis=0), np.repeat(mask, k, axis=0))
        tokens = np.array([h[1][-1] if h[1] else start_id for h in live])
        states, w, _, _ = model.decode_step(tokens, states, *repeated[k])
        logp = _log_softmax(model.logits(states))  # (k, V)
        totals = np.array([h[0] for h in live])[:, None] + logp
        flat = _best_flat(totals, beam)
        new_live, new_rows = [], []
        for f in flat:
            i, tok = divmod(int(f), logp.shape[1])
            score, ids, att = live[i]
            hyp = (float(totals[i, tok]), ids + [tok], att + [w[i]])
            if tok == end_id or step == max_length - 1:
                norm = hyp[0] / (len(hyp[1]) ** length_penalty)
                finished.append((norm, Translation(hyp[1], np.stack(hyp[2]), hyp[0] / len(hyp[1]))))
            else:
                new_live.append(hyp)
                new_rows.append(i)
        if len(finished) >= beam or not new_live:
            break
        live, states = new_live, states[new_rows]  # the survivors, with their decoder states
    best = max(finished, key=lambda f: f[0]) if finished else None
    if best is None:  # pragma: no cover - max_length >= 1 always finishes something
        raise RuntimeError("beam search produced no hypothesis")
    return best[1]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-softmax of each row of z (k, V), in float64."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _best_flat(totals: np.ndarray, n: int) -> np.ndarray:
    """The flat indices of the n largest entries of totals, largest first, ties in index order:
    ``np.argsort(-totals, axis=None, kind="stable")[:n]`` without sorting all k*V entries."""
    flat = totals.ravel()
    if n >= flat.size:
        return np.argsort(-flat, kind="stable")
    threshold = np.partition(flat, flat.size - n)[flat.size - n]  # the n-th largest value
    candidates = np.flatnonzero(flat >= threshold)  # in index order; ties with it included
    return candidates[np.argsort(-flat[candidates], kind="stable")[:n]]


@no_grad()
def decode_batch_greedy(model: AttentionSeq2Seq, source: np.ndarray, start_id: int, end_id: int,
                        max_length: int) -> List[List[int]]:
    """Greedy decoding of a batch of sentences (B, Ts) at once (for BLEU over a split)."""
    enc_out, hidden, keys, mask = model.encode(source)
    B = source.shape[0]
    tokens = np.full(B, start_id)
    out: List[List[int]] = [[] for _ in range(B)]
    done = np.zeros(B, bool)
    for _ in range(max_length):
        hidden, _, _, _ = model.decode_step(tokens, hidden, enc_out, keys, mask)
        tokens = np.argmax(model.logits(hidden), axis=-1)
        for b in np.flatnonzero(~done):
            out[b].append(int(tokens[b]))
        done |= tokens == end_id
        if done.all():
            break
    return out


def sentence_ids(rows: Sequence[Sequence[int]], end_id: int) -> List[List[int]]:
    """Each row cut after its first <end>."""
    cut = []
    for r in rows:
        r = list(r)
        cut.append(r[:r.index(end_id) + 1] if end_id in r else r)
    return cut
