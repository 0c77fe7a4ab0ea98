"""Weights packed once and kept (fusedrnn.ops.PackedWeights), the single-step ops and layer.step,
and the small-batch forward pass that projects the inputs of all steps before the time loop.

Every new path is checked against the float64 NumPy reference (fusedrnn.reference) and against
the plain ops, at B = 1..8, T = 1 and longer, with masks, go_backwards and dropout where the path
takes them, in float32 and float64, on one and on two threads. Tolerances: float64 1e-10 of the
array's scale (only rounding differs); float32 against float64 as in test_recurrent_parity
(float32_rtol); float32 paths against each other 2e-6 of the scale (the same equations, the sums
in another order).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import fusedrnn
from _keras_oracle import VARIANTS, close_to_scale, float32_rtol, make_problem
from fusedrnn import ops, reference
from fusedrnn.optimizers import SGD
from fusedrnn import _C
from fusedrnn.weight_versions import latest, version, weights_changed

DTYPES = [np.float32, np.float64]


def rtol_vs_reference(dtype, T):
    return 1e-10 if dtype == np.float64 else float32_rtol(T)


def rtol_same_dtype(dtype):
    return 1e-12 if dtype == np.float64 else 2e-6


def wide(a):
    return None if a is None else a.astype(np.float64)


def packed_for(problem):
    return ops.PackedWeights(problem.cell, **problem.options)


def step_args(problem):
    a = problem.arrays
    states = [a["h0"], a["c0"]] if problem.cell == "lstm" else [a["h0"]]
    return states, (a["kernel"], a["recurrent_kernel"], a["bias"])


def run_step(cell, x_t, states, weights, packed, out=None):
    if cell == "lstm":
        return list(ops.lstm_step(x_t, *states, *weights, packed=packed, out=out))
    fn = ops.gru_step if cell == "gru" else ops.rnn_step
    return [fn(x_t, states[0], *weights, packed=packed, out=out)]


# -- forward over sequences: packed weights, projected inputs --------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("B,T,options", [
    (1, 1, {}),
    (1, 23, {}),
    (3, 17, {"mask": "random", "go_backwards": True}),
    (5, 9, {"mask": "prepad", "recurrent_dropout": "per_gate"}),
    (8, 12, {"dropout": "shared"}),
], ids=["B1T1", "B1T23", "B3-mask-backwards", "B5-prepad-recdrop", "B8-dropout"])
def test_forward_and_backward_against_reference(variant, dtype, B, T, options, one_or_two_threads, rng, seed):
    """The small-batch forward (inputs projected first) and its backward, with and without packed
    weights, against the float64 reference."""
    problem = make_problem(rng, variant, B, T, 7, 21, dtype, **options)
    ref64 = replace(problem, dtype=np.float64, arrays={k: wide(v) for k, v in problem.arrays.items()},
                    dropout_mask=wide(problem.dropout_mask), recurrent_dropout_mask=wide(problem.recurrent_dropout_mask))
    expected, ref_cache = ref64.forward(reference)
    incoming = problem.random_incoming(rng)
    ref_grads = ref64.backward(reference, ref_cache, tuple(g.astype(np.float64) for g in incoming))
    rtol = rtol_vs_reference(dtype, T)
    ctx = f"{problem.describe()} threads={one_or_two_threads} seed={seed}"
    packed = packed_for(problem)
    for extra in ({}, {"packed": packed}):
        got, cache = problem.forward(ops, **extra)
        for name, a, b in zip(["outputs", "h_last", "c_last"], got, expected):
            assert a.dtype == dtype
            close_to_scale(a, b, f"{name} {extra and 'packed'} {ctx}", rtol)
        grads = problem.backward(ops, cache, incoming)
        for k, (a, b) in enumerate(zip(grads, ref_grads)):
            close_to_scale(a, b, f"grad {k} {extra and 'packed'} {ctx}", 10 * rtol)
    assert packed.packs == 1


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after", "gru_reset_before", "rnn_relu"])
def test_packed_forward_with_one_hot_ids(variant, rng, seed):
    """Ids and dense one-hot rows give the same outputs with packed weights; one packed copy each."""
    problem = make_problem(rng, variant, 3, 6, 11, 19, np.float32)
    ids = rng.integers(0, 11, (3, 6)).astype(np.int32)
    one_hot = np.eye(11, dtype=np.float32)[ids]
    packed = packed_for(problem)
    a = dict(problem.arrays)
    a["x"] = one_hot
    dense, _ = problem.forward(ops, arrays=a, packed=packed, keep_cache=False)
    a["x"] = ids
    from_ids, _ = problem.forward(ops, arrays=a, packed=packed, keep_cache=False)
    for d, i in zip(dense, from_ids):
        close_to_scale(i, d, f"{variant} seed={seed}", 2e-6)
    assert packed.packs == 2


# -- single steps ----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("B", [1, 2, 5, 8, 33])
def test_step_equals_forward_of_one_step(variant, dtype, B, one_or_two_threads, rng, seed):
    problem = make_problem(rng, variant, B, 1, 13, 37, dtype)
    states, weights = step_args(problem)
    x_t = np.ascontiguousarray(problem.arrays["x"][:, 0])
    got = run_step(problem.cell, x_t, states, weights, packed_for(problem))
    expected, _ = problem.forward(ops, keep_cache=False)
    ctx = f"{problem.describe()} threads={one_or_two_threads} seed={seed}"
    for name, a, b in zip(["h", "c"], got, expected[1:]):
        assert a.dtype == dtype and a.shape == (B, 37)
        close_to_scale(a, b, f"{name} {ctx}", rtol_same_dtype(dtype))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_steps_in_place_follow_the_sequence(variant, dtype, one_or_two_threads, rng, seed):
    """A decoder's loop: T steps writing into the state arrays themselves equal the forward pass
    over the sequence, and the float64 reference."""
    B, T = 4, 15
    problem = make_problem(rng, variant, B, T, 9, 70, dtype)
    states, weights = step_args(problem)
    states = [s.copy() for s in states]
    packed = packed_for(problem)
    outputs = []
    for t in range(T):
        new = run_step(problem.cell, np.ascontiguousarray(problem.arrays["x"][:, t]), states, weights, packed, out=states)
        assert all(n is s for n, s in zip(new, states))
        outputs.append(states[0].copy())
    expected, _ = problem.forward(ops, keep_cache=False)
    ref, _ = problem.forward(reference, arrays={k: wide(v) for k, v in problem.arrays.items()})
    ctx = f"{problem.describe()} threads={one_or_two_threads} seed={seed}"
    close_to_scale(np.stack(outputs, 1), expected[0], f"outputs vs ops {ctx}", 10 * rtol_same_dtype(dtype))
    close_to_scale(np.stack(outputs, 1), ref[0], f"outputs vs reference {ctx}", rtol_vs_reference(dtype, T))
    for s, e in zip(states, expected[1:]):
        close_to_scale(s, e, f"states {ctx}", 10 * rtol_same_dtype(dtype))
    assert packed.packs == 1


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after", "rnn_tanh"])
def test_step_with_one_hot_ids(variant, rng, seed):
    problem = make_problem(rng, variant, 6, 1, 29, 24, np.float32)
    states, weights = step_args(problem)
    ids = rng.integers(0, 29, 6)
    packed = packed_for(problem)
    from_ids = run_step(problem.cell, ids, states, weights, packed)
    dense = run_step(problem.cell, np.eye(29, dtype=np.float32)[ids], states, weights, packed)
    for a, b in zip(from_ids, dense):
        close_to_scale(a, b, f"{variant} seed={seed}", 2e-6)


# -- layer.step ------------------------------------------------------------------------------------
def _layer(cls, H, I, rng, dtype="float32", **kw):
    layer = cls(H, return_sequences=True, return_state=True, dtype=dtype, **kw)
    layer.build(I)
    layer.set_weights([w + rng.uniform(-0.1, 0.1, w.shape).astype(w.dtype) for w in layer.get_weights()])
    return layer


@pytest.mark.parametrize("cls,kw", [(fusedrnn.LSTM, {}), (fusedrnn.GRU, {}), (fusedrnn.GRU, {"reset_after": False}),
                                    (fusedrnn.SimpleRNN, {"activation": "relu"}),
                                    (fusedrnn.LSTM, {"use_bias": False}), (fusedrnn.GRU, {"use_bias": False}),
                                    (fusedrnn.SimpleRNN, {"use_bias": False})])
def test_layer_step_equals_the_layer_call(cls, kw, one_or_two_threads, rng, seed):
    B, T, I, H = 3, 8, 10, 33
    layer = _layer(cls, H, I, rng, **kw)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    n = 2 if cls is fusedrnn.LSTM else 1
    states = [(0.3 * rng.standard_normal((B, H))).astype(np.float32) for _ in range(n)]
    with fusedrnn.no_grad():
        seq, *final = layer(x, initial_state=states)
    s = [a.copy() for a in states]
    for t in range(T):
        s = layer.step(np.ascontiguousarray(x[:, t]), s)
        close_to_scale(s[0], seq[:, t], f"step {t} seed={seed}", 1e-5)
    for a, b in zip(s, final):
        close_to_scale(a, b, f"final seed={seed}", 1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_layer_steps_match_keras(cell, rng, seed):
    keras = pytest.importorskip("keras")
    B, T, I, H = 2, 12, 6, 20
    cls = {"lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU}[cell]
    layer = _layer(cls, H, I, rng)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    k = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](H, return_sequences=True)
    k.build(x.shape)
    k.set_weights(layer.get_weights())
    expected = np.asarray(k(x))
    states = [np.zeros((B, H), np.float32) for _ in range(2 if cell == "lstm" else 1)]
    for t in range(T):
        states = layer.step(np.ascontiguousarray(x[:, t]), states, out=states)
        close_to_scale(states[0], expected[:, t], f"{cell} step {t} seed={seed}", float32_rtol(T))


# -- invalidation: a packed copy never outlives a change of the weights ------------------------------
def _reference_step(layer, x_t, states):
    with fusedrnn.no_grad():
        _, *new = layer(x_t[:, None], initial_state=states)
    return new


def _assert_step_current(layer, x_t, states, what):
    got = layer.step(x_t, states)
    for a, b in zip(got, _reference_step(layer, x_t, states)):
        close_to_scale(a, b, what, 1e-5)


@pytest.mark.parametrize("cls", [fusedrnn.LSTM, fusedrnn.GRU])
def test_set_weights_optimizer_steps_and_marked_edits_repack(cls, rng, seed):
    B, I, H = 2, 5, 24
    layer = _layer(cls, H, I, rng)
    x_t = rng.standard_normal((B, I)).astype(np.float32)
    states = [(0.3 * rng.standard_normal((B, H))).astype(np.float32) for _ in range(2 if cls is fusedrnn.LSTM else 1)]
    before = layer.step(x_t, states)[0].copy()
    _assert_step_current(layer, x_t, states, f"first seed={seed}")
    packs = layer._step_packed.packs

    layer.set_weights([2 * w for w in layer.get_weights()])
    assert not np.allclose(layer.step(x_t, states)[0], before)
    _assert_step_current(layer, x_t, states, f"after set_weights seed={seed}")
    assert layer._step_packed.packs == packs + 1

    opt = SGD(learning_rate=0.5)
    for _ in range(2):  # two steps: the version grows each time
        previous = layer.step(x_t, states)[0].copy()
        opt.apply(layer.params, [rng.standard_normal(p.shape).astype(p.dtype) for p in layer.params])
        assert not np.allclose(layer.step(x_t, states)[0], previous)
        _assert_step_current(layer, x_t, states, f"after an optimizer step seed={seed}")

    # In place through a view, then the documented route: layer.weights_changed().
    previous = layer.step(x_t, states)[0].copy()
    layer.recurrent_kernel.reshape(-1)[::3] *= -1.5
    layer.kernel[0] += 1.0
    layer.weights_changed()
    assert not np.allclose(layer.step(x_t, states)[0], previous)
    _assert_step_current(layer, x_t, states, f"after an in-place edit seed={seed}")
    # Nothing changed: no repack.
    packs = layer._step_packed.packs
    layer.step(x_t, states)
    assert layer._step_packed.packs == packs


def test_ops_handle_repacks_for_other_arrays_and_new_versions(rng, seed):
    problem = make_problem(rng, "lstm", 2, 4, 5, 16, np.float64)
    packed = packed_for(problem)
    problem.forward(ops, packed=packed, keep_cache=False)
    problem.forward(ops, packed=packed, keep_cache=False)
    assert packed.packs == 1
    a = dict(problem.arrays, kernel=problem.arrays["kernel"].copy())  # equal values, another array
    problem.forward(ops, arrays=a, packed=packed, keep_cache=False)
    assert packed.packs == 2
    a["recurrent_kernel"][:] = rng.uniform(-0.3, 0.3, a["recurrent_kernel"].shape)
    weights_changed(a["recurrent_kernel"])
    got, _ = problem.forward(ops, arrays=a, packed=packed, keep_cache=False)
    assert packed.packs == 3
    expected, _ = problem.forward(ops, arrays=a, keep_cache=False)
    for g, e in zip(got, expected):
        close_to_scale(g, e, f"seed={seed}", 1e-12)


def test_weight_versions_grow_per_array():
    a, b = np.zeros(3), np.zeros(3)
    assert version(a) == 0
    weights_changed(a)
    v = version(a)
    assert v > 0 and version(b) == 0 and latest() == v
    weights_changed(a, b)
    assert version(a) > v and version(b) > v
    assert latest() == max(version(a), version(b))


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after", "rnn_relu"])
def test_step_plan_is_kept_until_a_weight_changes(variant, rng, seed):
    """The compiled step (PackedWeights.step_plan) is made once and reused while no version
    changes; any change makes a new plan (repacking only what changed); other arrays, too."""
    problem = make_problem(rng, variant, 3, 1, 6, 16, np.float32)
    states, weights = step_args(problem)
    x_t = np.ascontiguousarray(problem.arrays["x"][:, 0])
    packed = packed_for(problem)
    first = run_step(problem.cell, x_t, states, weights, packed)
    plan = packed.step_plan(*weights, False)
    run_step(problem.cell, x_t, states, weights, packed)
    assert packed.step_plan(*weights, False) is plan and packed.packs == 1, seed
    weights_changed(np.zeros(2))  # another array: a new plan, the same packed copy
    again = run_step(problem.cell, x_t, states, weights, packed)
    assert packed.step_plan(*weights, False) is not plan and packed.packs == 1, seed
    for a, b in zip(again, first):
        np.testing.assert_array_equal(a, b, err_msg=f"seed={seed}")
    # Another bias array: its values, without repacking.
    bias = (weights[2] + 0.5).astype(np.float32)
    moved = run_step(problem.cell, x_t, states, (weights[0], weights[1], bias), packed)
    expected = problem.forward(ops, arrays=dict(problem.arrays, bias=bias), keep_cache=False)[0]
    close_to_scale(moved[0], expected[0][:, 0], f"another bias, seed={seed}", 2e-6)
    assert packed.packs == 1, seed
    # NaN put into the bias in place is still refused (the bias is checked on every step).
    bias[..., 0] = np.nan
    with pytest.raises(ValueError, match="bias: contains NaN"):
        run_step(problem.cell, x_t, states, (weights[0], weights[1], bias), packed)


def test_step_plan_refuses_bad_calls_itself(rng):
    """The compiled step's own checks (the safety net under the Python checks): an error, never
    a crash or a wrong read, for every kind of bad argument."""
    problem = make_problem(rng, "lstm", 2, 1, 4, 8, np.float32)
    (h, c), (k, r, b) = step_args(problem)
    x = np.ascontiguousarray(problem.arrays["x"][:, 0])
    handle = packed_for(problem).handle(k, r)
    plan = _C.RecurrentStepPlan(handle, k, r, b)
    h_new, c_new = plan(x, h, c, None, None)
    assert h_new.shape == (2, 8) and c_new.shape == (2, 8)
    bad_calls = [
        ((x.astype(np.float64), h, c, None, None), TypeError, "x: wrong dtype"),
        ((x[:, :3].copy(), h, c, None, None), ValueError, "x: wrong shape"),
        ((x[:, ::2], h, c, None, None), ValueError, "x: must be C-contiguous"),
        ((x[:0], h, c, None, None), ValueError, "x: the batch must hold at least one row"),
        (([1.0], h, c, None, None), TypeError, "x: expected a NumPy array"),
        ((x, None, c, None, None), TypeError, "h: expected an array"),
        ((x, h, None, None, None), TypeError, "c: required for the LSTM"),
        ((x, h[:1].copy(), c, None, None), ValueError, "h: wrong shape"),
        ((x, h, c, np.zeros((2, 8), np.float64), None), TypeError, "h_out: wrong dtype"),
        ((x, h, c, None, np.zeros((3, 8), np.float32)), ValueError, "c_out: wrong shape"),
        ((np.full_like(x, np.inf), h, c, None, None), ValueError, "x: contains NaN or inf"),
    ]
    for args, error, message in bad_calls:
        with pytest.raises(error, match=message):
            plan(*args)
    readonly = h.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="h_out: must be writeable"):
        plan(x, h, c, readonly, None)
    # Made for other arrays: refused when made.
    with pytest.raises(ValueError, match="bias: wrong shape"):
        _C.RecurrentStepPlan(handle, k, r, b[:8].copy())
    with pytest.raises(TypeError, match="kernel: wrong dtype"):
        _C.RecurrentStepPlan(handle, k.astype(np.float64), r, b)
    with pytest.raises(TypeError, match="packed: expected the object returned by pack_recurrent_weights"):
        _C.RecurrentStepPlan(None, k, r, b)
    # One-hot weights take int32 ids in range.
    ids_plan = _C.RecurrentStepPlan(packed_for(problem).handle(k, r, True), k, r, b)
    ids_plan(np.array([0, 3], np.int32), h, c, None, None)
    with pytest.raises(ValueError, match="x: id out of range"):
        ids_plan(np.array([0, 4], np.int32), h, c, None, None)
    with pytest.raises(TypeError, match="x: wrong dtype"):
        ids_plan(np.array([0, 1], np.int64), h, c, None, None)


# -- errors ------------------------------------------------------------------------------------------
def test_non_finite_weights_are_refused_when_packing(rng):
    problem = make_problem(rng, "gru_reset_after", 2, 3, 4, 8, np.float32)
    packed = packed_for(problem)
    a = dict(problem.arrays)
    a["kernel"] = a["kernel"].copy()
    a["kernel"][1, 2] = np.nan
    with pytest.raises(ValueError, match="kernel: contains NaN"):
        problem.forward(ops, arrays=a, packed=packed)
    states, weights = step_args(problem)
    r = weights[1].copy()
    r[0, 0] = np.inf
    with pytest.raises(ValueError, match="recurrent_kernel: contains NaN or inf"):
        ops.gru_step(problem.arrays["x"][:, 0].copy(), states[0], weights[0], r, weights[2], packed=packed)


def test_step_argument_errors(rng):
    problem = make_problem(rng, "lstm", 2, 1, 4, 8, np.float32)
    (h, c), (k, r, b) = step_args(problem)
    x = np.ascontiguousarray(problem.arrays["x"][:, 0])
    packed = packed_for(problem)
    with pytest.raises(TypeError, match="packed: expected a fusedrnn.ops.PackedWeights"):
        ops.lstm_step(x, h, c, k, r, b, packed=None)
    with pytest.raises(ValueError, match="packed: made for"):
        ops.gru_step(x, h, k[:, :24].copy(), r[:, :24].copy(), np.zeros((2, 24), np.float32), packed=packed)
    with pytest.raises(ValueError, match="packed: made for"):
        problem.forward(ops, packed=ops.PackedWeights("gru"))
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        ops.lstm_step(x.astype(np.float64), h, c, k, r, b, packed=packed)
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 4\)"):
        ops.lstm_step(x[:, :3].copy(), h, c, k, r, b, packed=packed)
    with pytest.raises(ValueError, match=r"h: expected shape \(2, 8\)"):
        ops.lstm_step(x, h[:1].copy(), c, k, r, b, packed=packed)
    with pytest.raises(ValueError, match="x: contains NaN"):
        ops.lstm_step(np.full_like(x, np.nan), h, c, k, r, b, packed=packed)
    with pytest.raises(ValueError, match="c: contains NaN"):
        ops.lstm_step(x, h, np.full_like(c, np.inf), k, r, b, packed=packed)
    with pytest.raises(ValueError, match=r"out\[1\]: expected shape"):
        ops.lstm_step(x, h, c, k, r, b, packed=packed, out=[h.copy(), np.zeros((3, 8), np.float32)])
    readonly = h.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match=r"out\[0\]: must be writeable"):
        ops.lstm_step(x, h, c, k, r, b, packed=packed, out=[readonly, c.copy()])
    with pytest.raises(ValueError, match="out: expected 2 array"):
        ops.lstm_step(x, h, c, k, r, b, packed=packed, out=[h.copy()])
    with pytest.raises(ValueError, match="ids must lie in"):
        ops.lstm_step(np.array([0, 9]), h, c, k, r, b, packed=packed)
    with pytest.raises(ValueError, match="cell: expected"):
        ops.PackedWeights("lstm2")
    layer = fusedrnn.LSTM(8)
    layer.build(4)
    with pytest.raises(ValueError, match=r"states: expected 2 array\(s\)"):
        layer.step(x, [h])


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_before"])
def test_small_steps_on_one_thread_give_the_same_results(variant, rng, seed):
    """With the kernels' default rule, small unit-split steps run on one thread (the tests turn
    the rule off elsewhere): the results do not change."""
    from fusedrnn import _C

    problem = make_problem(rng, variant, 2, 9, 5, 40, np.float64, mask="random")
    before, threads = _C.get_min_parallel_step_macs(), fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(2)
    try:
        results = []
        for threshold in (0, 1 << 30):
            _C.set_min_parallel_step_macs(threshold)
            results.append(problem.forward(ops, keep_cache=False)[0])
            states, weights = step_args(problem)
            results[-1] += tuple(run_step(problem.cell, np.ascontiguousarray(problem.arrays["x"][:, 0]), states,
                                          weights, packed_for(problem)))
    finally:
        _C.set_min_parallel_step_macs(before)
        fusedrnn.set_num_threads(threads)
    for a, b in zip(*results):
        close_to_scale(a, b, f"{variant} seed={seed}", 1e-12)
