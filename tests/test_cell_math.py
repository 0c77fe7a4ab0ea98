"""The CPU kernels' own float32 tanh and sigmoid (a rational approximation, and 1 / (1 + exp(-x))
with a polynomial exp: csrc/include/fusedrnn/cell_math.h) against float64, through single recurrent
steps whose products are exact.

tanh: a SimpleRNN step from a zero state with an identity kernel, so that the outputs are tanh(x)
of the inputs themselves. Inputs: random values across the whole range where tanh is not yet +-1
in float (|x| < 9), the region near 0 on a log scale, and values past +-7.9 (where the result is
+-1). Bound: 8 ulp of the float32 result (the approximation's error measured over 4 million points
is under 6), outputs never past +-1, odd symmetry exact.

sigmoid: an LSTM step from h0 = 0 and c0 = 1 whose kernel feeds the inputs, unchanged, to the
forget gate only; the candidate is tanh(0) = 0, so the final cell state is f * 1 + i * 0 =
sigmoid(x). Bound: 4 ulp where the result is a normal float (measured: 2.3), at most 1.2e-38 where
it is not (the kernels flush results below 2^-126 to 0), exactly 0 and 1 far out.
"""

from __future__ import annotations

import numpy as np

from fusedrnn import ops


def tanh_through_a_step(x: np.ndarray) -> np.ndarray:
    """tanh of a (n,) float32 vector, computed by rnn_forward (units = inputs = n, one step)."""
    n = x.size
    kernel = np.eye(n, dtype=np.float32)
    outputs, _, _ = ops.rnn_forward(x.reshape(1, 1, n), None, kernel, np.zeros((n, n), np.float32),
                                    np.zeros(n, np.float32))
    return outputs.reshape(n)


def sigmoid_through_a_step(x: np.ndarray) -> np.ndarray:
    """sigmoid of a (n,) float32 vector: the cell state of one LSTM step (see the module docstring)."""
    n = x.size
    kernel = np.zeros((n, 4 * n), np.float32)
    kernel[:, n:2 * n] = np.eye(n, dtype=np.float32)  # Keras gate order i, f, c, o
    _, _, c_last, _ = ops.lstm_forward(x.reshape(1, 1, n), None, np.ones((1, n), np.float32), kernel,
                                       np.zeros((n, 4 * n), np.float32), np.zeros(4 * n, np.float32))
    return c_last.reshape(n)


def test_float32_sigmoid_is_within_a_few_ulp(rng, seed):
    x = np.concatenate([
        rng.uniform(-20, 20, 3000),
        rng.choice([-1.0, 1.0], 1000) * 10.0 ** rng.uniform(-30, 0, 1000),
        rng.uniform(-90, 90, 1000),
        [0.0, -87.0, -88.0, 88.0, 17.0, -17.0],
    ]).astype(np.float32)
    got = sigmoid_through_a_step(x).astype(np.float64)
    want = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    normal = want >= np.finfo(np.float32).tiny
    ulp = np.abs(got - want)[normal] / np.spacing(want[normal].astype(np.float32)).astype(np.float64)
    worst = int(np.argmax(ulp))
    assert ulp[worst] <= 4, f"[seed={seed}] sigmoid({x[normal][worst]!r}) = {got[normal][worst]!r}, want {want[normal][worst]!r}"
    assert np.all(np.abs(got - want)[~normal] <= np.finfo(np.float32).tiny), f"[seed={seed}] a sigmoid tail"
    assert np.all((got >= 0) & (got <= 1)), f"[seed={seed}] a sigmoid outside [0, 1]"


def test_float32_sigmoid_far_out_is_exactly_0_or_1(rng):
    far = (rng.uniform(100, 1e4, 50) * 10.0 ** rng.integers(0, 34, 50)).astype(np.float32)
    far = np.concatenate([far, np.array([1e6, 1.5e6, 3.4e38], np.float32)])
    np.testing.assert_array_equal(sigmoid_through_a_step(far), 1.0)
    np.testing.assert_array_equal(sigmoid_through_a_step(-far), 0.0)


def test_float32_tanh_is_within_a_few_ulp(rng, seed):
    x = np.concatenate([
        rng.uniform(-9.5, 9.5, 3000),
        rng.choice([-1.0, 1.0], 1000) * 10.0 ** rng.uniform(-30, 0, 1000),
        rng.uniform(-40, 40, 200),
        [0.0, 9.0, -9.0, 8.99999, 0.3, -0.3],
    ]).astype(np.float32)
    got = tanh_through_a_step(x).astype(np.float64)
    want = np.tanh(x.astype(np.float64))
    ulp = np.abs(got - want) / np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    worst = int(np.argmax(ulp))
    assert ulp[worst] <= 8, f"[seed={seed}] tanh({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}"
    assert np.all(np.abs(got) <= 1.0), f"[seed={seed}] a tanh past +-1"
    np.testing.assert_array_equal(tanh_through_a_step(-x), -tanh_through_a_step(x), err_msg=f"seed {seed}")
