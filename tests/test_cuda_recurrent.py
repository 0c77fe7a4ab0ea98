"""The CUDA backend of the recurrent ops (fusedrnn._cuda) on a CUDA device.

Every test here skips without one (``fusedrnn._device.cuda_available()`` is False when the
backend was not built or no device is visible). They check:

* CUDA vs CPU (``fusedrnn.ops`` with CuPy arrays / torch CUDA tensors vs NumPy arrays), for every
  cell and option: masks of each kind, go_backwards, no initial state, shared and per-gate input
  and recurrent dropout masks, float32 and float64 — forward results, the saved cache (same
  contents as the CPU cache) and all gradients, on fresh random inputs, with every output and
  workspace poisoned with NaN before the kernels run and a stream synchronisation after each op
  (so a kernel fault raises at the op that caused it);
* PyTorch's cuDNN nn.RNN / nn.LSTM / nn.GRU with weights converted from Keras's layout (gate
  mapping in docs/cuda.md), forward and gradients;
* the caller's stream is used; results land in the caller's library on the caller's device;
* errors: mixed host/device arrays, arrays on two devices, dtype/shape/contiguity/NaN, and
  CUDA failures surfacing as RuntimeError with the CUDA error's name.

Tolerances: float64 CPU vs CUDA differ only in summation order and libm vs libdevice (1 ulp
functions): rtol 1e-10. float32: the same error model as the Keras parity tests (different
exp/tanh implementations and GEMM summation orders, random-walk growth ~sqrt(T)):
``float32_rtol(T)`` relative to max-abs, atol 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from _keras_oracle import (VARIANTS, assert_close, float32_rtol, forward_names, grad_names,
                           input_names, make_problem)
from fusedrnn import _device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _device.cuda_available(),
                       reason=f"needs the CUDA backend and a CUDA device: {_device.cuda_unavailable_reason()}"),
]

RTOL64, ATOL64 = 1e-10, 1e-12
ATOL32 = 1e-6


# ---------------------------------------------------------------------------------------------
# Array libraries
# ---------------------------------------------------------------------------------------------
class _Lib:
    """Moves arrays between NumPy and one CUDA array library."""

    def __init__(self, name):
        self.name = name
        if name == "cupy":
            self.mod = pytest.importorskip("cupy")
            try:
                if self.mod.cuda.runtime.getDeviceCount() < 1:
                    pytest.skip("CuPy sees no CUDA device")
            except Exception as exc:  # noqa: BLE001
                pytest.skip(f"CuPy cannot use CUDA: {exc}")
        else:
            self.mod = pytest.importorskip("torch")
            if not self.mod.cuda.is_available():
                pytest.skip("torch has no CUDA")

    def dev(self, a):
        if a is None:
            return None
        if self.name == "cupy":
            return self.mod.asarray(a)
        return self.mod.from_numpy(np.ascontiguousarray(a)).to("cuda")

    def host(self, a):
        if a is None:
            return None
        if self.name == "cupy":
            return self.mod.asnumpy(a)
        return a.detach().cpu().numpy()

    def owns(self, a):
        return type(a).__module__.split(".")[0] == self.name

    def new_stream(self):
        if self.name == "cupy":
            return self.mod.cuda.Stream(non_blocking=True)
        return self.mod.cuda.Stream()

    def use_stream(self, s):
        return s if self.name == "cupy" else self.mod.cuda.stream(s)

    def stream_ptr(self, s):
        return int(s.ptr) if self.name == "cupy" else int(s.cuda_stream)


@pytest.fixture(params=["cupy", "torch"])
def lib(request):
    return _Lib(request.param)


@pytest.fixture(autouse=True)
def _poison_and_sync():
    """NaN in every output and workspace before the kernels run; synchronise after every op."""
    cuda = _device.cuda_module()
    saved = (cuda.get_poison_outputs(), cuda.get_sync_after_ops(), cuda.get_allow_tf32())
    cuda.set_poison_outputs(True)
    cuda.set_sync_after_ops(True)
    cuda.set_allow_tf32(False)
    try:
        yield
    finally:
        cuda.set_poison_outputs(saved[0])
        cuda.set_sync_after_ops(saved[1])
        cuda.set_allow_tf32(saved[2])


@pytest.fixture(scope="module")
def ops():
    from fusedrnn import ops as fused_ops
    return fused_ops


# ---------------------------------------------------------------------------------------------
# CUDA vs CPU
# ---------------------------------------------------------------------------------------------
def _device_problem_args(problem, lib):
    """(positional args, keyword args) of the problem with every array on the device."""
    arrays = {k: lib.dev(v) for k, v in problem.arrays.items()}
    kw = problem.kwargs()
    for k in ("mask", "dropout_mask", "recurrent_dropout_mask"):
        kw[k] = lib.dev(kw[k])
    return [arrays[n] for n in input_names(problem.cell)], kw


def _run(ops, problem, lib, incoming):
    """CPU and CUDA results: (cpu_fwd, cpu_cache, cpu_grads, gpu_fwd, gpu_cache, gpu_grads), host arrays."""
    fwd_fn = getattr(ops, f"{problem.cell}_forward")
    bwd_fn = getattr(ops, f"{problem.cell}_backward")
    cpu = fwd_fn(*problem.args(), **problem.kwargs())
    cpu_grads = bwd_fn(cpu[-1], *incoming)

    args, kw = _device_problem_args(problem, lib)
    snapshot = [lib.host(a) for a in args]
    snapshot += [lib.host(v) for v in kw.values() if v is not None and not isinstance(v, (bool, str))]
    gpu = fwd_fn(*args, **kw)
    d_incoming = [lib.dev(g) for g in incoming]
    gpu_grads = bwd_fn(gpu[-1], *d_incoming)
    after = [lib.host(a) for a in args] + [lib.host(v) for v in kw.values() if v is not None and not isinstance(v, (bool, str))]
    for before, now in zip(snapshot, after):
        if before is not None:
            np.testing.assert_array_equal(now, before, err_msg="the CUDA op modified an input")
    for r in list(gpu[:-1]) + list(gpu_grads):
        assert r is None or lib.owns(r), f"result of type {type(r)} is not a {lib.name} array"
    return cpu[:-1], cpu[-1], cpu_grads, [lib.host(r) for r in gpu[:-1]], gpu[-1], [lib.host(g) for g in gpu_grads]


def _tolerances(problem):
    if problem.dtype == np.float64:
        return RTOL64, ATOL64
    return float32_rtol(problem.shape[1]), ATOL32


def _compare(problem, lib, cpu_fwd, cpu_cache, cpu_grads, gpu_fwd, gpu_cache, gpu_grads, ctx):
    rtol, atol = _tolerances(problem)
    for name, a, b in zip(forward_names(problem.cell), gpu_fwd, cpu_fwd):
        assert a.dtype == problem.dtype, f"{name}: dtype {a.dtype}. {ctx}"
        assert_close(a, b, rtol=rtol, atol=atol, what=name, context=ctx)
    # The saved cache has the CPU cache's contents.
    for name in ("gates", "hprev", "aux"):
        b = getattr(cpu_cache, name)
        a = getattr(gpu_cache, name)
        if b is None:
            assert a is None, f"cache.{name} should be None. {ctx}"
            continue
        assert_close(lib.host(a), b, rtol=rtol, atol=atol, what=f"cache.{name}", context=ctx)
    for name, a, b in zip(grad_names(problem.cell), gpu_grads, cpu_grads):
        assert a.dtype == problem.dtype, f"{name}: dtype {a.dtype}. {ctx}"
        assert_close(a, b, rtol=rtol, atol=atol, what=name, context=ctx)


# name -> make_problem options
CASES = {
    "plain": dict(),
    "mask_random_backwards": dict(mask="random", go_backwards=True),
    "prepad_no_initial_state": dict(mask="prepad", initial_state=False),
    "postpad_backwards": dict(mask="postpad", go_backwards=True),
    "dropout_shared": dict(dropout="shared", recurrent_dropout="shared"),
    "dropout_per_gate_masked": dict(dropout="per_gate", recurrent_dropout="per_gate", mask="random"),
    "input_dropout_per_gate_backwards": dict(dropout="per_gate", go_backwards=True),
    "recurrent_dropout_per_gate_postpad": dict(recurrent_dropout="per_gate", mask="postpad"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cuda_matches_cpu(ops, lib, rng, seed, variant, case, dtype):
    B, T, I, H = (int(rng.integers(lo, hi)) for lo, hi in ((1, 7), (1, 10), (1, 9), (1, 13)))
    problem = make_problem(rng, variant, B, T, I, H, dtype, **CASES[case])
    incoming = problem.random_incoming(rng)
    ctx = f"{problem.describe()} lib={lib.name} seed={seed}"
    _compare(problem, lib, *_run(ops, problem, lib, incoming), ctx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cuda_matches_cpu_larger(ops, lib, rng, seed, variant, dtype):
    """Sizes that are not multiples of the block or warp size, a long-ish sequence, all options."""
    problem = make_problem(rng, variant, 37, 60, 70, 133, dtype, mask="postpad", go_backwards=True,
                           dropout="per_gate", recurrent_dropout="shared")
    incoming = problem.random_incoming(rng)
    ctx = f"{problem.describe()} lib={lib.name} seed={seed}"
    _compare(problem, lib, *_run(ops, problem, lib, incoming), ctx)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cuda_backward_without_incoming(ops, lib, rng, seed, variant):
    """Incoming gradients may be None, as on the CPU."""
    problem = make_problem(rng, variant, 3, 5, 4, 6, np.float64, mask="random")
    incoming = problem.random_incoming(rng)
    incoming = (incoming[0],) + (None,) * (len(incoming) - 1)
    ctx = f"{problem.describe()} lib={lib.name} seed={seed}"
    _compare(problem, lib, *_run(ops, problem, lib, incoming), ctx)
    incoming = (None,) + problem.random_incoming(rng)[1:]
    _compare(problem, lib, *_run(ops, problem, lib, incoming), ctx)


def test_cuda_runs_on_the_callers_stream(ops, lib, rng, seed):
    problem = make_problem(rng, "lstm", 4, 9, 5, 7, np.float32, mask="random")
    args, kw = _device_problem_args(problem, lib)
    expected = [lib.host(r) for r in ops.lstm_forward(*args, **kw)[:-1]]
    cuda = _device.cuda_module()
    cuda.set_sync_after_ops(False)  # rely on the stream, not on the debug synchronisation
    stream = lib.new_stream()
    with lib.use_stream(stream):
        assert _device.current_stream(_device.device_array("x", args[0])) == lib.stream_ptr(stream)
        out = ops.lstm_forward(*args, **kw)
        grads = ops.lstm_backward(out[-1], *[lib.dev(g) for g in problem.random_incoming(rng)])
    stream.synchronize()
    for a, b in zip(out[:-1], expected):
        np.testing.assert_array_equal(lib.host(a), b, err_msg=f"seed={seed}")
    assert all(np.isfinite(lib.host(g)).all() for g in grads if g is not None)


def test_cuda_tf32_switch(ops, lib, rng, seed):
    """TF32 GEMMs: about 1e-3 relative agreement; off again afterwards."""
    problem = make_problem(rng, "gru_reset_after", 8, 12, 64, 64, np.float32)
    args, kw = _device_problem_args(problem, lib)
    exact = lib.host(ops.gru_forward(*args, **kw)[0])
    from fusedrnn.ops import _cuda_recurrent
    _cuda_recurrent.set_allow_tf32(True)
    try:
        fast = lib.host(ops.gru_forward(*args, **kw)[0])
    finally:
        _cuda_recurrent.set_allow_tf32(False)
    assert_close(fast, exact, rtol=2e-2, atol=1e-3, what="outputs (TF32)", context=f"seed={seed}")


# ---------------------------------------------------------------------------------------------
# cuDNN through PyTorch
# ---------------------------------------------------------------------------------------------
def _torch_module(torch, cell, options, I, H, dtype):
    if cell == "lstm":
        m = torch.nn.LSTM(I, H, batch_first=True)
    elif cell == "gru":
        m = torch.nn.GRU(I, H, batch_first=True)
    else:
        m = torch.nn.RNN(I, H, nonlinearity=options["activation"], batch_first=True)
    return m.to(device="cuda", dtype=dtype)


def _gru_rows(a, H):
    """Keras z, r, h blocks (last axis) -> PyTorch r, z, n order (and back: the map is an involution)."""
    return np.concatenate([a[..., H:2 * H], a[..., :H], a[..., 2 * H:]], axis=-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", ["rnn_tanh", "rnn_relu", "lstm", "gru_reset_after"])
def test_cuda_matches_cudnn(ops, rng, seed, variant, dtype):
    lib = _Lib("torch")
    torch = lib.mod
    cell, options = VARIANTS[variant]
    B, T, I, H = 6, 11, 7, 10
    problem = make_problem(rng, variant, B, T, I, H, dtype)
    a = problem.arrays
    incoming = problem.random_incoming(rng)
    ctx = f"{problem.describe()} seed={seed}"

    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    m = _torch_module(torch, cell, options, I, H, tdtype)
    kernel, rec, bias = a["kernel"], a["recurrent_kernel"], a["bias"]
    if cell == "gru":
        w_ih, w_hh = _gru_rows(kernel, H).T, _gru_rows(rec, H).T
        b_ih, b_hh = _gru_rows(bias[0], H), _gru_rows(bias[1], H)
    else:
        w_ih, w_hh, b_ih, b_hh = kernel.T, rec.T, bias, np.zeros_like(bias)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih),
                            ("bias_hh_l0", b_hh)):
            getattr(m, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    x = lib.dev(a["x"]).requires_grad_(True)
    h0 = lib.dev(a["h0"][None]).requires_grad_(True)
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        if cell == "lstm":
            c0 = lib.dev(a["c0"][None]).requires_grad_(True)
            out, (hn, cn) = m(x, (h0, c0))
            ref_fwd = [out, hn[0], cn[0]]
        else:
            out, hn = m(x, h0)
            ref_fwd = [out, hn[0]]
        loss = sum((r * lib.dev(g)).sum() for r, g in zip(ref_fwd, incoming))
        loss.backward()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old

    args, kw = _device_problem_args(problem, lib)
    fwd = getattr(ops, f"{cell}_forward")(*args, **kw)
    grads = getattr(ops, f"{cell}_backward")(fwd[-1], *[lib.dev(g) for g in incoming])

    rtol, atol = _tolerances(problem)
    for name, ours, ref in zip(forward_names(cell), fwd[:-1], ref_fwd):
        assert_close(lib.host(ours), lib.host(ref), rtol=rtol, atol=atol, what=f"{name} vs cuDNN", context=ctx)
    dk, drk = m.weight_ih_l0.grad.cpu().numpy().T, m.weight_hh_l0.grad.cpu().numpy().T
    dbi, dbh = m.bias_ih_l0.grad.cpu().numpy(), m.bias_hh_l0.grad.cpu().numpy()
    if cell == "gru":
        dk, drk = _gru_rows(dk, H), _gru_rows(drk, H)
        db = np.stack([_gru_rows(dbi, H), _gru_rows(dbh, H)])
    else:
        db = dbi
    expected = {"dx": x.grad.cpu().numpy(), "dh0": h0.grad.cpu().numpy()[0], "d_kernel": dk,
                "d_recurrent_kernel": drk, "d_bias": db}
    if cell == "lstm":
        expected["dc0"] = c0.grad.cpu().numpy()[0]
    for name, ours in zip(grad_names(cell), grads):
        assert_close(lib.host(ours), expected[name], rtol=rtol, atol=atol, what=f"{name} vs cuDNN", context=ctx)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
def _lstm_arrays(rng, B=2, T=3, I=4, H=5, dtype=np.float32):
    return dict(x=rng.standard_normal((B, T, I)).astype(dtype), h0=None, c0=None,
                kernel=rng.standard_normal((I, 4 * H)).astype(dtype),
                recurrent_kernel=rng.standard_normal((H, 4 * H)).astype(dtype),
                bias=np.zeros(4 * H, dtype))


def _call_lstm(ops, a):
    return ops.lstm_forward(a["x"], a["h0"], a["c0"], a["kernel"], a["recurrent_kernel"], a["bias"])


def test_mixed_host_and_device_arrays(ops, lib, rng):
    a = _lstm_arrays(rng)
    d = {k: lib.dev(v) for k, v in a.items()}
    with pytest.raises(TypeError, match=r"^kernel: .*CUDA array.*same device"):
        _call_lstm(ops, dict(d, kernel=a["kernel"]))
    with pytest.raises(TypeError, match=r"^kernel: got a CUDA array, but x is a NumPy array"):
        _call_lstm(ops, dict(a, kernel=d["kernel"]))
    with pytest.raises(TypeError, match=r"^mask: "):
        ops.lstm_forward(d["x"], None, None, d["kernel"], d["recurrent_kernel"], d["bias"],
                         mask=np.ones((2, 3), bool))
    # A CPU cache with device gradients, and a device cache with host gradients.
    out = _call_lstm(ops, a)
    with pytest.raises(TypeError, match=r"^d_outputs: got a CUDA array"):
        ops.lstm_backward(out[-1], lib.dev(np.ones((2, 3, 5), np.float32)), None, None)
    out = _call_lstm(ops, d)
    with pytest.raises(TypeError, match=r"^d_outputs: expected a CUDA array"):
        ops.lstm_backward(out[-1], np.ones((2, 3, 5), np.float32), None, None)


def test_arrays_on_two_devices(ops, lib, rng):
    if lib.name == "cupy":
        n = lib.mod.cuda.runtime.getDeviceCount()
    else:
        n = lib.mod.cuda.device_count()
    if n < 2:
        pytest.skip("needs two CUDA devices")
    a = _lstm_arrays(rng)
    d = {k: lib.dev(v) for k, v in a.items()}
    if lib.name == "cupy":
        with lib.mod.cuda.Device(1):
            other = lib.mod.asarray(a["kernel"])
    else:
        other = lib.mod.from_numpy(a["kernel"]).to("cuda:1")
    with pytest.raises(ValueError, match=r"^kernel: is on cuda:1 but x is on cuda:0"):
        _call_lstm(ops, dict(d, kernel=other))


def test_bad_device_arguments(ops, lib, rng):
    a = _lstm_arrays(rng)
    d = {k: lib.dev(v) for k, v in a.items()}
    with pytest.raises(TypeError, match=r"^kernel: expected dtype float32"):
        _call_lstm(ops, dict(d, kernel=lib.dev(a["kernel"].astype(np.float64))))
    with pytest.raises(ValueError, match=r"^recurrent_kernel: expected shape \(5, 20\)"):
        _call_lstm(ops, dict(d, recurrent_kernel=lib.dev(a["recurrent_kernel"][:4])))
    with pytest.raises(ValueError, match=r"^x: must be C-contiguous"):
        wide = lib.dev(np.repeat(a["x"], 2, axis=2))
        _call_lstm(ops, dict(d, x=wide[:, :, ::2]))
    bad = a["x"].copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"^x: contains NaN or inf"):
        _call_lstm(ops, dict(d, x=lib.dev(bad)))
    bad = a["recurrent_kernel"].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^recurrent_kernel: contains NaN or inf"):
        _call_lstm(ops, dict(d, recurrent_kernel=lib.dev(bad)))
    with pytest.raises(TypeError, match=r"^mask: expected a boolean array"):
        ops.lstm_forward(d["x"], None, None, d["kernel"], d["recurrent_kernel"], d["bias"],
                         mask=lib.dev(np.ones((2, 3), np.float32)))


def test_cuda_errors_become_runtime_errors():
    cuda = _device.cuda_module()
    with pytest.raises(RuntimeError, match=r"CUDA error cudaErrorInvalidDevice"):
        cuda.nonfinite_flags([], 0, 1 << 20, 0)
