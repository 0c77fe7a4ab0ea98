"""fusedrnn.torch.ops: the custom operators against fusedrnn.ops, gradcheck in float64,
torch.compile without graph breaks, torch.library.opcheck, zero-copy inputs and bad input."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _torch_helpers import one_kernel_thread  # noqa: E402,F401 - autouse fixture

from fusedrnn import ops as np_ops  # noqa: E402
from fusedrnn.torch import _arrays  # noqa: E402
from fusedrnn.torch import ops  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _recurrent_args(cell, B, T, I, H, dtype, *, reset_after=True, requires_grad=True):
    G = GATES[cell]
    bias_shape = (2, G * H) if cell == "gru" and reset_after else (G * H,)
    shapes = {"x": (B, T, I), "h0": (B, H), "kernel": (I, G * H), "recurrent_kernel": (H, G * H), "bias": bias_shape}
    if cell == "lstm":
        shapes["c0"] = (B, H)
    return {k: (0.5 * torch.randn(s, dtype=dtype)).requires_grad_(requires_grad) for k, s in shapes.items()}


def _call(cell, a, **options):
    """The differentiable op of `cell` on the dict of tensors `a`: a tuple of outputs."""
    if cell == "lstm":
        return ops.lstm(a["x"], a.get("h0"), a.get("c0"), a["kernel"], a["recurrent_kernel"], a["bias"], **options)
    return getattr(ops, cell)(a["x"], a.get("h0"), a["kernel"], a["recurrent_kernel"], a["bias"], **options)


def _options(cell, B, T, I, H, dtype, variant):
    G = GATES[cell]
    opts = {}
    if variant in ("mask", "mask_backwards", "all"):
        mask = torch.rand(B, T) > 0.3
        mask[:, 0] = True
        opts["mask"] = mask
    if variant in ("backwards", "mask_backwards", "all"):
        opts["go_backwards"] = True
    if variant in ("dropout", "all"):
        keep = 1.0 / 0.75
        opts["dropout_mask"] = (torch.rand(B, I) > 0.25).to(dtype) * keep
        opts["recurrent_dropout_mask"] = (torch.rand(G, B, H) > 0.25).to(dtype) * keep
    return opts


CASES = [("rnn", "plain"), ("rnn", "all"), ("lstm", "mask_backwards"), ("lstm", "dropout"), ("lstm", "all"),
         ("gru", "mask"), ("gru", "backwards"), ("gru", "all")]


@pytest.mark.parametrize("cell,variant", CASES)
def test_recurrent_ops_match_numpy_ops_and_pass_gradcheck(cell, variant, seed):
    torch.manual_seed(seed)
    B, T, I, H = 3, 4, 3, 2
    a = _recurrent_args(cell, B, T, I, H, torch.float64)
    opts = _options(cell, B, T, I, H, torch.float64, variant)
    extra = {"activation": "relu"} if cell == "rnn" and variant == "all" else {}
    names = list(a)

    def f(*tensors):
        return _call(cell, dict(zip(names, tensors)), **opts, **extra)

    # the same numbers as the NumPy op
    out = f(*a.values())
    np_args = {k: v.detach().numpy() for k, v in a.items()}
    np_opts = {k: v.numpy() for k, v in opts.items() if isinstance(v, torch.Tensor)}
    np_opts.update({k: v for k, v in opts.items() if not isinstance(v, torch.Tensor)}, **extra)
    fn = getattr(np_ops, f"{cell}_forward")
    if cell == "lstm":
        ref = fn(np_args["x"], np_args["h0"], np_args["c0"], np_args["kernel"], np_args["recurrent_kernel"],
                 np_args["bias"], **np_opts)
    else:
        ref = fn(np_args["x"], np_args["h0"], np_args["kernel"], np_args["recurrent_kernel"], np_args["bias"], **np_opts)
    for got, want in zip(out, ref[:-1]):
        np.testing.assert_array_equal(got.detach().numpy(), want, err_msg=f"seed {seed}")
    assert torch.autograd.gradcheck(f, tuple(a.values())), f"seed {seed}"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_default_states_and_gru_reset_before(cell, seed):
    """h0/c0 None (zeros, no gradient for them) and the GRU with reset_after=False."""
    torch.manual_seed(seed)
    reset_after = cell != "gru"
    a = _recurrent_args(cell, 2, 3, 3, 2, torch.float64, reset_after=reset_after)
    a.pop("h0")
    a.pop("c0", None)
    extra = {"reset_after": False} if cell == "gru" else {}
    names = list(a)
    assert torch.autograd.gradcheck(lambda *t: _call(cell, dict(zip(names, t)), **extra), tuple(a.values())), \
        f"seed {seed}"
    zeros = {k: v for k, v in a.items()}
    zeros["h0"] = torch.zeros(2, 2, dtype=torch.float64)
    if cell == "lstm":
        zeros["c0"] = torch.zeros(2, 2, dtype=torch.float64)
    for got, want in zip(_call(cell, a, **extra), _call(cell, zeros, **extra)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_integer_ids_are_one_hot_rows(seed):
    """x as integer ids (B, T) equals the one-hot float input, outputs and kernel gradient."""
    torch.manual_seed(seed)
    B, T, V, H = 3, 4, 5, 3
    ids = torch.randint(0, V, (B, T))
    a = _recurrent_args("lstm", B, T, V, H, torch.float64)
    one_hot = torch.nn.functional.one_hot(ids, V).to(torch.float64)
    b = {k: v.detach().clone().requires_grad_() for k, v in a.items()}
    b["x"] = one_hot
    a["x"] = ids
    out_a, out_b = _call("lstm", a), _call("lstm", b)
    for got, want in zip(out_a, out_b):
        torch.testing.assert_close(got, want)
    sum(o.sum() for o in out_a).backward()
    sum(o.sum() for o in out_b).backward()
    torch.testing.assert_close(a["kernel"].grad, b["kernel"].grad)
    torch.testing.assert_close(a["h0"].grad, b["h0"].grad)


def test_inference_keeps_no_cache_and_backward_refuses_it(seed):
    torch.manual_seed(seed)
    a = _recurrent_args("gru", 2, 3, 3, 2, torch.float32)
    with torch.no_grad():
        out = torch.ops.fusedrnn.gru_forward(a["x"], a["h0"], a["kernel"], a["recurrent_kernel"], a["bias"], None,
                                             False, True, None, None, False)
        fast = ops.gru(a["x"], a["h0"], a["kernel"], a["recurrent_kernel"], a["bias"])
    assert out[2].shape == (0,) and out[3].shape == (0,)
    trained = ops.gru(a["x"], a["h0"], a["kernel"], a["recurrent_kernel"], a["bias"])
    for got, want in zip(fast, trained):
        torch.testing.assert_close(got, want.detach(), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="keep_cache=False"):
        torch.ops.fusedrnn.gru_backward(a["x"].detach(), None, a["kernel"].detach(), a["recurrent_kernel"].detach(),
                                        a["bias"].detach(), None, False, True, None, None, out[2], out[3], out[4],
                                        out[0], None)


def test_contiguous_cpu_tensors_are_not_copied_and_others_are(seed):
    torch.manual_seed(seed)
    t = torch.randn(3, 4)
    assert _arrays.to_host("x", t).__array_interface__["data"][0] == t.data_ptr()
    view = _arrays.to_host("x", t.t())
    assert view.flags.c_contiguous and view.__array_interface__["data"][0] != t.data_ptr()
    np.testing.assert_array_equal(view, t.t().numpy())
    # a non-contiguous input gives the same results (one copy), not an error
    a = _recurrent_args("lstm", 3, 4, 2, 3, torch.float32, requires_grad=False)
    x_t = a["x"].transpose(0, 1).contiguous().transpose(0, 1)
    assert not x_t.is_contiguous()
    b = dict(a, x=x_t, kernel=a["kernel"].t().contiguous().t())
    for got, want in zip(_call("lstm", b), _call("lstm", a)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["dot", "additive"])
@pytest.mark.parametrize("variant", ["plain", "key_scale_masks", "causal_self"])
def test_attention_ops_match_numpy_ops_and_pass_gradcheck(kind, variant, seed):
    torch.manual_seed(seed)
    B, Tq, Tv, D, Dv = 2, 3, 4, 3, 2
    q = torch.randn(B, Tq, D, dtype=torch.float64, requires_grad=True)
    if variant == "causal_self":
        v = torch.randn(B, Tv, D, dtype=torch.float64, requires_grad=True)
        tensors, key, scale, opts = (q, v), None, None, {"causal": True}
    else:
        v = torch.randn(B, Tv, Dv if variant == "key_scale_masks" else D, dtype=torch.float64, requires_grad=True)
        tensors, key, scale, opts = (q, v), None, None, {}
        if variant == "key_scale_masks":
            key = torch.randn(B, Tv, D, dtype=torch.float64, requires_grad=True)
            scale_shape = () if kind == "dot" else (D,)
            scale = torch.randn(scale_shape, dtype=torch.float64, requires_grad=True)
            value_mask = torch.rand(B, Tv) > 0.3
            value_mask[:, 0] = True
            opts = {"query_mask": torch.rand(B, Tq) > 0.3, "value_mask": value_mask}
            tensors = (q, v, key, scale)
    op = ops.dot_attention if kind == "dot" else ops.additive_attention

    def f(*t):
        k = t[2] if len(t) > 2 else None
        s = t[3] if len(t) > 3 else None
        return op(t[0], t[1], k, scale=s, **opts)

    np_forward = np_ops.dot_attention_forward if kind == "dot" else np_ops.additive_attention_forward
    np_opts = {k: (v_.numpy() if isinstance(v_, torch.Tensor) else v_) for k, v_ in opts.items()}
    ref = np_forward(q.detach().numpy(), v.detach().numpy(), None if key is None else key.detach().numpy(),
                     scale=None if scale is None else scale.detach().numpy(), **np_opts)
    for got, want in zip(f(*tensors), ref[:2]):
        np.testing.assert_array_equal(got.detach().numpy(), want, err_msg=f"seed {seed}")
    assert torch.autograd.gradcheck(f, tensors), f"seed {seed}"


def test_dot_attention_takes_a_float_scale(seed):
    torch.manual_seed(seed)
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    got = ops.dot_attention(q, v, scale=0.5)
    want = ops.dot_attention(q, v, scale=torch.tensor(0.5))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def _opcheck_cases():
    torch.manual_seed(0)
    a = _recurrent_args("lstm", 2, 3, 3, 2, torch.float64)
    args = (a["x"], a["h0"], a["c0"], a["kernel"], a["recurrent_kernel"], a["bias"], torch.rand(2, 3) > 0.2, True,
            None, None, True)
    g = _recurrent_args("gru", 2, 3, 3, 2, torch.float64)
    r = _recurrent_args("rnn", 2, 3, 3, 2, torch.float64)
    q, v = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True), torch.randn(2, 5, 4, dtype=torch.float64)
    return [
        ("lstm_forward", args),
        ("gru_forward", (g["x"], None, g["kernel"], g["recurrent_kernel"], g["bias"], None, False, True, None, None,
                         True)),
        ("rnn_forward", (r["x"], r["h0"], r["kernel"], r["recurrent_kernel"], r["bias"], None, True, "tanh", None, None,
                         True)),
        ("dot_attention_forward", (q, v, None, torch.tensor(0.3, dtype=torch.float64), None, None, True)),
        ("additive_attention_forward", (q, v, None, None, None, torch.rand(2, 5) > 0.2, False)),
    ]


@pytest.mark.parametrize("name,args", _opcheck_cases(), ids=[c[0] for c in _opcheck_cases()])
def test_opcheck_schema_fake_and_autograd_registration(name, args):
    result = torch.library.opcheck(getattr(torch.ops.fusedrnn, name).default, args)
    assert all(v == "SUCCESS" for v in result.values()), result


def test_backward_ops_pass_opcheck(seed):
    torch.manual_seed(seed)
    a = _recurrent_args("lstm", 2, 3, 3, 2, torch.float64, requires_grad=False)
    out = torch.ops.fusedrnn.lstm_forward(a["x"], a["h0"], a["c0"], a["kernel"], a["recurrent_kernel"], a["bias"],
                                          None, False, None, None, True)
    args = (a["x"], a["h0"], a["c0"], a["kernel"], a["recurrent_kernel"], a["bias"], None, False, None, None, out[3],
            out[4], out[5], torch.randn_like(out[0]), None, torch.randn_like(out[2]))
    result = torch.library.opcheck(torch.ops.fusedrnn.lstm_backward.default, args,
                                   test_utils=("test_schema", "test_faketensor"))
    assert all(v == "SUCCESS" for v in result.values()), result


def test_torch_compile_traces_through_without_graph_breaks(seed):
    torch.manual_seed(seed)
    a = _recurrent_args("lstm", 3, 4, 3, 5, torch.float32)
    q = torch.randn(3, 2, 5, requires_grad=True)

    def model(x, kernel, recurrent_kernel, bias, q):
        out, h, c = ops.lstm(x, None, None, kernel, recurrent_kernel, bias, go_backwards=True)
        context, weights = ops.additive_attention(q, out)
        return context.square().sum() + (h * c).sum() + weights[:, :, 0].sum()

    inputs = (a["x"], a["kernel"], a["recurrent_kernel"], a["bias"], q)
    eager = model(*inputs)
    eager_grads = torch.autograd.grad(eager, inputs)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    got = compiled(*inputs)
    got_grads = torch.autograd.grad(got, inputs)
    torch.testing.assert_close(got, eager)
    for g, w in zip(got_grads, eager_grads):
        torch.testing.assert_close(g, w)


# -- bad input -------------------------------------------------------------------------------
def test_bad_input_names_the_argument(seed):
    torch.manual_seed(seed)
    a = _recurrent_args("lstm", 2, 3, 3, 2, torch.float32, requires_grad=False)
    with pytest.raises(TypeError, match="h0: expected a tensor or None"):
        _call("lstm", dict(a, h0=a["h0"].numpy()))
    with pytest.raises(TypeError, match="x: expected a float32 or float64 tensor, got torch.float16"):
        _call("lstm", dict(a, x=a["x"].half()))
    with pytest.raises(TypeError, match="kernel: expected a float32 or float64 tensor, got torch.bfloat16"):
        _call("lstm", dict(a, kernel=a["kernel"].bfloat16()))
    with pytest.raises(TypeError, match="c0: expected dtype float32"):
        _call("lstm", dict(a, c0=a["c0"].double()))
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 2\)"):
        _call("lstm", dict(a, h0=torch.zeros(3, 2)))
    with pytest.raises(ValueError, match=r"recurrent_kernel: expected shape \(2, 8\)"):
        _call("lstm", dict(a, recurrent_kernel=torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="x: contains NaN or inf"):
        _call("lstm", dict(a, x=a["x"].clone().index_fill_(1, torch.tensor([1]), float("nan"))))
    with pytest.raises(ValueError, match="bias: expected a tensor on cpu"):
        _call("lstm", dict(a, bias=a["bias"].to("meta")))
    with pytest.raises(TypeError, match="mask: expected a boolean array"):
        _call("lstm", a, mask=torch.ones(2, 3))
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="key: its length 4 does not match"):
        ops.dot_attention(q, v, torch.randn(2, 4, 4))
    with pytest.raises(TypeError, match="value: expected a float32 or float64 tensor"):
        ops.additive_attention(q, v.to(torch.int64))
    with pytest.raises(TypeError, match="value_mask: expected a tensor or None"):
        ops.additive_attention(q, v, value_mask=[True] * 5)


class _OnCuda:
    """Stands for a CUDA tensor where torch has no CUDA (only .device is read)."""

    device = torch.device("cuda", 0)


def test_cuda_tensors_without_the_cuda_backend_raise_a_clear_error(monkeypatch):
    from fusedrnn import _device

    monkeypatch.setattr(_device, "cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="x: is a CUDA tensor, but fusedrnn's CUDA backend cannot run it"):
        _arrays.check_device([("x", _OnCuda()), ("h0", None)])


def _cuda_ready():
    from fusedrnn import _device

    return torch.cuda.is_available() and _device.cuda_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_ready(), reason="needs a CUDA build of torch and fusedrnn's CUDA backend")
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cuda_tensors_run_the_cuda_backend_with_the_cpu_results(cell, seed):
    torch.manual_seed(seed)
    B, T, I, H = 4, 6, 5, 8
    a = _recurrent_args(cell, B, T, I, H, torch.float64)
    mask = torch.rand(B, T) > 0.3
    opts = {"mask": mask, "go_backwards": True}
    out_cpu = _call(cell, a, **opts)
    g = torch.Generator().manual_seed(seed + 1)
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in out_cpu]
    grads_cpu = torch.autograd.grad(sum((o * w).sum() for o, w in zip(out_cpu, weights)), list(a.values()))
    b = {k: v.detach().cuda().requires_grad_() for k, v in a.items()}
    out_gpu = _call(cell, b, mask=mask.cuda(), go_backwards=True)
    assert all(o.is_cuda for o in out_gpu)
    grads_gpu = torch.autograd.grad(sum((o * w.cuda()).sum() for o, w in zip(out_gpu, weights)), list(b.values()))
    for got, want in zip(list(out_gpu) + list(grads_gpu), list(out_cpu) + list(grads_cpu)):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-9, atol=1e-10, msg=lambda m: f"seed {seed}: {m}")


# -- eager calls (autograd.Function) and the registered operators run one implementation ----------
def _through_operators(monkeypatch):
    """Makes every call take the registered custom operators, as under torch.compile."""
    from fusedrnn.torch import attention_ops, recurrent_ops

    monkeypatch.setattr(recurrent_ops, "_eager", lambda tensors: False)
    monkeypatch.setattr(attention_ops, "_eager", lambda tensors: False)


def _results_and_grads(fn, tensors):
    out = fn(*tensors)
    g = torch.Generator().manual_seed(5)
    loss = sum((torch.randn(o.shape, generator=g, dtype=o.dtype) * o).sum() for o in out)
    leaves = [t for t in tensors if t.requires_grad]
    return out, torch.autograd.grad(loss, leaves), {type(o.grad_fn).__name__ for o in out}


@pytest.mark.parametrize("cell,variant", CASES)
def test_eager_path_and_operators_give_identical_results_and_gradients(cell, variant, seed, monkeypatch):
    """Eager calls skip the custom-op dispatcher (an autograd.Function over the same functions);
    both paths must give the same bits, forward and backward, and the operators still pass gradcheck."""
    torch.manual_seed(seed)
    B, T, I, H = 3, 4, 3, 2
    a = _recurrent_args(cell, B, T, I, H, torch.float32)
    opts = _options(cell, B, T, I, H, torch.float32, variant)
    names = list(a)

    def f(*tensors):
        return _call(cell, dict(zip(names, tensors)), **opts)

    eager, eager_grads, eager_nodes = _results_and_grads(f, tuple(a.values()))
    with torch.no_grad():
        inference = f(*a.values())
    assert eager_nodes == {"_RecurrentBackward"}, eager_nodes
    _through_operators(monkeypatch)
    op, op_grads, op_nodes = _results_and_grads(f, tuple(a.values()))
    assert "_RecurrentBackward" not in op_nodes, op_nodes
    for got, want in zip(list(eager) + list(eager_grads) + list(inference), list(op) + list(op_grads) + list(op)):
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy(), err_msg=f"seed {seed}")
    a64 = {k: v.detach().double().requires_grad_() for k, v in a.items()}
    opts.update({k: v.double() for k, v in opts.items() if isinstance(v, torch.Tensor) and v.is_floating_point()})
    assert torch.autograd.gradcheck(f, tuple(a64.values())), f"seed {seed}"


@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_attention_eager_path_and_operators_give_identical_results_and_gradients(kind, seed, monkeypatch):
    torch.manual_seed(seed)
    B, Tq, Tv, D = 2, 3, 4, 5
    q, v, k = (torch.randn(B, t, D, requires_grad=True) for t in (Tq, Tv, Tv))
    scale = torch.tensor(0.7, requires_grad=True) if kind == "dot" else torch.randn(D, requires_grad=True)
    value_mask = torch.rand(B, Tv) > 0.3
    value_mask[:, 0] = True
    fn = ops.dot_attention if kind == "dot" else ops.additive_attention

    def f(*t):
        return fn(t[0], t[1], t[2], scale=t[3], value_mask=value_mask, causal=True)

    eager, eager_grads, eager_nodes = _results_and_grads(f, (q, v, k, scale))
    assert eager_nodes == {"_AttentionBackward"}, eager_nodes
    _through_operators(monkeypatch)
    op, op_grads, op_nodes = _results_and_grads(f, (q, v, k, scale))
    assert "_AttentionBackward" not in op_nodes, op_nodes
    for got, want in zip(list(eager) + list(eager_grads), list(op) + list(op_grads)):
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy(), err_msg=f"seed {seed}")
    t64 = tuple(t.detach().double().requires_grad_() for t in (q, v, k, scale))
    assert torch.autograd.gradcheck(f, t64), f"seed {seed}"
