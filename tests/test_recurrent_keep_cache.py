"""Forward passes without a cache (``keep_cache=False``, for inference).

Such a pass keeps two time slots of saved state instead of T, so every path that reads the
step before (h_{t-1}, the LSTM's c_{t-1}, the GRU's r * h_{t-1}) reads a recycled slot. The
outputs must equal those of the training forward bit for bit: same kernel, same arithmetic.
Cases cover every cell, masks (carried-over states), go_backwards (slots used in reverse
order), dropout masks, one-hot ids, float32 and float64, one and two threads, and both ways the
threads share a step (batch split, and a unit split with a barrier per step: B < 8, or weights
larger than the L2 budget). Outputs are poisoned with NaN before the kernel writes them
(conftest), so an unwritten element fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import DROPOUT_KINDS, MASK_KINDS, VARIANTS, make_problem
from fusedrnn import ops

# (B, T, I, H): T=1 (unpacked weights), T=2 (exactly the two slots), odd sizes, batch split
# (B=16), unit split by batch size (B=3) and by weight size (H=320: 1.7 MB of packed LSTM weights).
SHAPES = [(2, 1, 3, 4), (3, 2, 5, 7), (16, 9, 6, 20), (3, 11, 4, 70), (9, 5, 16, 320)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_without_cache_gives_the_same_outputs(variant, shape, dtype, one_or_two_threads, rng, seed):
    mask = MASK_KINDS[int(rng.integers(len(MASK_KINDS)))]
    dropout = DROPOUT_KINDS[int(rng.integers(len(DROPOUT_KINDS)))]
    problem = make_problem(rng, variant, *shape, dtype, mask=mask, go_backwards=bool(rng.integers(2)),
                           dropout=dropout, recurrent_dropout=dropout)
    trained, cache = problem.forward(ops)
    inferred, none = problem.forward(ops, keep_cache=False)
    ctx = f"[seed={seed}] {problem.describe()} mask={mask} dropout={dropout} threads={one_or_two_threads}"
    assert cache is not None and none is None, ctx
    for name, a, b in zip(["outputs", "h_last", "c_last"], trained, inferred):
        assert np.all(np.isfinite(b)), f"{name} has unwritten (NaN) elements. {ctx}"
        np.testing.assert_array_equal(b, a, err_msg=f"{name} {ctx}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_one_hot_forward_without_cache(cell, rng):
    B, T, V, H = 5, 7, 11, 9
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    kernel = rng.uniform(-1, 1, (V, G * H)).astype(np.float32)
    recurrent = (rng.uniform(-1, 1, (H, G * H)) / np.sqrt(H)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, (2, G * H) if cell == "gru" else (G * H,)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    forward = getattr(ops, f"{cell}_forward")
    args = (ids, h0) + ((rng.standard_normal((B, H)).astype(np.float32),) if cell == "lstm" else ()) + (
        kernel, recurrent, bias)
    trained = forward(*args)
    inferred = forward(*args, keep_cache=False)
    assert inferred[-1] is None
    for a, b in zip(trained[:-1], inferred[:-1]):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backward_refuses_the_missing_cache(variant, rng):
    problem = make_problem(rng, variant, 2, 3, 4, 5, np.float32)
    _, none = problem.forward(ops, keep_cache=False)
    with pytest.raises(ValueError, match="cache: None.*keep_cache=False"):
        problem.backward(ops, none, problem.random_incoming(rng))


@pytest.mark.parametrize("bad", [None, 1, "no", np.array([True])])
def test_keep_cache_must_be_a_bool(bad, rng):
    problem = make_problem(rng, "lstm", 2, 3, 4, 5, np.float32)
    with pytest.raises(TypeError, match="keep_cache"):
        problem.forward(ops, keep_cache=bad)
