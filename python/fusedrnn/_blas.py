"""Makes the OpenBLAS of the ``scipy-openblas32`` wheel loadable before the extension imports.

The extension links ``libscipy_openblas.so`` with an RPATH into the wheel's folder; loading the
library here as well covers installs where that relative path does not hold (editable installs,
unusual site layouts).
"""

from __future__ import annotations

import ctypes
import os


def preload_openblas() -> None:
    """Load scipy-openblas32's shared library globally, or raise ImportError saying what is missing."""
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
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return
