"""Central finite differences (float64) of every op against its backward.

Loss: L = sum(outputs * R1) + sum(h_last * R2) (+ sum(c_last * R3)) with random
R's, so the analytic gradient is ``*_backward(cache, R1, R2[, R3])``.

For each differentiable input (x, h0, c0, kernel, recurrent_kernel, bias) a
random subset of coordinates is perturbed by +-eps.  The central difference
has truncation error O(eps^2 * |L'''|) ~ 1e-12 and rounding error
~ 1e-16 * |L| / eps ~ 1e-10 for eps = 1e-6, so we require
|fd - analytic| <= 1e-6 * max|analytic| + 1e-8 per input (a wrong term in a
gradient is typically off by > 1e-2 relative).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import VARIANTS, input_names, make_problem
from fusedrnn import reference

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8
N_COORDS = 5          # coordinates checked per input


@pytest.fixture(scope="module", params=["ops", "reference"])
def impl(request):
    if request.param == "reference":
        return reference
    from fusedrnn import ops
    return ops


OPTION_SETS = {
    "plain": dict(),
    "mask_backwards": dict(mask="random", go_backwards=True),
    "prepad_no_state": dict(mask="prepad", initial_state=False),
    "dropout": dict(mask="postpad", dropout="per_gate", recurrent_dropout="shared"),
    "dropout_backwards": dict(go_backwards=True, dropout="shared",
                              recurrent_dropout="per_gate"),
}


@pytest.mark.parametrize("options", list(OPTION_SETS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradcheck(impl, variant, options, rng, seed):
    problem = make_problem(rng, variant, 3, 5, 4, 3, np.float64, **OPTION_SETS[options])
    incoming = problem.random_incoming(rng)
    fwd, cache = problem.forward(impl)
    analytic = problem.backward(impl, cache, incoming)

    # a None initial state is differentiated at zeros
    base = dict(problem.arrays)
    for k in ("h0", "c0"):
        if k in base and base[k] is None:
            base[k] = np.zeros_like(fwd[1])

    def loss(arrays):
        out, _ = problem.forward(impl, arrays)
        return sum(float(np.sum(o * r)) for o, r in zip(out, incoming))

    ctx = f"[seed={seed}] {options}: {problem.describe()}"
    assert np.isfinite(loss(base)), ctx
    for name, grad in zip(input_names(problem.cell), analytic):
        value = base[name]
        assert grad.shape == value.shape, f"d{name} shape {grad.shape} != {value.shape}. {ctx}"
        flat = rng.choice(value.size, size=min(N_COORDS, value.size), replace=False)
        tol = RTOL * np.max(np.abs(grad)) + ATOL
        for f in flat:
            idx = np.unravel_index(f, value.shape)
            plus = dict(base)
            plus[name] = value.copy()
            plus[name][idx] += EPS
            minus = dict(base)
            minus[name] = value.copy()
            minus[name][idx] -= EPS
            fd = (loss(plus) - loss(minus)) / (2 * EPS)
            assert abs(fd - grad[idx]) <= tol, (
                f"d{name}{idx}: finite difference {fd!r} vs backward {grad[idx]!r} "
                f"(tol {tol:.2e}). {ctx}")
