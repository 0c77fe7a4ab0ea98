"""fusedrnn.torch's attention modules against the NumPy layers (themselves checked against Keras)
and, for gradients, against the attention formulas written in plain torch operations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _torch_helpers import one_kernel_thread  # noqa: E402,F401 - autouse fixture

import fusedrnn.layers as np_layers  # noqa: E402
import fusedrnn.torch as ft  # noqa: E402
from fusedrnn.torch.attention import _attention_in_torch  # noqa: E402

B, TQ, TV, D = 3, 4, 5, 6


def _reference(kind, query, value, key, scale, query_mask, value_mask, causal):
    """The attention formulas in torch operations, written independently of the library (masked
    keys excluded, fully masked rows zero)."""
    key = value if key is None else key
    if kind == "dot":
        scores = torch.einsum("bid,bjd->bij", query, key) * (1.0 if scale is None else scale)
    else:
        w = torch.ones(query.shape[-1], dtype=query.dtype) if scale is None else scale
        scores = (torch.tanh(query.unsqueeze(2) + key.unsqueeze(1)) * w).sum(-1)
    allowed = torch.ones(scores.shape, dtype=torch.bool)
    if value_mask is not None:
        allowed &= value_mask.unsqueeze(1)
    if causal:
        i = torch.arange(scores.shape[1])[:, None]
        j = torch.arange(scores.shape[2])[None, :]
        allowed &= (j <= i)
    row_max = scores.masked_fill(~allowed, -torch.inf).amax(-1, keepdim=True).detach()
    row_max = torch.where(allowed.any(-1, keepdim=True), row_max, torch.zeros_like(row_max))
    e = torch.exp((scores - row_max).masked_fill(~allowed, -torch.inf))
    total = e.sum(-1, keepdim=True)
    weights = torch.where(total > 0, e / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(e))
    context = weights @ value
    if query_mask is not None:
        context = context * query_mask.unsqueeze(-1)
    return context, weights


def _data(seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, TQ, D, generator=g, dtype=dtype).requires_grad_()
    v = torch.randn(B, TV, D, generator=g, dtype=dtype).requires_grad_()
    k = torch.randn(B, TV, D, generator=g, dtype=dtype).requires_grad_()
    value_mask = torch.rand(B, TV, generator=g) > 0.3
    value_mask[0] = False  # one fully masked row
    query_mask = torch.rand(B, TQ, generator=g) > 0.3
    return q, v, k, query_mask, value_mask


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("with_key", [False, True], ids=["no_key", "key"])
@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_attention_modules_match_reference_and_numpy_layers(kind, with_key, causal, seed):
    torch.manual_seed(seed)
    q, v, k, query_mask, value_mask = _data(seed)
    module = (ft.LuongAttention(use_scale=True, dtype=torch.float64) if kind == "dot"
              else ft.AdditiveAttention(D, dtype=torch.float64))
    with torch.no_grad():
        module.scale.mul_(0.7)
    assert module.fused
    key = k if with_key else None
    context, weights = module(q, v, key, query_mask=query_mask, value_mask=value_mask, causal=causal)
    want_c, want_w = _reference(kind, q, v, key, module.scale, query_mask, value_mask, causal)
    torch.testing.assert_close(context, want_c, msg=lambda m: f"seed {seed}: {m}")
    torch.testing.assert_close(weights, want_w, msg=lambda m: f"seed {seed}: {m}")
    # gradients of every input and the scale
    g = torch.Generator().manual_seed(seed + 1)
    wc, ww = torch.randn(context.shape, generator=g, dtype=context.dtype), torch.randn(weights.shape, generator=g,
                                                                                          dtype=weights.dtype)
    leaves = [q, v, module.scale] + ([k] if with_key else [])
    got = torch.autograd.grad((context * wc).sum() + (weights * ww).sum(), leaves)
    want = torch.autograd.grad((want_c * wc).sum() + (want_w * ww).sum(), leaves)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, msg=lambda m: f"seed {seed}: {m}")
    # the NumPy layer (Keras's semantics) gives the same numbers
    layer = np_layers.Attention(use_scale=True, dtype="float64") if kind == "dot" else \
        np_layers.AdditiveAttention(dtype="float64")
    layer.set_weights([module.scale.detach().numpy()])
    inputs = [q.detach().numpy(), v.detach().numpy()] + ([k.detach().numpy()] if with_key else [])
    np_c, np_w = layer(inputs, mask=[query_mask.numpy(), value_mask.numpy()], return_attention_scores=True,
                       use_causal_mask=causal)
    np.testing.assert_allclose(context.detach().numpy(), np_c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights.detach().numpy(), np_w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_torch_formulas_off_the_cpu_path_match_the_kernels(kind, seed):
    """The path for tensors the kernels cannot take (CUDA, half precision) gives the kernels' numbers."""
    q, v, k, query_mask, value_mask = _data(seed)
    scale = torch.tensor(0.8, dtype=torch.float64) if kind == "dot" else torch.rand(D, dtype=torch.float64)
    op = ft.ops.dot_attention if kind == "dot" else ft.ops.additive_attention
    want = op(q, v, k, scale=scale, query_mask=query_mask, value_mask=value_mask, causal=True)
    got = _attention_in_torch(kind, q, v, k, scale, query_mask, value_mask, True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    bf16 = torch.bfloat16
    half = ft.LuongAttention(use_scale=True, dtype=bf16) if kind == "dot" else ft.AdditiveAttention(D, dtype=bf16)
    assert not half.fused
    c16, _ = half(q.detach().bfloat16(), v.detach().bfloat16())
    assert c16.dtype == torch.bfloat16 and c16.shape == (B, TQ, D)


@pytest.mark.parametrize("use_bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("step", [False, True], ids=["sequence", "one_step"])
def test_bahdanau_matches_the_numpy_layer(step, use_bias, seed):
    torch.manual_seed(seed)
    Dq, Dv, U = 3, 4, 5
    module = ft.BahdanauAttention(Dq, Dv, U, bias=use_bias, dtype=torch.float64)
    if use_bias:
        torch.nn.init.uniform_(module.query_proj.bias, -0.5, 0.5)
    g = torch.Generator().manual_seed(seed)
    query = torch.randn((B, Dq) if step else (B, TQ, Dq), generator=g, dtype=torch.float64).requires_grad_()
    values = torch.randn(B, TV, Dv, generator=g, dtype=torch.float64).requires_grad_()
    value_mask = torch.rand(B, TV, generator=g) > 0.3
    value_mask[:, 0] = True
    query_mask = None if step else torch.rand(B, TQ, generator=g) > 0.3
    context, weights = module(query, values, value_mask=value_mask, query_mask=query_mask)

    layer = np_layers.BahdanauAttention(U, use_bias=use_bias, dtype="float64")
    weights_np = [module.query_proj.weight.detach().numpy().T, module.key_proj.weight.detach().numpy().T,
                  module.v.detach().numpy()] + ([module.query_proj.bias.detach().numpy()] if use_bias else [])
    layer.set_weights(weights_np)
    np_c, np_w = layer(np.ascontiguousarray(query.detach().numpy()), values.detach().numpy(),
                       value_mask=value_mask.numpy(), query_mask=None if query_mask is None else query_mask.numpy())
    np.testing.assert_allclose(context.detach().numpy(), np_c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights.detach().numpy(), np_w, rtol=1e-12, atol=1e-12)

    dc = torch.randn(context.shape, generator=g, dtype=torch.float64)
    params = [module.query_proj.weight, module.key_proj.weight, module.v] + ([module.query_proj.bias] if use_bias else [])
    grads = torch.autograd.grad((context * dc).sum(), [query, values] + params)
    d_query, d_values = layer.backward(dc.numpy())
    np.testing.assert_allclose(grads[0].numpy(), d_query, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1].numpy(), d_values, rtol=1e-10, atol=1e-12)
    for k, (got, want) in enumerate(zip(grads[2:], layer.grads)):
        got = got.numpy().T if k < 2 else got.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"param {k}, seed {seed}")

    keys = module.project_keys(values)
    again = module(query, values, value_mask=value_mask, query_mask=query_mask, projected_keys=keys)
    torch.testing.assert_close(again[0], context, rtol=0, atol=0)


def test_bahdanau_compiles_without_graph_breaks(seed):
    torch.manual_seed(seed)
    module = ft.BahdanauAttention(3, 4, 5)
    query, values = torch.randn(2, 3), torch.randn(2, 6, 4)
    want = module(query, values)
    got = torch.compile(module, backend="aot_eager", fullgraph=True)(query, values)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_attention_modules_have_keras_shaped_parameters_and_name_bad_arguments():
    assert ft.LuongAttention().scale is None and ft.LuongAttention(use_scale=True).scale.shape == ()
    assert ft.LuongAttention(use_scale=True).scale.item() == 1.0
    scale = ft.AdditiveAttention(12).scale
    assert scale.shape == (12,) and scale.abs().max() <= (3 / 12) ** 0.5
    with pytest.raises(ValueError, match="dim: expected a positive integer"):
        ft.AdditiveAttention(0)
    with pytest.raises(ValueError, match="units: expected a positive integer"):
        ft.BahdanauAttention(3, 4, 0)
    module = ft.BahdanauAttention(3, 4, 5)
    with pytest.raises(ValueError, match="query: expected \\(batch, query_size\\)"):
        module(torch.randn(2, 3, 4, 3), torch.randn(2, 6, 4))
    with pytest.raises(ValueError, match="query_mask: only for a 3-D query"):
        module(torch.randn(2, 3), torch.randn(2, 6, 4), query_mask=torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="value: batch size 3 does not match the query's 2"):
        ft.LuongAttention()(torch.randn(2, 3, 4), torch.randn(3, 5, 4))
