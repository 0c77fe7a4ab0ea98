"""Every op on the smallest shapes (one unit, one input feature, one step, one sequence) against
the float64 NumPy reference, forward and backward.

Such shapes make matrices whose two strides are both 1, which the kernels must not mistake for
a transposed layout (a one-unit SimpleRNN once gave wrong single-step outputs that way). T=1
takes the single-step path (weights used unpacked, straight through BLAS); T=3 the packed one.
Tolerances: float64 1e-12 and float32 1e-5 of the largest reference magnitude (a few ulp of
the same arithmetic in another order), plus an absolute 1e-14 / 1e-6 for results that are sums
of O(1) terms cancelling to almost nothing (a one-feature dx can be ~1e-3 while its terms are ~1).
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import VARIANTS, check_against_reference, make_problem

SHAPES = [(1, 1, 1, 1), (2, 1, 3, 1), (3, 1, 1, 4), (1, 1, 5, 2), (2, 3, 1, 1), (1, 3, 4, 1), (5, 3, 1, 1)]
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)}


def _close(ours, theirs, what, tol):
    theirs = np.asarray(theirs, np.float64)
    rtol, atol = tol
    scale = float(np.max(np.abs(theirs), initial=0.0))
    err = float(np.max(np.abs(np.asarray(ours, np.float64) - theirs), initial=0.0))
    assert err <= rtol * scale + atol, f"{what}: max error {err:.3g}, scale {scale:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_smallest_shapes_match_the_reference(variant, shape, go_backwards, dtype, rng, seed):
    problem = make_problem(rng, variant, *shape, dtype, go_backwards=go_backwards,
                           mask="random" if rng.random() < 0.5 else None)
    check_against_reference(problem, rng, lambda a, b, what: _close(a, b, what, TOL[dtype]),
                            f"[seed={seed}] {problem.describe()}")
