"""Invalid arguments raise ValueError/TypeError naming the argument; never a crash.

The argument name must appear as a whole word in the message (e.g. "kernel"
does not match inside "recurrent_kernel", and "mask" not inside
"dropout_mask").  Where two arguments are inconsistent with each other (e.g.
kernel rows vs x features) naming either is accepted.  ``x`` defines the
dtype and the batch/time/feature sizes, so for a dtype or batch mismatch the
*other* argument must be named.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from _keras_oracle import NUM_GATES, VARIANTS, input_names, make_problem
from fusedrnn import reference


@pytest.fixture(scope="module", params=["ops", "reference"])
def impl(request):
    if request.param == "reference":
        return reference
    from fusedrnn import ops
    return ops


def _word(*names):
    return "|".join(rf"\b{n}\b" for n in names)


def _make(rng, variant, dtype=np.float32, **kw):
    B, T, I, H = 2, 3, 4, 5
    return make_problem(rng, variant, B, T, I, H, dtype, mask="random", **kw)


def _args(problem):
    """Flat dict of every forward argument."""
    args = {n: problem.arrays[n] for n in input_names(problem.cell)}
    args.update(problem.kwargs())
    return args


def _call_forward(impl, cell, args):
    names = input_names(cell)
    fn = getattr(impl, f"{cell}_forward")
    return fn(*[args[n] for n in names], **{k: v for k, v in args.items() if k not in names})


def _with_nan(a, value=np.nan):
    a = a.copy()
    a.flat[a.size // 2] = value
    return a


# --------------------------------------------------------------------------
# Forward: one table of (id, mutation, exception types, name pattern)
# A mutation takes (args dict, G, rng) and modifies args in place.
# --------------------------------------------------------------------------
def _set(name, f):
    def mutate(args, G, rng):
        args[name] = f(args[name], G, rng, args)
    return mutate


def _empty(axis):
    def mutate(args, G, rng):
        args["x"] = np.take(args["x"], [], axis=axis)
        for k in ("h0", "c0", "mask", "dropout_mask", "recurrent_dropout_mask"):
            if k in args:
                args[k] = None
    return mutate


VE = ValueError
BOTH = (ValueError, TypeError)

FORWARD_CASES = [
    # x
    ("x_rank2", _set("x", lambda a, G, r, s: a[0]), BOTH, _word("x")),
    ("x_rank4", _set("x", lambda a, G, r, s: a[..., None]), BOTH, _word("x")),
    ("x_int", _set("x", lambda a, G, r, s: (a * 10).astype(np.int32)), BOTH, _word("x")),
    ("x_float16", _set("x", lambda a, G, r, s: a.astype(np.float16)), BOTH, _word("x")),
    ("x_T0", _empty(1), BOTH, _word("x")),
    ("x_B0", _empty(0), BOTH, _word("x")),
    ("x_nan", _set("x", lambda a, G, r, s: _with_nan(a)), VE, _word("x")),
    ("x_inf", _set("x", lambda a, G, r, s: _with_nan(a, np.inf)), VE, _word("x")),
    ("x_neg_inf", _set("x", lambda a, G, r, s: _with_nan(a, -np.inf)), VE, _word("x")),
    # h0
    ("h0_batch_mismatch", _set("h0", lambda a, G, r, s: np.concatenate([a, a])), BOTH,
     _word("h0")),
    ("h0_units_mismatch", _set("h0", lambda a, G, r, s: np.concatenate([a, a], axis=1)), BOTH,
     _word("h0")),
    ("h0_rank1", _set("h0", lambda a, G, r, s: a[0]), BOTH, _word("h0")),
    ("h0_float64", _set("h0", lambda a, G, r, s: a.astype(np.float64)), BOTH, _word("h0")),
    ("h0_nan", _set("h0", lambda a, G, r, s: _with_nan(a)), VE, _word("h0")),
    # kernel
    ("kernel_rows", _set("kernel", lambda a, G, r, s: np.concatenate([a, a[:1]])), BOTH,
     _word("kernel", "x")),
    ("kernel_cols", _set("kernel", lambda a, G, r, s: np.ascontiguousarray(a[:, :-1])), BOTH,
     _word("kernel", "recurrent_kernel")),
    ("kernel_rank1", _set("kernel", lambda a, G, r, s: a.ravel()), BOTH, _word("kernel")),
    ("kernel_rank3", _set("kernel", lambda a, G, r, s: a[None]), BOTH, _word("kernel")),
    ("kernel_float64", _set("kernel", lambda a, G, r, s: a.astype(np.float64)), BOTH,
     _word("kernel")),
    ("kernel_int", _set("kernel", lambda a, G, r, s: a.astype(np.int64)), BOTH,
     _word("kernel")),
    ("kernel_nan", _set("kernel", lambda a, G, r, s: _with_nan(a)), VE, _word("kernel")),
    ("kernel_inf", _set("kernel", lambda a, G, r, s: _with_nan(a, np.inf)), VE,
     _word("kernel")),
    # recurrent_kernel
    ("recurrent_kernel_rows",
     _set("recurrent_kernel", lambda a, G, r, s: np.concatenate([a, a[:1]])), BOTH,
     _word("recurrent_kernel", "kernel")),
    ("recurrent_kernel_cols",
     _set("recurrent_kernel", lambda a, G, r, s: np.ascontiguousarray(a[:, :-1])),
     BOTH, _word("recurrent_kernel", "kernel")),
    ("recurrent_kernel_rank1", _set("recurrent_kernel", lambda a, G, r, s: a.ravel()), BOTH,
     _word("recurrent_kernel")),
    ("recurrent_kernel_float64",
     _set("recurrent_kernel", lambda a, G, r, s: a.astype(np.float64)), BOTH,
     _word("recurrent_kernel")),
    ("recurrent_kernel_nan", _set("recurrent_kernel", lambda a, G, r, s: _with_nan(a)), VE,
     _word("recurrent_kernel")),
    # bias
    ("bias_length", _set("bias", lambda a, G, r, s: np.concatenate([a, a], axis=-1)), BOTH,
     _word("bias")),
    ("bias_rank0", _set("bias", lambda a, G, r, s: np.array(a.ravel()[0])), BOTH, _word("bias")),
    ("bias_float64", _set("bias", lambda a, G, r, s: a.astype(np.float64)), BOTH,
     _word("bias")),
    ("bias_nan", _set("bias", lambda a, G, r, s: _with_nan(a)), VE, _word("bias")),
    # mask
    ("mask_long", _set("mask", lambda a, G, r, s: np.concatenate([a, a], axis=1)), BOTH,
     _word("mask")),
    ("mask_batch", _set("mask", lambda a, G, r, s: a[:1]), BOTH, _word("mask")),
    ("mask_rank1", _set("mask", lambda a, G, r, s: a[0]), BOTH, _word("mask")),
    ("mask_rank3", _set("mask", lambda a, G, r, s: a[..., None]), BOTH, _word("mask")),
    ("mask_float", _set("mask", lambda a, G, r, s: a.astype(s["x"].dtype)), BOTH,
     _word("mask")),
    ("mask_int", _set("mask", lambda a, G, r, s: a.astype(np.int32)), BOTH, _word("mask")),
    # dropout masks
    ("dropout_mask_features",
     _set("dropout_mask", lambda a, G, r, s: np.ones((2, 5), s["x"].dtype)), BOTH,
     _word("dropout_mask")),
    ("dropout_mask_batch",
     _set("dropout_mask", lambda a, G, r, s: np.ones((3, 4), s["x"].dtype)), BOTH,
     _word("dropout_mask")),
    ("dropout_mask_gates",
     _set("dropout_mask", lambda a, G, r, s: np.ones((G + 1, 2, 4), s["x"].dtype)), BOTH,
     _word("dropout_mask")),
    ("dropout_mask_rank1",
     _set("dropout_mask", lambda a, G, r, s: np.ones((4,), s["x"].dtype)), BOTH,
     _word("dropout_mask")),
    ("dropout_mask_float64",
     _set("dropout_mask", lambda a, G, r, s: np.ones((2, 4), np.float64)), BOTH,
     _word("dropout_mask")),
    ("dropout_mask_nan",
     _set("dropout_mask", lambda a, G, r, s: _with_nan(np.ones((G, 2, 4), s["x"].dtype))), VE,
     _word("dropout_mask")),
    ("recurrent_dropout_mask_units",
     _set("recurrent_dropout_mask", lambda a, G, r, s: np.ones((2, 4), s["x"].dtype)), BOTH,
     _word("recurrent_dropout_mask")),
    ("recurrent_dropout_mask_gates",
     _set("recurrent_dropout_mask", lambda a, G, r, s: np.ones((G + 2, 2, 5), s["x"].dtype)),
     BOTH, _word("recurrent_dropout_mask")),
    ("recurrent_dropout_mask_batch",
     _set("recurrent_dropout_mask", lambda a, G, r, s: np.ones((G, 1, 5), s["x"].dtype)), BOTH,
     _word("recurrent_dropout_mask")),
    ("recurrent_dropout_mask_inf",
     _set("recurrent_dropout_mask",
          lambda a, G, r, s: _with_nan(np.ones((2, 5), s["x"].dtype), np.inf)), VE,
     _word("recurrent_dropout_mask")),
]


@pytest.mark.parametrize("case", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_after", "gru_reset_before"])
def test_forward_rejects(impl, variant, case, rng, seed):
    _, mutate, exc, pattern = case
    problem = _make(rng, variant)
    args = _args(problem)
    mutate(args, NUM_GATES[problem.cell], rng)
    with pytest.raises(exc, match=pattern):
        _call_forward(impl, problem.cell, args)


LSTM_CASES = [
    ("c0_batch_mismatch", _set("c0", lambda a, G, r, s: np.concatenate([a, a])), BOTH),
    ("c0_units_mismatch", _set("c0", lambda a, G, r, s: a[:, :-1].copy()), BOTH),
    ("c0_float64", _set("c0", lambda a, G, r, s: a.astype(np.float64)), BOTH),
    ("c0_int", _set("c0", lambda a, G, r, s: a.astype(np.int32)), BOTH),
    ("c0_nan", _set("c0", lambda a, G, r, s: _with_nan(a)), VE),
]


@pytest.mark.parametrize("case", LSTM_CASES, ids=[c[0] for c in LSTM_CASES])
def test_lstm_rejects_bad_c0(impl, case, rng):
    _, mutate, exc = case
    problem = _make(rng, "lstm")
    args = _args(problem)
    mutate(args, 4, rng)
    with pytest.raises(exc, match=_word("c0")):
        _call_forward(impl, "lstm", args)


def test_float64_x_with_float32_weights(impl, rng):
    """x decides the dtype: a float32 kernel with float64 x names the kernel."""
    problem = _make(rng, "gru_reset_after", dtype=np.float64)
    args = _args(problem)
    args["kernel"] = args["kernel"].astype(np.float32)
    with pytest.raises(BOTH, match=_word("kernel")):
        _call_forward(impl, "gru", args)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_bias_shape_must_match_reset_after(impl, reset_after, rng):
    problem = _make(rng, "gru_reset_after" if reset_after else "gru_reset_before")
    args = _args(problem)
    H = 5
    if reset_after:     # (3H,) given although (2, 3H) is needed
        args["bias"] = np.ascontiguousarray(args["bias"][0])
    else:               # (2, 3H) given although (3H,) is needed
        args["bias"] = np.stack([args["bias"], args["bias"]])
    assert args["bias"].shape == ((3 * H,) if reset_after else (2, 3 * H))
    with pytest.raises(BOTH, match=_word("bias")):
        _call_forward(impl, "gru", args)


@pytest.mark.parametrize("activation", ["sigmoid", "TANH", "", None, 3])
def test_rnn_unknown_activation(impl, activation, rng):
    problem = _make(rng, "rnn_tanh")
    args = _args(problem)
    args["activation"] = activation
    with pytest.raises(BOTH, match=_word("activation")):
        _call_forward(impl, "rnn", args)


# --------------------------------------------------------------------------
# Non-contiguous / non-C-ordered inputs: either correct results (as for a
# contiguous copy) or a ValueError/TypeError naming the argument.
# --------------------------------------------------------------------------
def _strided(axis):
    """A non-contiguous view equal to its argument (every other element of a
    twice-repeated array along ``axis``)."""
    def make(a):
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(None, None, 2)
        return np.repeat(a, 2, axis=axis)[tuple(idx)]
    return make


NONCONTIG = {
    "x_strided_time": ("x", _strided(1)),
    "x_strided_features": ("x", _strided(2)),
    "x_reversed": ("x", lambda a: np.ascontiguousarray(a[:, ::-1])[:, ::-1]),
    "x_fortran": ("x", np.asfortranarray),
    "h0_strided": ("h0", _strided(1)),
    "kernel_fortran": ("kernel", np.asfortranarray),
    "recurrent_kernel_strided": ("recurrent_kernel", _strided(0)),
    "bias_strided": ("bias", _strided(-1)),
    "mask_strided": ("mask", _strided(1)),
    "dropout_mask_strided": ("dropout_mask", _strided(-1)),
}


@pytest.mark.parametrize("case", list(NONCONTIG))
@pytest.mark.parametrize("variant", ["rnn_relu", "lstm", "gru_reset_after"])
def test_non_contiguous_inputs(impl, variant, case, rng, seed):
    name, make_view = NONCONTIG[case]
    problem = _make(rng, variant, dtype=np.float64, dropout="per_gate")
    args = _args(problem)
    view = make_view(args[name])
    np.testing.assert_array_equal(view, args[name])
    assert not view.flags.c_contiguous
    expected = _call_forward(impl, problem.cell, args)[:-1]
    args_view = dict(args, **{name: view})
    try:
        got = _call_forward(impl, problem.cell, args_view)
    except (ValueError, TypeError) as e:
        assert re.search(_word(name), str(e)), f"error does not name {name!r}: {e}"
        return
    incoming = problem.random_incoming(rng)
    want_grads = getattr(impl, f"{problem.cell}_backward")(
        _call_forward(impl, problem.cell, args)[-1], *incoming)
    got_grads = getattr(impl, f"{problem.cell}_backward")(got[-1], *incoming)
    for a, b in zip(list(got[:-1]) + list(got_grads), list(expected) + list(want_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=f"[seed={seed}] {case}")
    np.testing.assert_array_equal(view, args[name])     # input not modified


@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_before"])
def test_non_contiguous_incoming_gradients(impl, variant, rng, seed):
    problem = _make(rng, variant, dtype=np.float64)
    incoming = problem.random_incoming(rng)
    backward = getattr(impl, f"{problem.cell}_backward")
    names = ["d_outputs", "d_h_last", "d_c_last"]
    _, cache = problem.forward(impl)
    expected = backward(cache, *incoming)
    for pos, g in enumerate(incoming):
        args = list(incoming)
        args[pos] = _strided(-1)(g)
        assert not args[pos].flags.c_contiguous
        _, cache = problem.forward(impl)
        try:
            got = backward(cache, *args)
        except (ValueError, TypeError) as e:
            assert re.search(_word(names[pos]), str(e)), f"error does not name {names[pos]}: {e}"
            continue
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13,
                                       err_msg=f"[seed={seed}] {names[pos]} non-contiguous")


# --------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------
def _incoming_cases(cell):
    cases = [
        ("d_outputs", 0, lambda g: np.concatenate([g, g], axis=-1)),
        ("d_outputs", 0, lambda g: np.concatenate([g, g], axis=1)),
        ("d_outputs", 0, lambda g: g[:1]),
        ("d_outputs", 0, lambda g: g[:, 0]),
        ("d_outputs", 0, lambda g: g.astype(np.float64)),
        ("d_h_last", 1, lambda g: np.concatenate([g, g], axis=-1)),
        ("d_h_last", 1, lambda g: g[None]),
        ("d_h_last", 1, lambda g: g[:1]),
    ]
    if cell == "lstm":
        cases += [("d_c_last", 2, lambda g: g[:, :-1].copy()),
                  ("d_c_last", 2, lambda g: g.ravel())]
    return cases


@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_before"])
def test_backward_rejects_bad_incoming_gradients(impl, variant, rng):
    problem = _make(rng, variant)
    incoming = problem.random_incoming(rng)
    backward = getattr(impl, f"{problem.cell}_backward")
    for name, pos, bad in _incoming_cases(problem.cell):
        _, cache = problem.forward(impl)
        args = list(incoming)
        args[pos] = bad(args[pos])
        with pytest.raises(BOTH, match=_word(name)):
            backward(cache, *args)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backward_rejects_bad_cache(impl, variant, rng):
    problem = _make(rng, variant)
    incoming = problem.random_incoming(rng)
    backward = getattr(impl, f"{problem.cell}_backward")
    with pytest.raises(BOTH, match=_word("cache")):
        backward(None, *incoming)
    with pytest.raises(BOTH, match=_word("cache")):
        backward("not a cache", *incoming)
    # a cache from another cell type
    other = make_problem(rng, "lstm" if problem.cell != "lstm" else "rnn_tanh", 2, 3, 4, 5,
                         np.float32)
    _, other_cache = other.forward(impl)
    with pytest.raises(BOTH, match=_word("cache")):
        backward(other_cache, *incoming)
