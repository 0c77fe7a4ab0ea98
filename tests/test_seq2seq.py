"""The translation model: gradients against TensorFlow, float64 finite differences, decoding.

Tolerances: float64 throughout for the gradient checks, so the comparison with TensorFlow
(which evaluates the same equations with its own kernels) agrees to ~1e-9 relative; we allow
1e-6 of the largest gradient of each weight.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn.tasks.seq2seq import (AttentionSeq2Seq, beam_search, decode_batch_greedy, greedy_decode,
                                    masked_sequence_loss)

START, END = 1, 2


def _problem(rng, dtype="float64"):
    Vs, Vt = int(rng.integers(5, 12)), int(rng.integers(5, 12))
    E, U = int(rng.integers(2, 6)), int(rng.integers(2, 7))
    B, Ts, Tt = int(rng.integers(1, 5)), int(rng.integers(2, 7)), int(rng.integers(2, 6))
    model = AttentionSeq2Seq(Vs, Vt, embedding_dim=E, units=U, seed=int(rng.integers(1 << 30)), dtype=dtype)
    for p in model.params:  # larger weights than the initialisers give: gradients well above rounding
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    lengths = rng.integers(1, Ts + 1, B)
    src = rng.integers(1, Vs, (B, Ts))
    src[np.arange(Ts)[None, :] >= lengths[:, None]] = 0
    tgt = rng.integers(3, Vt, (B, Tt + 1))
    tgt[:, 0] = START
    tl = rng.integers(1, Tt + 1, B)
    tgt[np.arange(Tt + 1)[None, :] > tl[:, None]] = 0
    return model, src, tgt[:, :-1], tgt[:, 1:]


def _tf_loss_and_grads(model, src, tin, tout):
    """The same forward computation written with TensorFlow ops; returns (loss, grads)."""
    import tensorflow as tf

    w = [tf.Variable(p) for p in model.params]
    emb_s, ek, erk, eb, W1, W2, v, emb_t, dk, drk, db, ok, ob = w
    U = model.units

    def gru_step(x, h, k, rk, b):
        xz = tf.matmul(x, k) + b[0]
        hz = tf.matmul(h, rk) + b[1]
        z = tf.sigmoid(xz[:, :U] + hz[:, :U])
        r = tf.sigmoid(xz[:, U:2 * U] + hz[:, U:2 * U])
        hh = tf.tanh(xz[:, 2 * U:] + r * hz[:, 2 * U:])
        return z * h + (1 - z) * hh

    src_mask = tf.constant(src != 0)
    with tf.GradientTape() as tape:
        x = tf.gather(emb_s, src)
        h = tf.zeros((src.shape[0], U), tf.float64)
        outs = []
        for t in range(src.shape[1]):
            h_new = gru_step(x[:, t], h, ek, erk, eb)
            m = src_mask[:, t][:, None]
            h = tf.where(m, h_new, h)
            outs.append(h)
        enc = tf.stack(outs, 1)
        keys = tf.einsum("btd,du->btu", enc, W2)
        states = []
        for t in range(tin.shape[1]):
            q = tf.matmul(h, W1)[:, None, :]
            scores = tf.reduce_sum(v * tf.tanh(q + keys), axis=-1)
            scores = tf.where(src_mask, scores, tf.constant(-1e300, tf.float64))
            a = tf.nn.softmax(scores, axis=-1)
            ctx = tf.reduce_sum(a[:, :, None] * enc, axis=1)
            xin = tf.concat([ctx, tf.gather(emb_t, tin[:, t])], -1)
            h = gru_step(xin, h, dk, drk, db)
            states.append(h)
        logits = tf.einsum("btu,uv->btv", tf.stack(states, 1), ok) + ob
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tout, logits)
        loss = tf.reduce_sum(ce * tf.cast(tout != 0, tf.float64)) / tout.size
    grads = tape.gradient(loss, w)
    return float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]


def test_gradients_match_tensorflow(rng, seed):
    model, src, tin, tout = _problem(rng)
    loss, d_logits = masked_sequence_loss(tout, model((src, tin), training=True))
    model.backward(d_logits)
    tf_loss, tf_grads = _tf_loss_and_grads(model, src, tin, tout)
    assert loss == pytest.approx(tf_loss, rel=1e-10), f"seed {seed}"
    names = [f"{layer.name}[{j}]" for layer in model.layers for j in range(len(layer.params))]
    for name, g, ref in zip(names, model.grads, tf_grads):
        scale = max(np.abs(ref).max(), 1e-12)
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-6 * scale, err_msg=f"{name}, seed {seed}")


def test_gradients_match_finite_differences(rng, seed):
    model, src, tin, tout = _problem(rng)

    def loss():
        return masked_sequence_loss(tout, model((src, tin), training=True))[0]

    _, d = masked_sequence_loss(tout, model((src, tin), training=True))
    model.backward(d)
    grads = [g.copy() for g in model.grads]
    for p, g in zip(model.params, grads):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for k in rng.choice(flat.size, min(3, flat.size), replace=False):
            old = flat[k]
            flat[k] = old + 1e-6
            up = loss()
            flat[k] = old - 1e-6
            down = loss()
            flat[k] = old
            assert (up - down) / 2e-6 == pytest.approx(gflat[k], abs=1e-8, rel=1e-5), f"seed {seed}"


def test_attention_weights_sum_to_one_over_real_tokens(rng, seed):
    model, src, _, _ = _problem(rng, "float32")
    for row in src:
        n = int((row != 0).sum())
        result = greedy_decode(model, row[None, :n + 1 if n < len(row) else n], START, END, 6)
        att = result.attention
        np.testing.assert_allclose(att[:, :n].sum(axis=1), 1.0, rtol=1e-5, err_msg=f"seed {seed}")
        assert np.all(att[:, n:] == 0), f"padding got attention, seed {seed}"


def test_beam_one_equals_greedy_and_batch_greedy(rng, seed):
    model, src, _, _ = _problem(rng, "float32")
    batch = decode_batch_greedy(model, src, START, END, 7)
    for b in range(src.shape[0]):
        greedy = greedy_decode(model, src[b:b + 1], START, END, 7)
        beam = beam_search(model, src[b:b + 1], START, END, 7, beam=1)
        assert beam.ids == greedy.ids, f"seed {seed}"
        assert batch[b] == greedy.ids, f"seed {seed}"


def test_wider_beam_never_scores_worse_than_greedy_in_log_probability(rng, seed):
    model, src, _, _ = _problem(rng, "float64")
    greedy = greedy_decode(model, src[:1], START, END, 6)
    wide = beam_search(model, src[:1], START, END, 6, beam=5, length_penalty=0.0)
    # length_penalty 0 ranks by total log-probability; beam search explores a superset of greedy's path
    assert wide.score * len(wide.ids) >= greedy.score * len(greedy.ids) - 1e-9, f"seed {seed}"


def test_bad_input():
    model = AttentionSeq2Seq(6, 6, embedding_dim=2, units=3)
    with pytest.raises(ValueError, match="source: ids must lie"):
        model.encode(np.array([[1, 9]]))
    with pytest.raises(ValueError, match="source: every sentence needs at least one word"):
        model.encode(np.array([[0, 0]]))
    with pytest.raises(ValueError, match="target_in: expected integer ids"):
        model((np.array([[1, 2]]), np.array([1.0, 2.0])))
    with pytest.raises(ValueError, match="beam: expected a positive integer"):
        beam_search(model, np.array([[1, 2]]), START, END, 3, beam=0)
    with pytest.raises(ValueError, match="target_out: expected shape"):
        masked_sequence_loss(np.zeros((2, 3), int), np.zeros((2, 4, 5)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decoding_step_equals_the_training_step(rng, seed, dtype):
    """Under no_grad the decoder GRU runs as decoder.step on weights it keeps packed; its states
    must be those of the op the training path runs, step after step, and again after the weights
    change (set_weights makes the packed copy stale)."""
    from fusedrnn import no_grad

    model, src, tgt_in, _ = _problem(rng, dtype)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for round_ in range(2):
        enc_out, hidden, keys, mask = model.encode(src)
        h_train = h_decode = hidden
        for t in range(tgt_in.shape[1]):
            h_train, w_train, _, cache = model.decode_step(tgt_in[:, t], h_train, enc_out, keys, mask)
            assert cache is not None
            with no_grad():
                h_decode, w_decode, _, no_cache = model.decode_step(tgt_in[:, t], h_decode, enc_out, keys, mask)
            assert no_cache is None
            np.testing.assert_allclose(h_decode, h_train, rtol=tol, atol=tol, err_msg=f"step {t}, seed {seed}")
            np.testing.assert_allclose(w_decode, w_train, rtol=tol, atol=tol, err_msg=f"step {t}, seed {seed}")
        weights = model.decoder.get_weights()
        model.decoder.set_weights([w + rng.uniform(-0.3, 0.3, w.shape).astype(w.dtype) for w in weights])
