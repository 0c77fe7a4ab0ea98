"""The CPU kernels' own float32 tanh (a rational approximation, csrc/include/fusedrnn/cell_math.h)
against tanh in float64, through a SimpleRNN step whose product is exact: one step from a zero
state with an identity kernel, so that the outputs are tanh(x) of the inputs themselves.

Inputs: random values across the whole range where tanh is not yet +-1 in float (|x| < 9), the
region near 0 on a log scale, and values past the clamp. Bound: 8 ulp of the float32 result
(the approximation's error measured over 4 million points is under 6), outputs never past +-1,
odd symmetry exact.
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
