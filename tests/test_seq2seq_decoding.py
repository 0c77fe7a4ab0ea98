"""Decoding one sentence (greedy_decode, beam_search) on kept caches: the encoder's packed
weights and the projections' weights checked once per version.

The decoders must give exactly what a straightforward decode gives (the algorithm written out
below: every step through ``decode_step`` and ``logits``, a float64 log-softmax row by row, a
full stable sort of every candidate), also after the weights change through set_weights (even
of the same arrays), an optimizer step or an in-place edit announced with weights_changed, and
must still refuse NaN or inf in the weights and in the data.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn import no_grad, ops
from fusedrnn.optimizers import Adam
from fusedrnn.tasks.seq2seq import AttentionSeq2Seq, _best_flat, beam_search, greedy_decode, masked_sequence_loss
from fusedrnn.weight_versions import weights_changed

START, END = 1, 2


def _model(rng, dtype="float32"):
    Vs, Vt = int(rng.integers(6, 12)), int(rng.integers(8, 40))
    E, U = int(rng.integers(2, 7)), int(rng.integers(3, 9))
    model = AttentionSeq2Seq(Vs, Vt, embedding_dim=E, units=U, seed=int(rng.integers(1 << 30)), dtype=dtype)
    for layer in model.layers:  # larger weights than the initialisers: decisive, varied outputs
        layer.set_weights([rng.uniform(-1.5, 1.5, w.shape).astype(w.dtype) for w in layer.get_weights()])
    sources = [rng.integers(1, Vs, (1, int(rng.integers(1, 7)))) for _ in range(3)]
    return model, sources


def _log_softmax_row(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def _reference_beam(model, source, end_id, max_length, beam, length_penalty=1.0):
    """Beam search written out plainly (beam=1: greedy decoding); returns (ids, score, attention)."""
    enc_out, states, keys, mask = model.encode(source)
    live = [(0.0, [], [])]
    finished = []
    for step in range(max_length):
        k = len(live)
        tokens = np.array([ids[-1] if ids else START for _, ids, _ in live])
        states, w, _, _ = model.decode_step(tokens, states, np.repeat(enc_out, k, 0), np.repeat(keys, k, 0),
                                            np.repeat(mask, k, 0))
        logp = np.stack([_log_softmax_row(row) for row in model.logits(states)])
        totals = np.array([total for total, _, _ in live])[:, None] + logp
        order = np.argsort(-totals, axis=None, kind="stable")[:beam]
        new_live, rows = [], []
        for f in order:
            i, tok = divmod(int(f), logp.shape[1])
            hyp = (float(totals[i, tok]), live[i][1] + [tok], live[i][2] + [w[i]])
            if tok == end_id or step == max_length - 1:
                finished.append((hyp[0] / len(hyp[1]) ** length_penalty, hyp))
            else:
                new_live.append(hyp)
                rows.append(i)
        if len(finished) >= beam or not new_live:
            break
        live, states = new_live, states[rows]
    _, (total, ids, att) = max(finished, key=lambda f: f[0])
    return ids, total / len(ids), np.stack(att)


def _decode_both(model, source, end_id, max_length, beam):
    greedy = greedy_decode(model, source, START, end_id, max_length)
    wide = beam_search(model, source, START, end_id, max_length, beam=beam)
    return [(r.ids, r.score, r.attention) for r in (greedy, wide)]


def _assert_same(got, want, msg):
    for (ids, score, att), (ids_w, score_w, att_w) in zip(got, want):
        assert ids == ids_w, msg
        assert score == score_w, msg
        np.testing.assert_array_equal(att, att_w, err_msg=msg)


def _fresh_copy(model):
    """A new model (no packed or checked weights yet) with copies of the model's weights."""
    fresh = AttentionSeq2Seq.from_config(model.get_config())
    for new, old in zip(fresh.layers, model.layers):
        new.set_weights(old.get_weights())
    return fresh


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decoders_equal_the_plain_decode_bit_for_bit(rng, seed, dtype):
    model, sources = _model(rng, dtype)
    for source in sources:
        for end_id in (END, -1):  # -1: never produced, every hypothesis runs to max_length
            beam = int(rng.integers(2, 6))
            got = _decode_both(model, source, end_id, 6, beam)
            with no_grad():
                want = [_reference_beam(model, source, end_id, 6, 1), _reference_beam(model, source, end_id, 6, beam)]
            _assert_same(got, want, f"seed {seed}, end {end_id}, beam {beam}")


def test_decoders_equal_the_training_path(rng, seed):
    """The plain decode with gradients on runs the training path (the GRU op packing its weights
    per call, every weight checked on every call): the same words, scores to rounding."""
    model, sources = _model(rng, "float64")
    for source in sources:
        got = _decode_both(model, source, -1, 5, 3)
        want = [_reference_beam(model, source, -1, 5, 1), _reference_beam(model, source, -1, 5, 3)]
        for (ids, score, att), (ids_w, score_w, att_w) in zip(got, want):
            assert ids == ids_w, f"seed {seed}"
            assert score == pytest.approx(score_w, rel=1e-12, abs=1e-12), f"seed {seed}"
            np.testing.assert_allclose(att, att_w, rtol=1e-10, atol=1e-12, err_msg=f"seed {seed}")


def test_encoder_packs_once_and_weights_are_checked_once_across_sentences(rng, seed):
    model, sources = _model(rng)
    for source in sources * 2:
        _decode_both(model, source, END, 5, 3)
    assert model.encoder._step_packed.packs == 1, f"seed {seed}"
    assert model.decoder._step_packed.packs == 1, f"seed {seed}"
    assert model._checked["output"].checks == 2, f"seed {seed}: output kernel and bias, once each"
    assert model._checked["query"].checks == 1 and model._checked["keys"].checks == 1, f"seed {seed}"


def test_decoding_follows_every_kind_of_weight_change(rng, seed):
    model, sources = _model(rng)
    source = sources[0]

    def check(what):
        got = _decode_both(model, source, -1, 5, 3)
        _assert_same(got, _decode_both(_fresh_copy(model), source, -1, 5, 3), f"after {what}, seed {seed}")
        return got

    before = check("the first decode")
    # set_weights with new arrays, on every layer
    for layer in model.layers:
        layer.set_weights([w + rng.uniform(-1, 1, w.shape).astype(w.dtype) for w in layer.get_weights()])
    after = check("set_weights")
    assert [r[0] for r in after] != [r[0] for r in before] or not np.allclose(after[1][2], before[1][2]), \
        f"seed {seed}: the new weights changed nothing"
    # set_weights of the same arrays again, edited in place in between
    for layer in (model.encoder, model.output, model.attention):
        ws = layer.get_weights()
        layer.set_weights(ws)
        assert layer.params[0] is ws[0], "set_weights copied: this case needs it to bind the arrays given"
        _decode_both(model, source, -1, 5, 3)
        for w in ws:
            w *= -1.25
        layer.set_weights(ws)
        check(f"set_weights of the same arrays of {layer.name}")
    # an optimizer step
    src = np.concatenate([np.pad(s, ((0, 0), (0, 6 - s.shape[1]))) for s in sources])
    target = rng.integers(3, model.target_vocab, (len(sources), 4))
    logits = model((src, target[:, :-1]), training=True)
    _, d_logits = masked_sequence_loss(target[:, 1:], logits)
    model.backward(d_logits)
    Adam(learning_rate=0.5).apply(model.params, model.grads)
    check("an optimizer step")
    # an in-place edit announced with weights_changed
    model.encoder.recurrent_kernel *= -1
    model.output.kernel[:, :3] += 2.0
    weights_changed(model.encoder.recurrent_kernel, model.output.kernel)
    check("an in-place edit and weights_changed")


@pytest.mark.parametrize("layer_name", ["encoder", "output", "attention"])
def test_nan_in_the_weights_is_refused_after_decoding(rng, seed, layer_name):
    model, sources = _model(rng)
    greedy_decode(model, sources[0], START, END, 4)
    beam_search(model, sources[0], START, END, 4, beam=2)
    layer = getattr(model, layer_name)
    kernel = layer.params[0]  # encoder kernel, output kernel, attention W1
    saved = kernel.copy()
    kernel[-1, -1] = np.inf  # an in-place edit, caught once announced
    weights_changed(kernel)
    for decode in (greedy_decode, beam_search):
        with pytest.raises(ValueError, match="contains NaN or inf"):
            decode(model, sources[1], START, END, 4)
    kernel[...] = saved
    weights_changed(kernel)
    greedy_decode(model, sources[1], START, END, 4)
    if layer_name != "attention":  # (BahdanauAttention.set_weights refuses NaN itself)
        ws = layer.get_weights()
        ws[0][0, 0] = np.nan
        layer.set_weights(ws)
        for decode in (greedy_decode, beam_search):
            with pytest.raises(ValueError, match="contains NaN or inf"):
                decode(model, sources[1], START, END, 4)


def test_data_is_still_checked_on_every_step(rng, seed):
    model, sources = _model(rng)
    greedy_decode(model, sources[0], START, END, 4)  # caches filled
    with no_grad():
        enc_out, hidden, keys, mask = model.encode(sources[0])
        bad = hidden.copy()
        bad[0, -1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            model.decode_step(np.array([START]), bad, enc_out, keys, mask)
        with pytest.raises(ValueError, match="x: contains NaN"):
            model.logits(bad)
    with pytest.raises(ValueError, match="source: ids must lie"):
        greedy_decode(model, np.array([[1, model.source_vocab]]), START, END, 4)


def test_best_flat_equals_a_full_stable_sort(rng, seed):
    for _ in range(50):
        k, v, n = int(rng.integers(1, 5)), int(rng.integers(1, 30)), int(rng.integers(1, 8))
        totals = rng.integers(-3, 3, (k, v)).astype(np.float64)  # many ties
        if rng.random() < 0.5:
            totals += rng.standard_normal((k, v))
        want = np.argsort(-totals, axis=None, kind="stable")[:n]
        np.testing.assert_array_equal(_best_flat(totals, n), want, err_msg=f"seed {seed}, {totals}")


def _round_to_bfloat16(a):
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("beam", [1, 3])
def test_bfloat16_decoding_equals_float32_on_rounded_gru_weights(rng, seed, beam):
    """decoding_precision='bfloat16' rounds exactly the two GRUs' kernels and the per-word query
    (W1) and output kernels (not biases, not W2): the same decode as float32 on a copy whose
    kernels are rounded beforehand and whose two projections run on float32 packed kernels (the
    same sums in the same order)."""
    model, sources = _model(rng)
    rounded = AttentionSeq2Seq(model.source_vocab, model.target_vocab, model.embedding_dim, model.units)
    for ours, theirs in zip(model.layers, rounded.layers):
        theirs.set_weights(ours.get_weights())
    for gru in (rounded.encoder, rounded.decoder):
        kernel, recurrent, bias = gru.get_weights()
        gru.set_weights([_round_to_bfloat16(kernel), _round_to_bfloat16(recurrent), bias])
    W1, *others = rounded.attention.get_weights()  # [W1, W2, v, b]
    rounded.attention.set_weights([_round_to_bfloat16(W1), *others])
    kernel, bias = rounded.output.get_weights()
    rounded.output.set_weights([_round_to_bfloat16(kernel), bias])
    float32_packed = {"query": ops.PackedDense(), "output": ops.PackedDense()}
    rounded._inference_packed = float32_packed.get  # the float32 packed kernel, in float32 decoding
    model.decoding_precision = "bfloat16"
    with no_grad():
        for source in sources:
            if beam == 1:
                a, b = greedy_decode(model, source, START, END, 6), greedy_decode(rounded, source, START, END, 6)
            else:
                a, b = beam_search(model, source, START, END, 6, beam), beam_search(rounded, source, START, END, 6, beam)
            assert a.ids == b.ids, f"seed {seed}"
            np.testing.assert_array_equal(a.attention, b.attention)
    # Back to float32: the model decodes as an untouched copy of itself does.
    model.decoding_precision = "float32"
    copy = AttentionSeq2Seq(model.source_vocab, model.target_vocab, model.embedding_dim, model.units)
    for ours, theirs in zip(model.layers, copy.layers):
        theirs.set_weights(ours.get_weights())
    with no_grad():
        a, b = greedy_decode(model, sources[0], START, END, 6), greedy_decode(copy, sources[0], START, END, 6)
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.attention, b.attention)
