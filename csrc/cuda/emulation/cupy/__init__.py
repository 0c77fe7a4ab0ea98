"""A NumPy-backed stand-in for CuPy, for the host emulation of fusedrnn._cuda (../build.py).

Testing only: 'device memory' is host memory, which the emulated runtime and cuBLAS read and
write directly. Just what fusedrnn and tests/test_cuda_recurrent.py use."""
import types

import numpy as np

float32, float64, int32, uint8, bool_ = np.float32, np.float64, np.int32, np.uint8, np.bool_


class _Device:
    def __init__(self, id=0):
        self.id = int(id)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class _Stream:
    _next = 0x1000

    def __init__(self, ptr=None, non_blocking=False):
        if ptr is None:
            ptr = _Stream._next
            _Stream._next += 0x10
        self.ptr = ptr

    def synchronize(self):
        pass

    def __enter__(self):
        global _current
        self._prev = _current
        _current = self
        return self

    def __exit__(self, *a):
        global _current
        _current = self._prev
        return False


_current = _Stream(0)


class ndarray:
    def __init__(self, a):
        self._a = a

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    device = property(lambda self: _Device(0))

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data if a.size else 0, False),
                "strides": None if a.flags.c_contiguous else a.strides, "version": 3, "stream": 1}

    def get(self):
        return self._a.copy()

    def fill(self, v):
        self._a.fill(v)

    def reshape(self, *shape):
        return ndarray(self._a.reshape(*shape))

    def __getitem__(self, k):
        return ndarray(self._a[k])

    def copy(self):
        return ndarray(self._a.copy())

    def astype(self, dtype):
        return ndarray(self._a.astype(dtype))


def asarray(a, dtype=None):
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype)
    return ndarray(np.array(a, dtype=dtype, copy=True))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def empty(shape, dtype=np.float32):
    return ndarray(np.empty(shape, dtype))


def zeros(shape, dtype=np.float32):
    return ndarray(np.zeros(shape, dtype))


def ascontiguousarray(a):
    return ndarray(np.ascontiguousarray(a._a))


def _get_current_stream(device_id=None):
    return _current


cuda = types.SimpleNamespace(Device=_Device, Stream=_Stream, get_current_stream=_get_current_stream,
                             runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
