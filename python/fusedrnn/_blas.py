"""Makes the OpenBLAS of the ``scipy-openblas32`` wheel loadable before the extension imports,
and says which kernels it runs.

The extension links ``libscipy_openblas.so`` with an RPATH into the wheel's folder; loading the
library here as well covers installs where that relative path does not hold (editable installs,
unusual site layouts).
"""

from __future__ import annotations

import ctypes
import os

_library: ctypes.CDLL | None = None


def preload_openblas() -> None:
    """Load scipy-openblas32's shared library globally, or raise ImportError saying what is missing."""
    global _library
    try:
        import scipy_openblas32
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImportError(
            "fusedrnn needs the 'scipy-openblas32' package (pip install scipy-openblas32)"
        ) from exc
    lib_dir = scipy_openblas32.get_lib_dir()
    name = scipy_openblas32.get_library()
    for candidate in (f"lib{name}.so", f"lib{name}.dylib", f"{name}.dll"):
        path = os.path.join(lib_dir, candidate)
        if os.path.exists(path):
            _library = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return


def blas_core() -> str:
    """The kernel family (OpenBLAS "core", e.g. ``"SkylakeX"`` for AVX-512, ``"Haswell"`` for
    AVX2) that fusedrnn's OpenBLAS chose when it loaded, from the CPU or from the
    ``OPENBLAS_CORETYPE`` environment variable; ``""`` if the library does not say.

    Single-step recurrent calls and the dense layers and projections run on these kernels, and
    so do the backward pass's weight-gradient products over 256 rows or more where these kernels
    are at least as wide as fusedrnn's own (an AVX2 build); every other product of a recurrent op
    over a whole sequence (forward, backward, input gradients) runs on fusedrnn's own kernel
    whatever this says."""
    if _library is None:
        return ""
    try:
        get = _library.scipy_openblas_get_corename
    except AttributeError:  # pragma: no cover - an OpenBLAS without the query
        return ""
    get.restype = ctypes.c_char_p
    name = get()
    return name.decode() if name else ""
