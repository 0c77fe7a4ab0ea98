"""Keras 3's ``use_bias``, ``stateful`` (with ``reset_state``) and ``zero_output_for_mask`` on
fusedrnn.SimpleRNN / LSTM / GRU and Bidirectional.

Every Keras comparison copies the weights of a stock Keras 3 layer with the same options and
compares the outputs, the final states and the gradients of

    L = sum(output * d_output) + sum(state_k * d_state_k)

with respect to the input, the initial states (when given) and every weight (``tf.GradientTape``)
with our ``backward``. Tolerance: float32 recurrences over T <= 8 steps, as tests/test_layers.py:
max|ours - keras| <= 1e-5 * max|keras| + 1e-6. The float64 checks take central differences of
the layer's own forward (eps = 1e-6; truncation and rounding errors ~1e-10) and the float64
NumPy reference ops (fusedrnn.reference), to 1e-6 relative.

Masks always have a row whose last step is masked, one whose first step is masked (so the
zeroed last output with go_backwards is exercised) and, with three rows or more, a row masked
entirely.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _finite_differences import central_difference, fd_close

import fusedrnn
from fusedrnn import reference
from fusedrnn.layers.core import Dense
from fusedrnn.layers.wrappers import Bidirectional
from fusedrnn.optimizers import SGD
from fusedrnn.training import Sequential, checkpoint

RTOL32, ATOL32 = 1e-5, 1e-6

#: name -> (our class, Keras class name, cell options)
CELLS = {
    "SimpleRNN": (fusedrnn.SimpleRNN, "SimpleRNN", {}),
    "SimpleRNN_relu": (fusedrnn.SimpleRNN, "SimpleRNN", {"activation": "relu"}),
    "LSTM": (fusedrnn.LSTM, "LSTM", {}),
    "GRU": (fusedrnn.GRU, "GRU", {}),
    "GRU_reset_before": (fusedrnn.GRU, "GRU", {"reset_after": False}),
}


@pytest.fixture(scope="module")
def tfk():
    pytest.importorskip("tensorflow")
    from _keras_oracle import _tf
    return _tf()


def n_states(name):
    return 2 if CELLS[name][0] is fusedrnn.LSTM else 1


def close(ours, theirs, what, seed, rtol=RTOL32, atol=ATOL32):
    theirs = np.asarray(theirs, np.float64)
    ours = np.asarray(ours, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape} (seed {seed})"
    assert np.all(np.isfinite(ours)), f"{what}: not finite (seed {seed})"
    scale = float(np.max(np.abs(theirs), initial=0.0))
    err = float(np.max(np.abs(ours - theirs), initial=0.0))
    assert err <= rtol * scale + atol, f"{what}: max error {err:.3g} vs scale {scale:.3g} (seed {seed})"


def make_mask(rng, B, T):
    """Random (B, T) mask with a row ending masked, one starting masked and one all masked (B >= 3)."""
    mask = rng.random((B, T)) < 0.6
    mask[0, -1] = False
    mask[0, 0] = True
    if B > 1:
        mask[1, 0] = False
        mask[1, -1] = True
    if B > 2:
        mask[2] = False
    return mask


def make_pair(keras, name, H, B, I, rng, **options):
    """A built stock Keras layer (random weights) and our layer with its weights."""
    ours_cls, keras_name, cell_options = CELLS[name]
    extra = {"use_cudnn": False} if keras_name != "SimpleRNN" else {}
    k = getattr(keras.layers, keras_name)(H, **cell_options, **options, **extra)
    k.build((B, None, I))
    k.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in k.get_weights()])
    ours = ours_cls(H, **cell_options, **options)
    ours.set_weights(k.get_weights())
    return k, ours


def keras_call(tf, k, x, mask=None, initial_state=None, d_out=None, d_states=(), training=False):
    """Keras's results (a list: output then states) and the gradients of L with respect to
    [x, *initial_state, *trainable weights] (zeros where Keras reports none)."""
    xt = tf.constant(x)
    st = None if initial_state is None else [tf.constant(s) for s in initial_state]
    with tf.GradientTape() as tape:
        tape.watch(xt)
        for s in st or []:
            tape.watch(s)
        kwargs = {"training": training}
        if mask is not None:
            kwargs["mask"] = tf.constant(mask)
        if st is not None:
            kwargs["initial_state"] = st
        res = k(xt, **kwargs)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        loss = tf.add_n([tf.reduce_sum(r * tf.constant(d)) for r, d in zip(res, [d_out, *d_states])])
    sources = [xt] + (st or []) + [w.value for w in k.trainable_weights]
    grads = tape.gradient(loss, sources)
    grads = [np.zeros(s.shape, np.float32) if g is None else np.asarray(tf.convert_to_tensor(g))
             for g, s in zip(grads, sources)]
    return [np.asarray(r) for r in res], grads


def ours_call(layer, x, mask=None, initial_state=None, d_out=None, d_states=None, training=False):
    """Our results (a list) and gradients [dx, *d_initial_state, *weight grads], as keras_call."""
    res = layer(x, mask=mask, initial_state=initial_state, training=training)
    res = list(res) if isinstance(res, list) else [res]
    back = layer.backward(d_out, d_states) if d_states is not None else layer.backward(d_out)
    back = list(back) if isinstance(back, tuple) else [back]
    return res, back + list(layer.grads)


def compare(ours, theirs, names, ctx, seed):
    assert len(ours) == len(theirs) == len(names), f"{ctx}: {len(ours)} vs {len(theirs)} results (seed {seed})"
    for a, b, what in zip(ours, theirs, names):
        close(a, b, f"{what} {ctx}", seed)


def weight_names(use_bias):
    return ["d_kernel", "d_recurrent_kernel"] + (["d_bias"] if use_bias else [])


# -- use_bias and zero_output_for_mask against Keras ------------------------------------------
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_options_match_keras(tfk, name, use_bias, zero_output_for_mask, return_sequences, rng, seed):
    """Every pair of the options (go_backwards included) meets for every cell."""
    tf, keras = tfk
    go_backwards = use_bias != return_sequences
    B, T, I, H = int(rng.integers(3, 5)), int(rng.integers(2, 8)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
    options = dict(use_bias=use_bias, zero_output_for_mask=zero_output_for_mask, return_sequences=return_sequences,
                   go_backwards=go_backwards, return_state=True)
    k, ours = make_pair(keras, name, H, B, I, rng, **options)
    assert len(ours.get_weights()) == len(k.get_weights()) == (3 if use_bias else 2)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(rng, B, T)
    ns = n_states(name)
    init = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(ns)] if rng.random() < 0.5 else None
    d_out = rng.standard_normal((B, T, H) if return_sequences else (B, H)).astype(np.float32)
    d_states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(ns)]
    ctx = f"{name} {options} x{x.shape} H={H} initial_state={init is not None}"

    res_k, grads_k = keras_call(tf, k, x, mask, init, d_out, d_states)
    res, grads = ours_call(ours, x, mask, init, d_out, d_states)
    compare(res, res_k, ["output", "h", "c"][:1 + ns], ctx, seed)
    init_names = ["dh0", "dc0"][:ns] if init is not None else []
    compare(grads, grads_k, ["dx", *init_names, *weight_names(use_bias)], ctx, seed)
    if zero_output_for_mask:
        step_mask = mask[:, ::-1] if go_backwards else mask
        if return_sequences:
            assert not res[0][~step_mask].any(), f"masked steps must output zeros {ctx} (seed {seed})"
        else:
            assert not res[0][~step_mask[:, -1]].any(), f"a masked last step outputs zeros {ctx} (seed {seed})"


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_dropout_with_options_matches_keras(tfk, name, rng, seed, monkeypatch):
    """training=True with dropout and recurrent_dropout, use_bias=False, zero_output_for_mask and
    a mask: our drawn masks replayed in Keras give the same outputs and gradients."""
    tf, keras = tfk
    B, T, I, H = 4, 6, 5, 3
    options = dict(use_bias=False, zero_output_for_mask=True, return_sequences=True, dropout=0.3,
                   recurrent_dropout=0.4)
    k, ours = make_pair(keras, name, H, B, I, rng, **options)
    ours.rng = np.random.default_rng(seed)
    drawn = {}
    original = ours._dropout_masks

    def recording(*args):
        drawn["masks"] = original(*args)
        return drawn["masks"]

    monkeypatch.setattr(ours, "_dropout_masks", recording)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(rng, B, T)
    d_out = rng.standard_normal((B, T, H)).astype(np.float32)
    res, grads = ours_call(ours, x, mask, d_out=d_out, training=True)
    dmask, rmask = drawn["masks"]

    def as_keras(m):
        return tf.constant(m) if m.ndim == 2 else [tf.constant(g) for g in m]

    monkeypatch.setattr(k.cell, "get_dropout_mask", lambda _: as_keras(dmask))
    monkeypatch.setattr(k.cell, "get_recurrent_dropout_mask", lambda _: as_keras(rmask))
    res_k, grads_k = keras_call(tf, k, x, mask, d_out=d_out, training=True)
    ctx = f"{name} {options}"
    compare(res, res_k, ["output"], ctx, seed)
    compare(grads, grads_k, ["dx", *weight_names(False)], ctx, seed)


# -- stateful against Keras --------------------------------------------------------------------
@pytest.mark.parametrize("name,variant", [("SimpleRNN", "plain"), ("SimpleRNN_relu", "no_bias_zero_output"),
                                          ("LSTM", "plain"), ("LSTM", "no_bias_zero_output"),
                                          ("GRU", "no_bias_zero_output"), ("GRU_reset_before", "plain")])
def test_stateful_matches_keras_over_batches(tfk, name, variant, rng, seed):
    """Batches carry the states over (a fully masked row keeps them), gradients stop at the
    carried states, reset_state() zeros them, an explicit initial_state wins for its call and
    its final states are kept, exactly as a stateful Keras layer does."""
    tf, keras = tfk
    B, I, H = 3, int(rng.integers(1, 5)), int(rng.integers(1, 6))
    go_backwards = bool(rng.random() < 0.5)
    options = dict(stateful=True, return_sequences=True, return_state=True, go_backwards=go_backwards)
    if variant == "no_bias_zero_output":
        options.update(use_bias=False, zero_output_for_mask=True)
    k, ours = make_pair(keras, name, H, B, I, rng, **options)
    ns = n_states(name)
    names = ["output", "h", "c"][:1 + ns]
    grad_names = ["dx", *weight_names(options.get("use_bias", True))]

    def step(what, initial_state=None):
        T = int(rng.integers(1, 7))
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        mask = make_mask(rng, B, T) if rng.random() < 0.7 else None
        d_out = rng.standard_normal((B, T, H)).astype(np.float32)
        d_states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(ns)]
        ctx = f"{name} {options} batch '{what}' x{x.shape} mask={mask is not None}"
        res_k, grads_k = keras_call(tf, k, x, mask, initial_state, d_out, d_states)
        res, grads = ours_call(ours, x, mask, initial_state, d_out, d_states)
        compare(res, res_k, names, ctx, seed)
        init_names = ["dh0", "dc0"][:ns] if initial_state is not None else []
        compare(grads, grads_k, [grad_names[0], *init_names, *grad_names[1:]], ctx, seed)
        compare(ours.states, [np.asarray(v) for v in k.states], ["kept h", "kept c"][:ns], ctx, seed)

    step("first")
    step("second")
    step("third")
    ours.reset_state()
    k.reset_state()
    assert all(not s.any() for s in ours.states)
    step("after reset_state")
    step("explicit initial_state", [rng.standard_normal((B, H)).astype(np.float32) for _ in range(ns)])
    step("after the explicit initial_state")
    ours.reset_states()  # Keras's compatibility alias
    k.reset_states()
    step("after reset_states")


def test_stateful_bidirectional_and_no_bias_match_keras(tfk, rng, seed):
    tf, keras = tfk
    B, I, H = 3, 4, 3
    for name, merge_mode, return_sequences in (("LSTM", "concat", True), ("GRU", "sum", False),
                                               ("SimpleRNN", "mul", True)):
        _, keras_name, _ = CELLS[name]
        extra = {"use_cudnn": False} if keras_name != "SimpleRNN" else {}
        k = keras.layers.Bidirectional(getattr(keras.layers, keras_name)(
            H, use_bias=False, stateful=True, return_sequences=return_sequences, **extra), merge_mode=merge_mode)
        k.build((B, None, I))
        k.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in k.get_weights()])
        ours = Bidirectional(CELLS[name][0](H, use_bias=False, stateful=True, return_sequences=return_sequences),
                             merge_mode=merge_mode)
        ours.set_weights(k.get_weights())
        assert len(ours.get_weights()) == 4 and len(ours.params) == 4 and ours.stateful
        for batch in range(4):
            if batch == 2:
                ours.reset_state()
                k.reset_state()
            T = int(rng.integers(1, 7))
            x = rng.standard_normal((B, T, I)).astype(np.float32)
            mask = make_mask(rng, B, T)
            width = 2 * H if merge_mode == "concat" else H
            d_out = rng.standard_normal((B, T, width) if return_sequences else (B, width)).astype(np.float32)
            res_k, grads_k = keras_call(tf, k, x, mask, d_out=d_out)
            ctx = f"Bidirectional({name}) {merge_mode} return_sequences={return_sequences} batch {batch}"
            close(ours(x, mask=mask), res_k[0], f"output {ctx}", seed)
            close(ours.backward(d_out), grads_k[0], f"dx {ctx}", seed)
            compare(ours.grads, grads_k[1:], ["fw_kernel", "fw_recurrent", "bw_kernel", "bw_recurrent"], ctx, seed)
            compare(ours.states, [np.asarray(v) for v in k.states], ["kept"] * len(k.states), ctx, seed)


def test_bidirectional_forces_zero_output_for_mask_like_keras(tfk):
    _, keras = tfk
    for return_sequences in (True, False):
        for given in (True, False):
            k = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=return_sequences,
                                                            zero_output_for_mask=given))
            ours = Bidirectional(fusedrnn.GRU(2, return_sequences=return_sequences, zero_output_for_mask=given))
            for side in ("forward_layer", "backward_layer"):
                assert getattr(ours, side).zero_output_for_mask == getattr(k, side).zero_output_for_mask \
                    == return_sequences


# -- float64: hand-computed values, the reference ops and finite differences ------------------
def test_hand_computed_simple_rnn_without_bias_stateful_zero_output():
    """One unit, kernel 0.5, recurrent kernel 0.5, no bias: h_t = tanh(0.5 x_t + 0.5 h_{t-1})."""
    layer = fusedrnn.SimpleRNN(1, use_bias=False, stateful=True, zero_output_for_mask=True,
                               return_sequences=True, dtype="float64")
    layer.set_weights([np.array([[0.5]]), np.array([[0.5]])])
    x = np.array([[[1.0], [2.0], [3.0]]])
    mask = np.array([[True, False, True]])
    h1 = np.tanh(0.5)
    h3 = np.tanh(1.5 + 0.5 * h1)
    np.testing.assert_allclose(layer(x, mask=mask)[0, :, 0], [h1, 0.0, h3], rtol=1e-14)
    np.testing.assert_allclose(layer.states[0], [[h3]], rtol=1e-14)
    h4 = np.tanh(-0.5 + 0.5 * h3)
    np.testing.assert_allclose(layer(-x[:, :1])[0, :, 0], [h4], rtol=1e-14)  # carries h3 over
    layer.reset_state()
    np.testing.assert_allclose(layer(-x[:, :1])[0, :, 0], [np.tanh(-0.5)], rtol=1e-14)
    layer.reset_state([np.array([[2.0]])])
    np.testing.assert_allclose(layer(-x[:, :1])[0, :, 0], [np.tanh(-0.5 + 1.0)], rtol=1e-14)


def reference_outputs(name, layer, x, mask, init):
    """The float64 reference ops with a zero bias for use_bias=False, and zeros at masked steps."""
    cell = {fusedrnn.SimpleRNN: "rnn", fusedrnn.LSTM: "lstm", fusedrnn.GRU: "gru"}[CELLS[name][0]]
    kernel, recurrent = layer.get_weights()[:2]
    bias = np.zeros(layer._bias_shape()) if not layer.use_bias else layer.get_weights()[2]
    options = dict(CELLS[name][2])
    states = [init[0], init[1]] if cell == "lstm" else [init[0]]
    res = getattr(reference, f"{cell}_forward")(x, *states, kernel, recurrent, bias, mask=mask,
                                                go_backwards=layer.go_backwards, **options)
    outputs, finals = res[0], list(res[1:-1])
    step_mask = mask[:, ::-1] if layer.go_backwards else mask
    if layer.zero_output_for_mask:
        outputs = outputs * step_mask[:, :, None]
    return (outputs if layer.return_sequences else outputs[:, -1]), finals


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_float64_reference_and_gradcheck(name, return_sequences, rng, seed):
    """use_bias=False with zero_output_for_mask, a mask and an initial state, in float64: the
    forward equals the reference ops, the backward equals central differences of the forward."""
    B, T, I, H = 3, 4, 2, 2
    go_backwards = bool(rng.random() < 0.5)
    layer = CELLS[name][0](H, use_bias=False, zero_output_for_mask=True, return_sequences=return_sequences,
                           return_state=True, go_backwards=go_backwards, dtype="float64", **CELLS[name][2])
    layer.build(I)
    layer.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    ns = n_states(name)
    x = rng.standard_normal((B, T, I))
    mask = make_mask(rng, B, T)
    init = [0.5 * rng.standard_normal((B, H)) for _ in range(ns)]
    ctx = f"{name} return_sequences={return_sequences} go_backwards={go_backwards}"

    res = layer(x, mask=mask, initial_state=init)
    expected, finals = reference_outputs(name, layer, x, mask, init)
    for a, b, what in zip(res, [expected, *finals], ["output", "h", "c"]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{what} {ctx} (seed {seed})")
    weights = [rng.standard_normal(r.shape) for r in res]

    def f():
        return float(sum(np.sum(r * w) for r, w in zip(layer(x, mask=mask, initial_state=init), weights)))

    f()
    grads = layer.backward(weights[0], weights[1:])
    weight_grads = [g.copy() for g in layer.grads]
    assert len(weight_grads) == len(layer.params) == 2
    for what, analytic, array in zip(["dx", "dh0", "dc0"], grads, [x, *init]):
        fd_close(analytic, central_difference(f, array), f"{what} {ctx}", seed)
    for k, (g, p) in enumerate(zip(weight_grads, layer.params)):
        fd_close(g, central_difference(f, p), f"grads[{k}] {ctx}", seed)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_split_sequence_equals_one_call(name, rng, seed):
    """Without go_backwards, a stateful layer run over x[:, :t] then x[:, t:] gives the outputs
    and final states of one call over x; the second call's gradient is that of a call from the
    carried states as a constant initial_state (truncated back-propagation)."""
    B, T, I, H = 3, 7, 3, 4
    split = int(rng.integers(1, T))
    whole = CELLS[name][0](H, return_sequences=True, return_state=True, dtype="float64", seed=seed)
    whole.build(I)
    whole.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in whole.get_weights()])
    stateful = CELLS[name][0](H, return_sequences=True, return_state=True, stateful=True, dtype="float64")
    stateful.set_weights(whole.get_weights())
    x = rng.standard_normal((B, T, I))
    mask = make_mask(rng, B, T)
    # Masked steps before a call's first valid step output zeros (Keras: the repeated output
    # starts at zero, not at the carried state), so the second part starts with a valid step.
    mask[:, split] = True
    ref = whole(x, mask=mask)
    first = stateful(np.ascontiguousarray(x[:, :split]), mask=np.ascontiguousarray(mask[:, :split]))
    carried = stateful.states
    second = stateful(np.ascontiguousarray(x[:, split:]), mask=np.ascontiguousarray(mask[:, split:]))
    ctx = f"{name} split at {split} (seed {seed})"
    np.testing.assert_allclose(np.concatenate([first[0], second[0]], axis=1), ref[0], rtol=1e-12, atol=1e-14,
                               err_msg=ctx)
    for a, b, c in zip(second[1:], ref[1:], stateful.states):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=ctx)
        np.testing.assert_array_equal(a, c, err_msg=ctx)
    d_out = rng.standard_normal(second[0].shape)
    dx = stateful.backward(d_out)
    assert isinstance(dx, np.ndarray), "no initial-state gradients without an explicit initial_state"
    plain = CELLS[name][0](H, return_sequences=True, dtype="float64")
    plain.set_weights(whole.get_weights())
    plain(np.ascontiguousarray(x[:, split:]), mask=np.ascontiguousarray(mask[:, split:]), initial_state=carried)
    dx_plain = plain.backward(d_out)[0]
    np.testing.assert_allclose(dx, dx_plain, rtol=1e-12, atol=1e-14, err_msg=ctx)
    for a, b in zip(stateful.grads, plain.grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=ctx)


# -- weights, training, config and checkpoints ------------------------------------------------
@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU", "GRU_reset_before"])
def test_no_bias_weights_and_training_step(name, rng, seed):
    layer = CELLS[name][0](3, use_bias=False, seed=seed, **CELLS[name][2])
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    y = layer(x)
    assert layer.bias is None
    assert [w.shape[0] for w in layer.get_weights()] == [5, 3]
    params = layer.params
    assert len(params) == 2 and params[0] is layer.kernel and params[1] is layer.recurrent_kernel
    layer.backward(np.ones_like(y))
    assert [g.shape for g in layer.grads] == [p.shape for p in params]
    before = [p.copy() for p in params]
    SGD(0.1).apply(layer.params, layer.grads)
    assert all(not np.array_equal(a, b) for a, b in zip(before, layer.params)), f"seed {seed}"
    assert not np.array_equal(layer(x), y)
    with_bias = CELLS[name][0](3, **CELLS[name][2])
    with_bias.build(5)
    with_bias.set_weights(layer.get_weights() + [np.zeros_like(with_bias.get_weights()[2])])
    np.testing.assert_allclose(with_bias(x), layer(x), rtol=1e-6, atol=1e-7,
                               err_msg="use_bias=False computes the cell with a zero bias")


def test_config_and_checkpoint_round_trip(tmp_path, rng, seed):
    lstm = fusedrnn.LSTM(4, use_bias=False, stateful=True, zero_output_for_mask=True, return_sequences=True,
                         seed=seed)
    config = lstm.get_config()
    assert (config["use_bias"], config["stateful"], config["zero_output_for_mask"]) == (False, True, True)
    again = fusedrnn.LSTM(**json.loads(json.dumps(config)))
    assert again.get_config() == config
    model = Sequential([lstm, Bidirectional(fusedrnn.GRU(3, use_bias=False, stateful=True)),
                                          Dense(2)])
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    mask = make_mask(rng, 2, 5)
    model(x, mask=mask)
    path = tmp_path / "m.npz"
    checkpoint.save_checkpoint(path, model)
    loaded = checkpoint.load_checkpoint(path).model
    assert loaded.get_config() == model.get_config()
    assert [w.shape for w in loaded.get_weights()] == [w.shape for w in model.get_weights()]
    assert len(loaded.layers[0].get_weights()) == 2 and len(loaded.layers[1].get_weights()) == 4
    for layer in model.layers[:2]:
        layer.reset_state()  # checkpoints keep no states (nor does Keras): compare from zeros
    np.testing.assert_array_equal(loaded(x, mask=mask), model(x, mask=mask))


def test_old_configs_and_checkpoints_load_with_the_old_behaviour(tmp_path, rng, seed):
    """A checkpoint written before these options existed has none of them in its config: it loads
    into layers with use_bias=True, stateful=False and zero_output_for_mask=False."""
    model = Sequential([fusedrnn.GRU(3, return_sequences=True, seed=seed),
                                          Bidirectional(fusedrnn.LSTM(2, seed=seed))])
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y = model(x)
    path = tmp_path / "old.npz"
    checkpoint.save_checkpoint(path, model)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["__header__"].tobytes().decode())
    for spec in header["model"]["layers"]:
        configs = [spec["config"]] if spec["class"] != "Bidirectional" else \
            [spec["config"]["layer"]["config"], spec["config"]["backward_layer"]["config"]]
        for config in configs:
            for key in ("use_bias", "stateful", "zero_output_for_mask"):
                del config[key]
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    loaded = checkpoint.load_checkpoint(path).model
    gru = loaded.layers[0]
    assert (gru.use_bias, gru.stateful, gru.zero_output_for_mask) == (True, False, False)
    np.testing.assert_array_equal(loaded(x), y)


# -- errors ------------------------------------------------------------------------------------
def test_stateful_and_option_errors(rng):
    layer = fusedrnn.LSTM(3, stateful=True)
    assert layer.states is None
    layer.reset_state()  # nothing kept yet: nothing to do
    layer(rng.standard_normal((2, 4, 5)).astype(np.float32))
    with pytest.raises(ValueError, match=r"x: .*stateful.* batch of 2, got a batch of 3"):
        layer(rng.standard_normal((3, 4, 5)).astype(np.float32))
    with pytest.raises(ValueError, match=r"x: .*stateful"):
        layer(rng.standard_normal((3, 4, 5)).astype(np.float32), initial_state=[np.zeros((3, 3), np.float32)] * 2)
    with pytest.raises(ValueError, match=r"states: expected a list of 2"):
        layer.reset_state([np.zeros((2, 3), np.float32)])
    with pytest.raises(ValueError, match=r"states\[1\]: expected shape \(2, 3\)"):
        layer.reset_state([np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(TypeError, match=r"states\[0\]"):
        layer.reset_state([np.zeros((2, 3)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"states\[0\]: contains NaN"):
        layer.reset_state([np.full((2, 3), np.nan, np.float32), np.zeros((2, 3), np.float32)])
    with pytest.raises(TypeError, match=r"states\[0\]"):
        layer.reset_state([[0.0] * 3, np.zeros((2, 3), np.float32)])
    kept = layer.states
    kept[0][:] = 7.0  # a copy: the layer's states are untouched
    assert not np.any(layer.states[0] == 7.0)
    layer.reset_state([np.ones((4, 3), np.float32), np.ones((4, 3), np.float32)])  # sets a new batch size
    assert layer(rng.standard_normal((4, 2, 5)).astype(np.float32)).shape == (4, 3)

    plain = fusedrnn.GRU(3)
    plain(rng.standard_normal((2, 4, 5)).astype(np.float32))
    plain.reset_state()  # as Keras: a no-op on a layer that is not stateful
    assert plain.states is None
    plain(rng.standard_normal((3, 4, 5)).astype(np.float32))  # any batch size
    with pytest.raises(ValueError, match=r"states: .*not stateful"):
        plain.reset_state([np.zeros((3, 3), np.float32)])

    no_bias = fusedrnn.SimpleRNN(2, use_bias=False)
    no_bias.build(3)
    with pytest.raises(ValueError, match=r"weights: expected 2 arrays .*use_bias=False"):
        no_bias.set_weights(no_bias.get_weights() + [np.zeros(2, np.float32)])
    with pytest.raises(ValueError, match=r"weights: expected 3 arrays"):
        fusedrnn.SimpleRNN(2).set_weights(no_bias.get_weights())

    with pytest.raises(AttributeError, match="stateful"):
        Bidirectional(fusedrnn.LSTM(2)).reset_state()
    with pytest.raises(ValueError, match=r"backward_layer: expected stateful=True"):
        Bidirectional(fusedrnn.LSTM(2, stateful=True), backward_layer=fusedrnn.LSTM(2, go_backwards=True))
    wrapper = Bidirectional(fusedrnn.LSTM(2, use_bias=False))
    wrapper.build(3)
    with pytest.raises(ValueError, match=r"weights: expected 4 arrays"):
        wrapper.set_weights(wrapper.get_weights() + [np.zeros(8, np.float32)] * 2)
