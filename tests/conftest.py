"""Shared pytest fixtures.

* ``seed`` / ``rng``: every test gets a fresh ``numpy.random.Generator`` seeded
  with a newly drawn seed (so inputs differ from run to run).  The seed is
  printed (shown in the report of a failing test) and should be included in
  assertion messages.  Reproduce a failure with ``FUSEDRNN_TEST_SEED=<seed>``.
* ``one_or_two_threads``: runs a test on one thread and on two.
* Output poisoning: if the compiled extension is importable, every test runs
  with ``fusedrnn._C.set_poison_outputs(True)`` so that an element a kernel
  forgets to write shows up as NaN.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import numpy as np
import pytest

# The test helpers (e.g. _keras_oracle) live next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

try:  # use the installed package if there is one, else the source tree
    import fusedrnn  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))


@pytest.fixture
def seed() -> int:
    env = os.environ.get("FUSEDRNN_TEST_SEED")
    value = int(env) if env else secrets.randbits(32)
    print(f"random seed: {value} (rerun with FUSEDRNN_TEST_SEED={value})")
    return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def one_or_two_threads(request) -> int:
    """The test runs once on one thread and once on two (fusedrnn.set_num_threads); the thread
    count is put back afterwards."""
    import fusedrnn

    before = fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(request.param)
    yield request.param
    fusedrnn.set_num_threads(before)


@pytest.fixture(autouse=True)
def _parallel_small_steps():
    """Small test problems take the same multi-threaded paths as large ones: the kernels' rule
    that runs small steps on one thread (min_parallel_step_macs) is off in tests, except where a
    test sets it."""
    try:
        from fusedrnn import _C
    except Exception:
        yield
        return
    setter = getattr(_C, "set_min_parallel_step_macs", None)
    if setter is None:
        yield
        return
    before = _C.get_min_parallel_step_macs()
    setter(0)
    # and every batch that may project its inputs before the time loop does (default: B <= 2)
    project_before = _C.get_project_inputs_batch() if hasattr(_C, "get_project_inputs_batch") else None
    if project_before is not None:
        _C.set_project_inputs_batch(8)
    try:
        yield
    finally:
        setter(before)
        if project_before is not None:
            _C.set_project_inputs_batch(project_before)


@pytest.fixture(autouse=True)
def _poison_outputs():
    try:
        from fusedrnn import _C
    except Exception:  # extension not built: nothing to poison
        yield
        return
    setter = getattr(_C, "set_poison_outputs", None)
    if setter is None:
        yield
        return
    setter(True)
    try:
        yield
    finally:
        setter(False)

@pytest.fixture(params=[0, 1], ids=["panel", "blas"])
def weight_grad_kernel(request):
    """The backward's weight-gradient products run on fusedrnn's panel kernel (0) or on BLAS (1)
    (the test hook of fusedrnn._C); the size-based default again afterwards."""
    from fusedrnn import _C

    _C.set_weight_grads_blas(request.param)
    yield request.param
    _C.set_weight_grads_blas(-1)
