"""Helpers shared by the fusedrnn.torch tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_kernel_thread():
    """Runs fusedrnn's kernels on one thread. The torch tests' problems are tiny and many
    (gradcheck calls an op hundreds of times): on a loaded 2-core machine the thread pool's
    hand-offs would dominate them. The thread pool is tested elsewhere (test_threads.py)."""
    import fusedrnn

    before = fusedrnn.get_num_threads()
    fusedrnn.set_num_threads(1)
    yield
    fusedrnn.set_num_threads(before)
