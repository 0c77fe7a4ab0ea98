"""fusedrnn.optimizers against Keras 3's optimizers, state round trips and bad input.

The oracle applies the Keras optimizer (TensorFlow backend) to ``keras.Variable``s with
``apply_gradients`` and the same gradients, and we compare the params after 1 and after 5 steps.

Tolerance: every element-wise operation follows Keras's order and rounding (scalars rounded to
the param dtype as Keras casts them, ``beta^t`` with the scalar ``pow`` that TensorFlow uses), so
without norm clipping the results must be *bit-identical* to Keras, in float32 and float64.
With ``clipnorm``/``global_clipnorm`` the norms are sums whose order differs between NumPy and
TensorFlow (one or two roundings), so there we allow ``|ours - keras| <= tol * (|keras| + 1)``
with tol = 4e-7 in float32 (a few ulp of O(1) weights after 5 steps) and 1e-13 in float64.

In float64, Keras's TF backend would round Adam's betas and SGD's momentum through float32
constants (``tf.cast`` of a Python float) and keep the learning rate in ``floatx``; the oracle
therefore runs with ``floatx='float64'`` and float64 constants, which is what fusedrnn computes.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fusedrnn.optimizers import SGD, Adam, RMSprop

SHAPES = [(7,), (3, 5), (2, 3, 4), (1,), (129, 67)]
STEPS = 5
TOL = {np.float32: 4e-7, np.float64: 1e-13}

CASES = [
    (SGD, {"learning_rate": 0.1}),
    (SGD, {"learning_rate": 0.05, "momentum": 0.9}),
    (SGD, {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
    (SGD, {"learning_rate": 0.1, "momentum": 0.5, "clipnorm": 0.7}),
    (SGD, {"learning_rate": 0.1, "clipvalue": 0.3}),
    (SGD, {"learning_rate": 0.1, "nesterov": True, "global_clipnorm": 1.5}),
    (RMSprop, {}),
    (RMSprop, {"learning_rate": 0.01, "momentum": 0.9}),
    (RMSprop, {"learning_rate": 0.01, "centered": True}),
    (RMSprop, {"learning_rate": 0.02, "rho": 0.5, "momentum": 0.3, "centered": True, "epsilon": 1e-3}),
    (RMSprop, {"learning_rate": 0.01, "clipnorm": 0.4}),
    (RMSprop, {"learning_rate": 0.01, "global_clipnorm": 2.0}),
    (Adam, {}),
    (Adam, {"learning_rate": 0.01, "amsgrad": True}),
    (Adam, {"learning_rate": 0.02, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-4}),
    (Adam, {"learning_rate": 0.01, "clipnorm": 0.5}),
    (Adam, {"learning_rate": 0.01, "global_clipnorm": 1.0}),
    (Adam, {"learning_rate": 0.01, "global_clipnorm": 1e3}),   # norm below the threshold
    (Adam, {"learning_rate": 0.01, "clipvalue": 0.2, "amsgrad": True}),
]


def case_id(case):
    cls, kw = case
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in kw.items())


def random_problem(rng, dtype, steps=STEPS):
    """Params of odd shapes and `steps` gradient lists (varying scale, so clipping and AMSGrad's
    maximum both matter)."""
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * rng.uniform(0.05, 2.0)).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return params, grads


def keras_trajectory(cls, kwargs, params, grads_seq, dtype):
    """Param values after each step of the Keras optimizer of the same name."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    kcls = getattr(keras.optimizers, cls.__name__)
    kw = dict(kwargs)
    old_floatx = keras.config.floatx()
    try:
        if dtype == np.float64:
            keras.config.set_floatx("float64")
            if cls is Adam:  # else tf.cast(python float, float64) rounds them through float32
                kw["beta_1"] = tf.constant(kw.get("beta_1", 0.9), tf.float64)
                kw["beta_2"] = tf.constant(kw.get("beta_2", 0.999), tf.float64)
        opt = kcls(**kw)
        if dtype == np.float64 and cls is SGD and opt.momentum != 0:
            opt.momentum = tf.constant(opt.momentum, tf.float64)
        variables = [keras.Variable(p.copy(), dtype=np.dtype(dtype).name) for p in params]
        out = []
        for grads in grads_seq:
            opt.apply_gradients(zip([tf.constant(g) for g in grads], variables))
            out.append([v.numpy() for v in variables])
        return out
    finally:
        keras.config.set_floatx(old_floatx)


def our_trajectory(cls, kwargs, params, grads_seq):
    opt = cls(**kwargs)
    live = [p.copy() for p in params]
    ids = [id(p) for p in live]
    out = []
    for grads in grads_seq:
        before = [g.copy() for g in grads]
        opt.apply(live, grads)
        assert [id(p) for p in live] == ids
        for g, b in zip(grads, before):
            np.testing.assert_array_equal(g, b)  # grads are read only
        out.append([p.copy() for p in live])
    assert opt.iterations == len(grads_seq)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_keras(case, dtype, rng, seed):
    cls, kwargs = case
    params, grads_seq = random_problem(rng, dtype)
    ours = our_trajectory(cls, kwargs, params, grads_seq)
    ref = keras_trajectory(cls, kwargs, params, grads_seq, dtype)
    tol = TOL[dtype] if ("clipnorm" in kwargs or "global_clipnorm" in kwargs) else 0.0
    for step in (0, STEPS - 1):  # after 1 and after 5 steps
        for i, (a, b) in enumerate(zip(ours[step], ref[step])):
            assert a.dtype == dtype
            if tol == 0.0:
                np.testing.assert_array_equal(a, b, err_msg=f"seed {seed}: {case_id(case)} step {step + 1} param {i}")
                continue
            err = np.max(np.abs(a.astype(np.float64) - b) / (np.abs(b) + 1.0))
            assert err <= tol, f"seed {seed}: {case_id(case)} step {step + 1} param {i}: rel err {err:.3g} > {tol}"
    # the update did something
    assert not np.allclose(ours[-1][0], params[0]), f"seed {seed}"


@pytest.mark.parametrize("case", [c for c in CASES if c[1]], ids=case_id)
def test_state_round_trip_resumes_exactly(case, rng, seed):
    cls, kwargs = case
    params, grads_seq = random_problem(rng, np.float32)
    full = our_trajectory(cls, kwargs, params, grads_seq)[-1]

    first = cls(**kwargs)
    live = [p.copy() for p in params]
    for grads in grads_seq[:2]:
        first.apply(live, grads)
    config = json.loads(json.dumps(first.get_config()))
    state = {k: v.copy() for k, v in first.get_state().items()}
    assert int(state["iterations"]) == 2
    for grads in grads_seq[2:]:  # the original keeps going; its state must not leak into the copy
        first.apply([p.copy() for p in live], grads)

    resumed = cls(**config)
    resumed.set_state(state)
    assert resumed.iterations == 2
    for grads in grads_seq[2:]:
        resumed.apply(live, grads)
    for a, b in zip(live, full):
        np.testing.assert_array_equal(a, b, err_msg=f"seed {seed}")
    after = resumed.get_state()
    assert sorted(after) == sorted(state) and int(after["iterations"]) == STEPS


def test_config_rebuilds_equal_optimizer():
    opt = Adam(learning_rate=0.003, beta_1=0.8, amsgrad=True, clipnorm=1.5)
    cfg = opt.get_config()
    assert cfg == {"learning_rate": 0.003, "beta_1": 0.8, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": True,
                   "clipnorm": 1.5, "clipvalue": None, "global_clipnorm": None}
    assert json.loads(json.dumps(cfg)) == cfg
    assert Adam(**cfg).get_config() == cfg
    assert SGD().get_config()["learning_rate"] == 0.01 and RMSprop().get_config()["rho"] == 0.9
    opt.learning_rate = 0.5
    assert opt.get_config()["learning_rate"] == 0.5


def test_learning_rate_change_takes_effect(rng, seed):
    p = rng.standard_normal((4, 3)).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    opt = SGD(learning_rate=0.1)
    q = p.copy()
    opt.learning_rate = 0.25
    opt.apply([q], [g])
    np.testing.assert_array_equal(q, p - g * np.float32(0.25), err_msg=f"seed {seed}")


def test_mixed_dtypes_and_global_norm(rng, seed):
    """float32 and float64 params in one call; the global norm spans both (each param's sum of
    squares is taken in its own dtype, so the float32 one limits the norm to float32 accuracy)."""
    p32 = rng.standard_normal(5).astype(np.float32)
    p64 = rng.standard_normal(6)
    g32 = (rng.standard_normal(5) * 3).astype(np.float32)
    g64 = rng.standard_normal(6) * 3
    a, b = p32.copy(), p64.copy()
    SGD(learning_rate=0.1, global_clipnorm=1.0).apply([a, b], [g32, g64])
    assert a.dtype == np.float32 and b.dtype == np.float64
    norm = np.sqrt(np.sum(g32.astype(np.float64) ** 2) + np.sum(g64 ** 2))
    assert norm > 1.0
    np.testing.assert_allclose(b, p64 - 0.1 * g64 / norm, rtol=1e-6, err_msg=f"seed {seed}")
    np.testing.assert_allclose(a, p32 - 0.1 * g32 / norm, rtol=1e-6, atol=1e-7, err_msg=f"seed {seed}")


def test_empty_call_is_a_no_op():
    opt = Adam()
    opt.apply([], [])
    assert opt.iterations == 0 and opt.get_state().keys() == {"iterations"}


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, arg", [
    (lambda: SGD(learning_rate=-0.1), "learning_rate"),
    (lambda: SGD(learning_rate=float("nan")), "learning_rate"),
    (lambda: SGD(learning_rate="0.1"), "learning_rate"),
    (lambda: SGD(momentum=-0.5), "momentum"),
    (lambda: SGD(momentum=1.5), "momentum"),
    (lambda: SGD(nesterov=1), "nesterov"),
    (lambda: RMSprop(rho=1.0), "rho"),
    (lambda: RMSprop(rho=-0.1), "rho"),
    (lambda: RMSprop(epsilon=-1e-7), "epsilon"),
    (lambda: RMSprop(centered="yes"), "centered"),
    (lambda: Adam(beta_1=1.0), "beta_1"),
    (lambda: Adam(beta_1=-0.1), "beta_1"),
    (lambda: Adam(beta_2=1.2), "beta_2"),
    (lambda: Adam(amsgrad=None), "amsgrad"),
    (lambda: Adam(clipnorm=-1.0), "clipnorm"),
    (lambda: Adam(clipvalue=0.0), "clipvalue"),
    (lambda: Adam(global_clipnorm=float("inf")), "global_clipnorm"),
    (lambda: Adam(clipnorm=1.0, clipvalue=1.0), "clipnorm"),
])
def test_bad_constructor_arguments(make, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        make()


def test_bad_learning_rate_assignment():
    opt = Adam()
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1e-3
    assert opt.learning_rate == 0.001


def _pair(rng, dtype=np.float32):
    params = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (5,)]]
    grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
    return params, grads


@pytest.mark.parametrize("cls", [SGD, RMSprop, Adam])
def test_bad_apply_arguments(cls, rng):
    params, grads = _pair(rng)
    opt = cls(learning_rate=0.01) if cls is not SGD else SGD(momentum=0.9)
    with pytest.raises(ValueError, match="grads"):
        opt.apply(params, grads[:1])
    with pytest.raises(ValueError, match=r"grads\[1\]"):
        opt.apply(params, [grads[0], grads[1][:4]])
    with pytest.raises(TypeError, match=r"grads\[0\]"):
        opt.apply(params, [grads[0].astype(np.float64), grads[1]])
    with pytest.raises(TypeError, match=r"params\[0\]"):
        opt.apply([params[0].astype(np.int32), params[1]], grads)
    with pytest.raises(TypeError, match="params"):
        opt.apply(params[0], grads[0])
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        opt.apply(params, [grads[0], grads[1].tolist()])
    frozen = params[1].copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[1\]"):
        opt.apply([params[0], frozen], grads)
    assert opt.iterations == 0

    before = [p.copy() for p in params]
    opt.apply(params, grads)
    assert opt.iterations == 1
    # the number, shapes and dtypes are fixed from now on; a bad call changes nothing
    snapshot = [p.copy() for p in params]
    with pytest.raises(ValueError, match="params"):
        opt.apply(params[:1], grads[:1])
    with pytest.raises(ValueError, match=r"params\[1\]"):
        opt.apply([params[0], np.zeros(6, np.float32)], [grads[0], np.ones(6, np.float32)])
    with pytest.raises(TypeError, match=r"params\[0\]"):
        opt.apply([p.astype(np.float64) for p in params], [g.astype(np.float64) for g in grads])
    for a, b in zip(params, snapshot):
        np.testing.assert_array_equal(a, b)
    assert opt.iterations == 1
    assert not np.array_equal(before[0], params[0])


def test_bad_state(rng):
    params, grads = _pair(rng)
    opt = Adam()
    opt.apply(params, grads)
    good = opt.get_state()

    fresh = Adam()
    with pytest.raises(TypeError, match="state"):
        fresh.set_state([("iterations", 1)])
    with pytest.raises(ValueError, match="state"):
        fresh.set_state({k: v for k, v in good.items() if k != "iterations"})
    with pytest.raises(ValueError, match="state"):
        fresh.set_state({**good, "iterations": np.array(-1)})
    with pytest.raises(ValueError, match="state"):
        fresh.set_state({**good, "velocity_hat/0": good["velocity/0"]})   # amsgrad slot, not configured
    with pytest.raises(ValueError, match="state"):
        fresh.set_state({k: v for k, v in good.items() if k != "momentum/1"})
    with pytest.raises(ValueError, match="state"):
        fresh.set_state({**good, "momentum/0": np.zeros((4, 3), np.float32)})
    with pytest.raises(ValueError, match="state"):
        fresh.set_state({"iterations": np.array(3)})   # Adam cannot resume without its moments
    with pytest.raises(ValueError, match="state"):
        opt.set_state({**good, "momentum/0": np.zeros((2, 2), np.float32), "velocity/0": np.zeros((2, 2), np.float32)})
    assert fresh.iterations == 0 and opt.iterations == 1

    # a state for other shapes is rejected when the params come
    other = Adam()
    other.set_state({"iterations": np.array(4), "momentum/0": np.zeros(3, np.float32),
                     "velocity/0": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="params"):
        other.apply(params, grads)
    with pytest.raises(ValueError, match=r"params\[0\]"):
        other.apply(params[:1], grads[:1])


def test_checkpoint_finds_the_optimizers():
    from fusedrnn.training.checkpoint import _optimizer_classes

    assert {"SGD", "RMSprop", "Adam"} <= set(_optimizer_classes())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, 40_000])  # below and above the kernels' threading threshold
def test_fused_kernels_equal_the_numpy_rules_bit_for_bit(rng, seed, dtype, size):
    from fusedrnn import _C
    from fusedrnn.optimizers import adam_update, rmsprop_update

    dt = np.dtype(dtype).type
    p, g, m, v = (rng.standard_normal(size).astype(dtype) for _ in range(4))
    v = np.abs(v)
    scratch = [np.empty(size, dtype), np.empty(size, dtype)]
    ref = [a.copy() for a in (p, m, v)]
    adam_update(ref[0], g, ref[1], ref[2], None, alpha=dt(3e-3), one_minus_beta_1=dt(1 - 0.9),
                one_minus_beta_2=dt(1 - 0.999), epsilon=dt(1e-7), scratch=scratch)
    _C.adam_update(p, g, m, v, dt(3e-3), dt(1 - 0.9), dt(1 - 0.999), dt(1e-7))
    for got, want in zip((p, m, v), ref):
        np.testing.assert_array_equal(got, want, err_msg=f"adam, seed {seed}")
    ref = [p.copy(), v.copy()]
    rmsprop_update(ref[0], g, ref[1], None, None, learning_rate=dt(0.01), rho=dt(0.9), one_minus_rho=dt(1 - 0.9),
                   momentum=dt(0), epsilon=dt(1e-7), scratch=scratch)
    _C.rmsprop_update(p, g, v, dt(0.01), dt(0.9), dt(1 - 0.9), dt(1e-7))
    np.testing.assert_array_equal(p, ref[0], err_msg=f"rmsprop, seed {seed}")
    np.testing.assert_array_equal(v, ref[1], err_msg=f"rmsprop, seed {seed}")
