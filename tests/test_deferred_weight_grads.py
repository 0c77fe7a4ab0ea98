"""ops.DeferredWeightGrads: backward calls that defer their weight gradients return the same dx
and dh0 (bit for bit) and None for the weights; result() gives the sums of the weight gradients
of all of them, checked against the float64 reference (fusedrnn.reference) summed call by call.

The calls of one collector differ in batch size, length, masks, initial states and dropout masks
(none, one shared mask, one per gate), share the weights, and come from every cell variant, with
dense input or one-hot ids; both kernels of the weight-gradient products run (the panel kernel
and BLAS, through the test hook), on one and two threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import VARIANTS, close_to_scale, float64_copy, make_problem, relu_pattern_agrees
from fusedrnn import _C, ops, reference

TOL = {np.float32: 1e-4, np.float64: 1e-11}
WEIGHTS = ("kernel", "recurrent_kernel", "bias")


def _calls(rng, variant, dtype, one_hot):
    """Three problems on one set of weights: (problem, ids or None) each."""
    I, H = int(rng.integers(3, 40)), int(rng.integers(2, 30))
    calls = []
    for B, T in ((int(rng.integers(1, 9)), 1), (int(rng.integers(1, 6)), int(rng.integers(2, 12))),
                 (int(rng.integers(1, 9)), 1)):
        dropout = (None, "shared", "per_gate")[int(rng.integers(3))]
        p = make_problem(rng, variant, B, T, I, H, dtype, mask="random" if rng.random() < 0.5 else None,
                         dropout=dropout, recurrent_dropout=dropout)
        if calls:
            for name in WEIGHTS:
                p.arrays[name] = calls[0][0].arrays[name]
        ids = None
        if one_hot:
            ids = rng.integers(0, I, (B, T)).astype(np.int32)
            p.arrays["x"] = np.eye(I, dtype=dtype)[ids]  # what the reference multiplies
        calls.append((p, ids))
    return calls


def _forward(problem, ids, impl):
    arrays = dict(problem.arrays)
    if ids is not None and impl is ops:
        arrays["x"] = ids
    return problem.forward(impl, arrays)


@pytest.mark.parametrize("one_hot", [False, True], ids=["dense", "ids"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_deferred_sums_equal_the_reference(variant, dtype, one_hot, weight_grad_kernel, one_or_two_threads, rng,
                                           seed):
    ctx = f"[seed={seed}, kernel={weight_grad_kernel}, threads={one_or_two_threads}]"
    calls = _calls(rng, variant, dtype, one_hot)
    if variant == "rnn_relu" and dtype == np.float32 and not all(relu_pattern_agrees(p) for p, _ in calls):
        pytest.skip(f"{ctx}: a float32 ReLU unit switched unlike float64 (see relu_pattern_agrees)")
    deferred = ops.DeferredWeightGrads()
    sums = None
    for problem, ids in calls:
        incoming = problem.random_incoming(rng)
        _, cache = _forward(problem, ids, ops)
        now = problem.backward(ops, cache, incoming)
        backward = getattr(ops, f"{problem.cell}_backward")
        later = tuple(backward(cache, *incoming, defer_weight_grads=deferred))
        n = len(later) - 3
        assert later[n:] == (None, None, None), f"{ctx}: deferred weight gradients are returned as None"
        for name, a, b in zip(("dx", "dh0", "dc0"), now[:n], later[:n]):
            if a is None:
                assert b is None, f"{ctx}: {name}"
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{ctx}: {name} of a deferred call")
        ref_problem = float64_copy(problem)
        _, ref_cache = ref_problem.forward(reference)
        ref = ref_problem.backward(reference, ref_cache, tuple(g.astype(np.float64) for g in incoming))[n:]
        sums = list(ref) if sums is None else [s + r for s, r in zip(sums, ref)]
    assert len(deferred) == 3
    got = deferred.result()
    for name, a, b in zip(WEIGHTS, got, sums):
        assert a.shape == b.shape and a.dtype == dtype, f"{ctx}: d_{name} {a.shape} {a.dtype}"
        close_to_scale(a, b, f"d_{name} {ctx} {calls[0][0].describe()}", TOL[dtype])
    if variant != "rnn_relu":  # the reference's ReLU layout is the same; one variant suffices
        transposed = deferred.result(gate_major=True)
        np.testing.assert_allclose(transposed[0], got[0].T, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(got[0]).max())
        np.testing.assert_allclose(transposed[1], got[1].T, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(got[1]).max())


def test_a_decoder_step_loop_equals_the_sequence_op(rng, seed, weight_grad_kernel):
    """A GRU run step by step (each step its own forward op, the backward in reverse with the
    gradient of each state handed to the step before) gives, deferred, the weight gradients of
    the same GRU run as one sequence."""
    B, T, I, H = 5, 7, 11, 13
    p = make_problem(rng, "gru_reset_after", B, T, I, H, np.float64)
    a = p.arrays
    d_out = rng.standard_normal((B, T, H))
    _, _, cache = ops.gru_forward(a["x"], a["h0"], a["kernel"], a["recurrent_kernel"], a["bias"])
    whole = ops.gru_backward(cache, d_out, None)
    caches, h = [], a["h0"]
    for t in range(T):
        _, h, c = ops.gru_forward(np.ascontiguousarray(a["x"][:, t:t + 1]), h, a["kernel"], a["recurrent_kernel"],
                                  a["bias"])
        caches.append(c)
    deferred, dh = ops.DeferredWeightGrads(), np.zeros((B, H))
    for t in reversed(range(T)):
        dx, dh, *_ = ops.gru_backward(caches[t], None, dh + d_out[:, t], defer_weight_grads=deferred)
        np.testing.assert_allclose(dx[:, 0], whole[0][:, t], rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}: dx, t={t}")
    np.testing.assert_allclose(dh, whole[1], rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}: dh0")
    for name, got, want in zip(WEIGHTS, deferred.result(), whole[2:]):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=f"seed {seed}: d_{name}")


def _lstm_cache(rng, I=6, H=4, dtype=np.float32):
    p = make_problem(rng, "lstm", 3, 2, I, H, dtype)
    return p.forward(ops)[1], p.random_incoming(rng)


def test_calls_of_another_configuration_are_refused(rng):
    deferred = ops.DeferredWeightGrads()
    cache, incoming = _lstm_cache(rng)
    ops.lstm_backward(cache, *incoming, defer_weight_grads=deferred)
    other, other_incoming = _lstm_cache(rng, H=5)
    with pytest.raises(ValueError, match=r"cannot add its weight gradients.*recurrent_kernel \(4, 16\)"):
        ops.lstm_backward(other, *other_incoming, defer_weight_grads=deferred)
    wide, wide_incoming = _lstm_cache(rng, dtype=np.float64)
    with pytest.raises(ValueError, match="float64.*float32"):
        ops.lstm_backward(wide, *wide_incoming, defer_weight_grads=deferred)
    gru = make_problem(rng, "gru_reset_after", 3, 2, 6, 4, np.float32)
    _, gru_cache = gru.forward(ops)
    with pytest.raises(ValueError, match=r"gru\(reset_after=True\).*lstm"):
        ops.gru_backward(gru_cache, *gru.random_incoming(rng), defer_weight_grads=deferred)
    assert len(deferred) == 1
    assert [g.shape for g in deferred.result()] == [(6, 16), (4, 16), (16,)]
    deferred.clear()
    assert len(deferred) == 0


def test_bad_arguments_are_named(rng):
    cache, incoming = _lstm_cache(rng)
    with pytest.raises(ValueError, match="no backward call deferred"):
        ops.DeferredWeightGrads().result()
    with pytest.raises(TypeError, match="defer_weight_grads: expected a fusedrnn.ops.DeferredWeightGrads"):
        ops.lstm_backward(cache, *incoming, defer_weight_grads=[])
    with pytest.raises(ValueError, match="gate_major: the weight gradients are deferred"):
        ops.lstm_backward(cache, *incoming, gate_major=True, defer_weight_grads=ops.DeferredWeightGrads())
    deferred = ops.DeferredWeightGrads()
    ops.lstm_backward(cache, *incoming, defer_weight_grads=deferred)
    with pytest.raises(TypeError, match="gate_major"):
        deferred.result(gate_major="yes")


def test_the_default_kernel_choice_follows_the_rows():
    """BLAS only from kBlasWeightGradRows rows up (and only where OpenBLAS's kernels are as wide)."""
    assert not _C.weight_grads_on_blas(64)
    _C.set_weight_grads_blas(1)
    try:
        assert _C.weight_grads_on_blas(1)
    finally:
        _C.set_weight_grads_blas(-1)
