"""The CUDA backend's build and Python plumbing, checked on any machine (no GPU needed).

* ``import fusedrnn`` and the CPU ops work when ``fusedrnn._cuda`` is absent;
* ``cuda_available()`` is False without a device, and says why;
* CUDA arrays (anything with ``__cuda_array_interface__`` or a CUDA DLPack device) are
  recognised, described and refused with a TypeError naming the argument when they cannot run;
* the DLPack and CUDA-array-interface readers of ``fusedrnn._device`` (on host memory);
* CMake's FUSEDRNN_CUDA=AUTO|ON|OFF logic (slow: configures the project three times; skipped
  where cmake, pybind11 or nvcc are missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fusedrnn import _device

ROOT = Path(__file__).resolve().parents[1]


class FakeCudaArray:
    """Claims to be a float32 CUDA array through the CUDA Array Interface (never dereferenced)."""

    def __init__(self, shape=(2, 3, 4), typestr="<f4", strides=None, ptr=0x7F0000000000):
        self._cai = {"shape": shape, "typestr": typestr, "data": (ptr, False), "strides": strides,
                     "version": 3}

    @property
    def __cuda_array_interface__(self):
        return self._cai


class FakeDlpackArray:
    """A NumPy array's DLPack capsule behind a device that claims to be `device_type`."""

    def __init__(self, a, device_type=2, device_id=0):
        self._a = a
        self._dev = (device_type, device_id)

    def __dlpack_device__(self):
        return self._dev

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()


def _gpu_present() -> bool:
    return _device.cuda_available()


def test_import_without_cuda_module():
    """With fusedrnn._cuda blocked, the package imports, runs a CPU op and reports no CUDA."""
    code = textwrap.dedent("""
        import sys
        sys.modules["fusedrnn._cuda"] = None  # as if it had not been built
        import numpy as np
        import fusedrnn
        from fusedrnn import _device
        assert not _device.cuda_available()
        assert _device.cuda_module() is None
        reason = _device.cuda_unavailable_reason()
        assert "fusedrnn._cuda" in reason, reason
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 3, 4)).astype(np.float32)
        out = fusedrnn.ops.lstm_forward(x, None, None, rng.standard_normal((4, 20)).astype(np.float32),
                                        rng.standard_normal((5, 20)).astype(np.float32),
                                        np.zeros(20, np.float32))
        assert out[0].shape == (2, 3, 5) and np.isfinite(out[0]).all()
        try:
            fusedrnn.ops.lstm_forward(FakeCudaArray(), None, None, None, None, None)
        except TypeError as exc:
            assert str(exc).startswith("x: "), exc
            print("OK", exc)
        else:
            raise AssertionError("no error for a CUDA array")
    """)
    prelude = textwrap.dedent("""
        class FakeCudaArray:
            __cuda_array_interface__ = {"shape": (2, 3, 4), "typestr": "<f4", "data": (1 << 40, False),
                                         "strides": None, "version": 3}
    """)
    import fusedrnn

    # The subprocess imports the same fusedrnn as this test run (installed or source tree).
    env = dict(os.environ)
    package_parent = str(Path(fusedrnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_parent, env.get("PYTHONPATH", "")] if p)
    res = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, env=env,
                         cwd=str(ROOT / "tests"), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK x: " in res.stdout


def test_cuda_available_is_false_without_a_device():
    if _gpu_present():
        pytest.skip("this machine has a usable CUDA device")
    assert _device.cuda_available() is False
    assert _device.cuda_unavailable_reason() != ""


def test_fake_cuda_array_is_refused_with_a_clear_error():
    import fusedrnn

    k = np.zeros((4, 20), np.float32)
    with pytest.raises(TypeError, match=r"^x: .*(CUDA|GPU)"):
        fusedrnn.ops.lstm_forward(FakeCudaArray(), None, None, k, np.zeros((5, 20), np.float32),
                                  np.zeros(20, np.float32))


def test_fake_cuda_argument_next_to_numpy_x_is_refused():
    """Only `kernel` is a (fake) CUDA array: the error names it."""
    import fusedrnn

    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match=r"^kernel: .*(CUDA|GPU)"):
        fusedrnn.ops.lstm_forward(x, None, None, FakeCudaArray((4, 20)), np.zeros((5, 20), np.float32),
                                  np.zeros(20, np.float32))


def test_fake_dlpack_cuda_array_is_refused():
    import fusedrnn

    fake = FakeDlpackArray(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match=r"^x: .*(CUDA|GPU)"):
        fusedrnn.ops.gru_forward(fake, None, np.zeros((4, 15), np.float32), np.zeros((5, 15), np.float32),
                                 np.zeros((2, 15), np.float32))


# ---------------------------------------------------------------------------------------------
# fusedrnn._device on host memory
# ---------------------------------------------------------------------------------------------
def test_detection():
    assert not _device.is_cuda_array(None)
    assert not _device.is_cuda_array(np.zeros(3))
    assert not _device.is_cuda_array(3.0)
    assert _device.is_cuda_array(FakeCudaArray())
    assert _device.is_cuda_array(FakeDlpackArray(np.zeros(3), device_type=2))
    assert _device.is_cuda_array(FakeDlpackArray(np.zeros(3), device_type=13))  # managed memory
    assert not _device.is_cuda_array(FakeDlpackArray(np.zeros(3), device_type=1))  # CPU
    assert _device.any_cuda_array(None, np.zeros(2), FakeCudaArray())
    assert not _device.any_cuda_array(None, np.zeros(2))


def test_cuda_array_interface_reader():
    info = _device.device_array("x", FakeCudaArray((2, 3), "<f8", None, 4096))
    assert (info.ptr, info.shape, info.dtype, info.library) == (4096, (2, 3), np.float64, "other")
    assert info.c_contiguous and info.size == 6
    strided = _device.device_array("x", FakeCudaArray((2, 3), "<f4", (24, 8), 4096))
    assert not strided.c_contiguous
    explicit = _device.device_array("x", FakeCudaArray((2, 3), "<f4", (12, 4), 4096))
    assert explicit.c_contiguous
    with pytest.raises(TypeError, match=r"^w: expected a CUDA array, got NumPy array"):
        _device.device_array("w", np.zeros(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.uint8])
def test_dlpack_reader(dtype):
    a = np.arange(24).reshape(2, 3, 4).astype(dtype)
    info = _device.device_array("x", FakeDlpackArray(a, 2, 0))
    assert info.ptr == a.ctypes.data
    assert info.shape == (2, 3, 4) and info.dtype == np.dtype(dtype) and info.device == 0
    assert info.c_contiguous
    view = a[:, 1:, ::2]
    vinfo = _device.device_array("x", FakeDlpackArray(view, 2, 1))
    assert vinfo.ptr == view.ctypes.data and vinfo.shape == view.shape and vinfo.device == 1
    assert vinfo.strides == view.strides and not vinfo.c_contiguous


def test_describe():
    assert _device.describe(np.zeros((2, 3), np.float32)) == "NumPy array of shape (2, 3) and dtype float32"
    assert "CUDA array" in _device.describe(FakeCudaArray())


# ---------------------------------------------------------------------------------------------
# CMake: FUSEDRNN_CUDA=AUTO|ON|OFF
# ---------------------------------------------------------------------------------------------
def _configure(tmp_path, *defs):
    pybind11 = pytest.importorskip("pybind11")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    build = tmp_path / ("b" + str(len(list(tmp_path.iterdir()))))
    build.mkdir()
    cmd = [cmake, "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
           f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}", *defs]
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.slow
def test_cmake_cuda_option(tmp_path):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    rc, out = _configure(tmp_path, "-DFUSEDRNN_CUDA=OFF")
    assert rc == 0, out
    assert "fusedrnn: CUDA backend off (FUSEDRNN_CUDA=OFF)" in out

    rc, auto = _configure(tmp_path)  # AUTO
    assert rc == 0, auto
    built = "fusedrnn: CUDA backend on:" in auto
    assert built or "fusedrnn: CUDA backend skipped: " in auto, auto

    rc, on = _configure(tmp_path, "-DFUSEDRNN_CUDA=ON")
    if built:
        assert rc == 0, on
    else:
        assert rc != 0 and "FUSEDRNN_CUDA=ON but" in on, on

    rc, bad = _configure(tmp_path, "-DFUSEDRNN_CUDA=maybe")
    assert rc != 0 and "FUSEDRNN_CUDA must be AUTO, ON or OFF" in bad


# ---------------------------------------------------------------------------------------------
# The CUDA backend's logic in a host emulation (csrc/cuda/emulation/build.py)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cuda_backend_in_host_emulation(tmp_path):
    """Builds fusedrnn._cuda for the host (kernels as C++, reference cuBLAS, NumPy-backed CuPy)
    and runs the CuPy half of tests/test_cuda_recurrent.py against it: the orchestration, the
    kernels' indexing and the Python path, checked against the CPU backend without a GPU."""
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no C++ compiler")
    pytest.importorskip("pybind11")
    from fusedrnn.ops import recurrent

    if not hasattr(recurrent, "_device"):
        pytest.skip("fusedrnn.ops does not dispatch CUDA arrays yet (see docs/cuda.md)")
    emulation = ROOT / "csrc" / "cuda" / "emulation"
    sys.path.insert(0, str(emulation))
    try:
        import build as emulation_build  # csrc/cuda/emulation/build.py
    finally:
        sys.path.remove(str(emulation))
        sys.modules.pop("build", None)
    emulation_build.build(tmp_path)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(emulation)]))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                          str(ROOT / "tests" / "test_cuda_recurrent.py"), "-k", "cupy and not cudnn"],
                         capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=1800)
    tail = (res.stdout + res.stderr)[-4000:]
    assert res.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail
