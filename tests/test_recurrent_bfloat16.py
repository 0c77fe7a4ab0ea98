"""Weights kept in bfloat16 for inference (``ops.PackedWeights(cell, precision="bfloat16")`` and
``layer.packed_calls(precision="bfloat16")``).

The kernels widen each bfloat16 weight back to float32 exactly and sum in float32 in the same
order as the float32 packed kernel. So a forward pass on bfloat16 weights must equal, bit for bit,
the float32 packed forward pass on the weights rounded to bfloat16 beforehand (rounded here by an
independent NumPy implementation of round-to-nearest-even). That pins the rounding, the paired
panel layout and every tile shape exactly. Against the float64 reference on the unrounded weights,
the outputs must stay within the error bfloat16 rounding explains (a few 1e-3 of the scale); the
test also checks that the error is not zero (the weights really are rounded).
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from _keras_oracle import VARIANTS, close_to_scale, float64_copy, make_problem
from fusedrnn import ops, reference
from fusedrnn.optimizers import SGD


def round_to_bfloat16(a: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), returned as float32."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32)


def rounded_problem(problem):
    arrays = dict(problem.arrays)
    for name in ("kernel", "recurrent_kernel"):
        arrays[name] = round_to_bfloat16(arrays[name])
    return arrays


def inference(problem, packed, arrays=None):
    return problem.forward(ops, arrays, keep_cache=False, packed=packed)[0]


def test_rounding_reference_is_round_to_nearest_even():
    # 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even significand (1); 1 + 3 * 2^-8
    # lies halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6. Just above a tie rounds up.
    # A subnormal keeps its upper bits: bfloat16's spacing there is 2^-133.
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -1.5, -(1 + 2**-8), 3.0e-39], np.float32)
    got = round_to_bfloat16(x)
    assert list(got[:5]) == [1.0, 1 + 2**-6, 1 + 2**-7, -1.5, -1.0]
    assert abs(float(got[5]) - float(x[5])) <= 2.0**-134


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("B,T,I,H,options", [
    (1, 9, 13, 40, {}),                            # B=1: one-row tiles, inputs projected first
    (3, 6, 24, 33, {"mask": "random"}),            # partial groups of units, masked steps
    (7, 5, 9, 70, {"go_backwards": True}),         # tiles of 3-4 rows (the paired AVX2 tile)
    (20, 4, 30, 24, {"mask": "random"}),           # a batch split between threads
    (2, 1, 40, 130, {}),                           # a single step through the forward op
])
def test_forward_equals_float32_on_rounded_weights(variant, B, T, I, H, options, rng, seed, one_or_two_threads):
    problem = make_problem(rng, variant, B, T, I, H, np.float32, **options)
    bf16 = ops.PackedWeights(problem.cell, precision="bfloat16", **problem.options)
    f32 = ops.PackedWeights(problem.cell, **problem.options)
    ours = inference(problem, bf16)
    expected = inference(problem, f32, rounded_problem(problem))
    for name, a, b in zip(["outputs", "h_last", "c_last"], ours, expected):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} [seed={seed}] {problem.describe()}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_error_against_float64_is_that_of_bfloat16_rounding(variant, rng, seed):
    problem = make_problem(rng, variant, 4, 30, 48, 64, np.float32)
    ours = inference(problem, ops.PackedWeights(problem.cell, precision="bfloat16", **problem.options))
    wide = float64_copy(problem)
    exact = wide.forward(reference)[0]
    for name, a, b in zip(["outputs", "h_last", "c_last"], ours, exact):
        close_to_scale(a, b, f"{name} [seed={seed}] {problem.describe()}", 2e-2)
    assert np.max(np.abs(ours[0] - exact[0])) > 1e-5, "bfloat16 weights gave float32's result: not rounded"


@pytest.mark.parametrize("cell,options", [("lstm", {}), ("gru", {"reset_after": True}), ("gru", {"reset_after": False}),
                                          ("rnn", {"activation": "tanh"})])
@pytest.mark.parametrize("B", [1, 3, 12])  # 12 > the batch up to which float32 steps use packed weights
def test_step_ops_equal_float32_on_rounded_weights(cell, options, B, rng):
    I, H = 20, 36
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    kernel = rng.uniform(-0.4, 0.4, (I, G * H)).astype(np.float32)
    recurrent = rng.uniform(-0.3, 0.3, (H, G * H)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, (2, G * H) if options.get("reset_after") else (G * H,)).astype(np.float32)
    x = rng.standard_normal((B, I)).astype(np.float32)
    states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(2 if cell == "lstm" else 1)]
    step = {"lstm": ops.lstm_step, "gru": ops.gru_step, "rnn": ops.rnn_step}[cell]
    forward = {"lstm": ops.lstm_forward, "gru": ops.gru_forward, "rnn": ops.rnn_forward}[cell]
    ours = step(x, *states, kernel, recurrent, bias, packed=ops.PackedWeights(cell, precision="bfloat16", **options))
    ours = list(ours) if cell == "lstm" else [ours]
    # The float32 forward op over one step on packed rounded weights. Up to B=8 it runs the same
    # packed kernel; above, float32 steps multiply with BLAS (another order of the same sums)
    # while bfloat16 weights always take the packed kernel.
    f32 = ops.PackedWeights(cell, **options)
    fwd = forward(x[:, None], *states, round_to_bfloat16(kernel), round_to_bfloat16(recurrent), bias,
                  keep_cache=False, packed=f32, **options)
    for a, b in zip(ours, fwd[1:1 + len(ours)]):
        if B <= 8:
            np.testing.assert_array_equal(a, b)
        else:
            close_to_scale(a, b, "new state", 2e-6)


def test_one_hot_ids_use_the_rounded_recurrent_kernel(rng):
    B, T, V, H = 3, 8, 30, 24
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    kernel = rng.uniform(-0.5, 0.5, (V, 4 * H)).astype(np.float32)
    recurrent = rng.uniform(-0.3, 0.3, (H, 4 * H)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, 4 * H).astype(np.float32)
    ours = ops.lstm_forward(ids, None, None, kernel, recurrent, bias, keep_cache=False,
                            packed=ops.PackedWeights("lstm", precision="bfloat16"))
    # With one-hot ids the kernel's rows are added, not multiplied: only the recurrent kernel is packed.
    expected = ops.lstm_forward(ids, None, None, kernel, round_to_bfloat16(recurrent), bias, keep_cache=False,
                                packed=ops.PackedWeights("lstm"))
    for a, b in zip(ours[:3], expected[:3]):
        np.testing.assert_array_equal(a, b)


def test_layer_packed_calls_in_bfloat16_and_back(rng):
    layer = fusedrnn.LSTM(32, return_sequences=True)
    x = rng.standard_normal((2, 12, 10)).astype(np.float32)
    with fusedrnn.no_grad():
        before = layer(x)
        with layer.packed_calls(precision="bfloat16"):
            low = layer(x)
            h = [np.zeros((2, 32), np.float32), np.zeros((2, 32), np.float32)]
            stepped = layer.step(np.ascontiguousarray(x[:, 0]), h)
        after = layer(x)
    np.testing.assert_array_equal(before, after)  # outside the block: float32 again
    close_to_scale(low, before, "bfloat16 outputs", 2e-2)
    assert not np.array_equal(low, before)
    kernel, recurrent = round_to_bfloat16(layer.kernel), round_to_bfloat16(layer.recurrent_kernel)
    expected = ops.lstm_forward(np.ascontiguousarray(x[:, :1]), None, None, kernel, recurrent, layer.bias, keep_cache=False,
                                packed=ops.PackedWeights("lstm"))
    np.testing.assert_array_equal(stepped[0], expected[1])


def test_training_inside_a_bfloat16_block_stays_float32(rng):
    layer = fusedrnn.GRU(16, return_sequences=True)
    x = rng.standard_normal((3, 5, 6)).astype(np.float32)
    plain = layer(x, training=True)
    with layer.packed_calls(precision="bfloat16"):
        inside = layer(x, training=True)  # keeps a cache for backward: not the packed weights
    np.testing.assert_array_equal(plain, inside)


def test_repacked_after_an_optimizer_step(rng):
    I, H = 8, 12
    kernel = rng.uniform(-0.5, 0.5, (I, 4 * H)).astype(np.float32)
    recurrent = rng.uniform(-0.5, 0.5, (H, 4 * H)).astype(np.float32)
    bias = np.zeros(4 * H, np.float32)
    x = rng.standard_normal((2, 4, I)).astype(np.float32)
    packed = ops.PackedWeights("lstm", precision="bfloat16")
    ops.lstm_forward(x, None, None, kernel, recurrent, bias, keep_cache=False, packed=packed)
    SGD(learning_rate=0.5).apply([kernel], [rng.standard_normal(kernel.shape).astype(np.float32)])
    ours = ops.lstm_forward(x, None, None, kernel, recurrent, bias, keep_cache=False, packed=packed)[0]
    assert packed.packs == 2
    expected = ops.lstm_forward(x, None, None, round_to_bfloat16(kernel), round_to_bfloat16(recurrent), bias,
                                keep_cache=False, packed=ops.PackedWeights("lstm"))[0]
    np.testing.assert_array_equal(ours, expected)


def test_bad_uses_are_refused(rng):
    I, H = 5, 7
    k64 = rng.standard_normal((I, 4 * H))
    r64 = rng.standard_normal((H, 4 * H))
    x = rng.standard_normal((2, 3, I))
    bf16 = ops.PackedWeights("lstm", precision="bfloat16")
    with pytest.raises(TypeError, match="kernel: bfloat16 weights are packed from float32"):
        ops.lstm_forward(x, None, None, k64, r64, np.zeros(4 * H), keep_cache=False, packed=bf16)
    k32, r32, x32 = k64.astype(np.float32), r64.astype(np.float32), x.astype(np.float32)
    b32 = np.zeros(4 * H, np.float32)
    with pytest.raises(ValueError, match="packed: bfloat16 weights are for inference only"):
        ops.lstm_forward(x32, None, None, k32, r32, b32, keep_cache=True, packed=bf16)
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16'"):
        ops.PackedWeights("lstm", precision="float16")
    huge = k32.copy()
    huge[1, 2] = np.float32(3.4e38)  # finite, but rounds to bfloat16's infinity
    with pytest.raises(ValueError, match="beyond bfloat16's range"):
        ops.lstm_forward(x32, None, None, huge, r32, b32, keep_cache=False, packed=bf16)
    layer = fusedrnn.LSTM(4, dtype="float64")
    with fusedrnn.no_grad(), pytest.raises(TypeError, match="kernel: bfloat16 weights are packed from float32"):
        with layer.packed_calls(precision="bfloat16"):
            layer(x)
