"""fusedrnn.torch.RNN/LSTM/GRU against torch.nn with the same state_dict: outputs, final states
and the gradients of the input, the initial states and every parameter, for the constructor
options and their combinations, padded and packed input, given and default hx."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _torch_helpers import one_kernel_thread  # noqa: E402,F401 - autouse fixture
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import fusedrnn.torch as ft  # noqa: E402

CELLS = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}), "lstm": ("LSTM", {}),
         "gru": ("GRU", {})}
CONFIGS = {
    "defaults": {},
    "bidirectional_2_layers": {"num_layers": 2, "bidirectional": True},
    "batch_first_no_bias": {"batch_first": True, "bias": False},
    "3_layers_bidirectional_batch_first_dropout": {"num_layers": 3, "bidirectional": True, "batch_first": True,
                                                   "dropout": 0.25},
}
I, H = 4, 5
F32 = {"rtol": 1e-4, "atol": 2e-5}


def _pair(cell, seed, **kwargs):
    """(torch.nn module, fusedrnn.torch module with its state_dict), in eval mode."""
    name, extra = CELLS[cell]
    torch.manual_seed(seed)
    ref = getattr(torch.nn, name)(I, H, **extra, **kwargs)
    fused = getattr(ft, name)(I, H, **extra, **kwargs)
    fused.load_state_dict(ref.state_dict())
    return ref.eval(), fused.eval()


def _hx(module, batch, seed, unbatched=False):
    g = torch.Generator().manual_seed(seed + 1)
    layers = module.num_layers * (2 if module.bidirectional else 1)
    shape = (layers, H) if unbatched else (layers, batch, H)
    states = [(0.5 * torch.randn(shape, generator=g, dtype=module.weight_hh_l0.dtype)).requires_grad_()
              for _ in range(2 if module.mode == "LSTM" else 1)]
    return tuple(states) if len(states) == 2 else states[0]


def _flat(result):
    """(output tensor, [final states]) of a module call; packed output as its data."""
    output, finals = result
    output = output.data if isinstance(output, torch.nn.utils.rnn.PackedSequence) else output
    return output, list(finals) if isinstance(finals, tuple) else [finals]


def _run(module, x, hx, seed):
    """Calls the module and back-propagates a random linear function of every result; returns
    (results, gradients of x, of hx and of every parameter in order)."""
    output, finals = _flat(module(x, hx))
    g = torch.Generator().manual_seed(seed + 2)
    loss = sum((torch.randn(t.shape, generator=g, dtype=t.dtype) * t).sum() for t in [output] + finals)
    leaves = [x.data if hasattr(x, "batch_sizes") else x]
    leaves += [] if hx is None else list(hx) if isinstance(hx, tuple) else [hx]
    leaves += list(module.parameters())
    grads = torch.autograd.grad(loss, leaves)
    return [output] + finals, grads


def _compare(ref_module, fused_module, x, hx, seed, tol=F32):
    assert fused_module.fused
    got, got_grads = _run(fused_module, x, hx, seed)
    want, want_grads = _run(ref_module, x, hx, seed)
    for k, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"result {k}, seed {seed}: {m}")
    for k, (a, b) in enumerate(zip(got_grads, want_grads)):
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"gradient {k}, seed {seed}: {m}")


@pytest.fixture(params=[False, True], ids=["default_hx", "given_hx"])
def given_hx(request):
    return request.param


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("cell", CELLS)
def test_padded_input_matches_torch_nn(cell, config, given_hx, seed):
    ref, fused = _pair(cell, seed, **CONFIGS[config])
    B, T = 3, 6
    shape = (B, T, I) if fused.batch_first else (T, B, I)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    hx = _hx(fused, B, seed) if given_hx else None
    _compare(ref, fused, x, hx, seed)


@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input_matches_torch_nn(cell, given_hx, seed):
    ref, fused = _pair(cell, seed, num_layers=2, bidirectional=True)
    x = torch.randn((5, I), generator=torch.Generator().manual_seed(seed)).requires_grad_()
    hx = _hx(fused, 1, seed, unbatched=True) if given_hx else None
    _compare(ref, fused, x, hx, seed)


@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("cell", CELLS)
def test_packed_input_matches_torch_nn(cell, enforce_sorted, given_hx, seed):
    """Variable lengths, both directions, two layers: outputs (packed), h_n at each sequence's
    last valid step, gradients."""
    batch_first = not enforce_sorted
    ref, fused = _pair(cell, seed, num_layers=2, bidirectional=True, batch_first=batch_first)
    g = torch.Generator().manual_seed(seed)
    B, T = 5, 7
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[int(torch.randint(0, B, (1,), generator=g))] = T
    if enforce_sorted:
        lengths = lengths.sort(descending=True).values
    padded = torch.randn((B, T, I) if batch_first else (T, B, I), generator=g)
    packed = pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    packed.data.requires_grad_()
    hx = _hx(fused, B, seed) if given_hx else None
    _compare(ref, fused, packed, hx, seed)
    out_fused, _ = fused(packed, hx)
    out_ref, _ = ref(packed, hx)
    assert torch.equal(out_fused.batch_sizes, out_ref.batch_sizes)
    for a, b in ((out_fused.sorted_indices, out_ref.sorted_indices), (out_fused.unsorted_indices,
                                                                       out_ref.unsorted_indices)):
        assert (a is None and b is None) or torch.equal(a, b)
    unpacked, unpacked_lengths = pad_packed_sequence(out_fused, batch_first=batch_first)
    want, _ = pad_packed_sequence(out_ref, batch_first=batch_first)
    torch.testing.assert_close(unpacked, want, **F32)
    assert torch.equal(unpacked_lengths, lengths)


def test_float64_matches_torch_nn_tightly(seed):
    name, _ = CELLS["lstm"]
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64).eval()
    fused = ft.LSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64).eval()
    fused.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 3, 1, 6])
    x = pack_padded_sequence(torch.randn(6, 4, I, generator=g, dtype=torch.float64), lengths, enforce_sorted=False)
    x.data.requires_grad_()
    _compare(ref, fused, x, _hx(fused, 4, seed), seed, tol={"rtol": 1e-10, "atol": 1e-12})


# -- parameters, state_dict, initialisation -------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_parameters_state_dict_and_initialisation_are_torch_nn_s(cell, seed):
    name, extra = CELLS[cell]
    kwargs = dict(num_layers=2, bidirectional=True, **extra)
    torch.manual_seed(seed)
    ref = getattr(torch.nn, name)(I, H, **kwargs)
    torch.manual_seed(seed)
    fused = getattr(ft, name)(I, H, **kwargs)
    assert isinstance(fused, torch.nn.RNNBase) and fused.mode == ref.mode
    ref_params, fused_params = dict(ref.named_parameters()), dict(fused.named_parameters())
    assert list(fused_params) == list(ref_params)
    assert "weight_hh_l1_reverse" in fused_params and "bias_ih_l0" in fused_params
    for key, p in ref_params.items():
        assert torch.equal(fused_params[key], p), key  # the same initialisation from the same seed
    # load_state_dict both ways
    other = getattr(torch.nn, name)(I, H, **kwargs)
    other.load_state_dict(fused.state_dict())
    fused2 = getattr(ft, name)(I, H, **kwargs)
    fused2.load_state_dict(other.state_dict())
    for key, p in fused2.state_dict().items():
        assert torch.equal(p, ref.state_dict()[key]), key


def test_fused_is_read_only_and_says_which_path_runs(seed):
    m = ft.GRU(I, H)
    assert m.fused
    with pytest.raises(AttributeError):
        m.fused = False
    assert not ft.LSTM(I, H, proj_size=2).fused
    assert not ft.GRU(I, H, dtype=torch.bfloat16).fused
    assert ft.RNN(I, H, dtype=torch.float64).fused


def test_unfused_configurations_run_torch_nn(seed):
    """proj_size > 0 and bfloat16 run torch.nn's implementation: exactly torch.nn's results."""
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(I, H, proj_size=3, num_layers=2)
    fused = ft.LSTM(I, H, proj_size=3, num_layers=2)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(4, 2, I)
    (a, (h, c)), (b, (h2, c2)) = fused(x), ref(x)
    assert torch.equal(a, b) and torch.equal(h, h2) and torch.equal(c, c2)
    ref16 = torch.nn.GRU(I, H, dtype=torch.bfloat16)
    m16 = ft.GRU(I, H, dtype=torch.bfloat16)
    m16.load_state_dict(ref16.state_dict())
    x16 = x.bfloat16()
    assert torch.equal(m16(x16)[0], ref16(x16)[0])


def test_empty_batch_runs_torch_nn():
    ref, fused = _pair("lstm", 0)
    out, (h, c) = fused(torch.zeros(3, 0, I))
    assert out.shape == (3, 0, H) and h.shape == (1, 0, H)


# -- training-time behaviour ----------------------------------------------------------------------
def test_dropout_between_layers_in_training_only(seed):
    ref, fused = _pair("gru", seed, num_layers=2, dropout=0.5)
    x = torch.randn(6, 3, I, generator=torch.Generator().manual_seed(seed))
    eval_out, _ = fused(x)
    torch.testing.assert_close(eval_out, ref(x)[0], **F32)
    fused.train()
    torch.manual_seed(seed)
    train_a, h_a = fused(x)
    torch.manual_seed(seed)
    train_b, _ = fused(x)
    assert torch.equal(train_a, train_b)  # the dropout draws come from torch's generator
    assert not torch.allclose(train_a, eval_out)  # the second layer sees a dropped-out input
    no_dropout = ft.GRU(I, H, num_layers=2, dropout=0.0).train()
    no_dropout.load_state_dict(fused.state_dict())
    torch.testing.assert_close(no_dropout(x)[0], eval_out, rtol=0, atol=0)


def test_trains_with_an_optimizer(seed):
    torch.manual_seed(seed)
    model = ft.LSTM(I, H, batch_first=True)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=0.05)
    x = torch.randn(8, 5, I)
    y = x.sum(dim=(1, 2), keepdim=False)[:, None].sign()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out, _ = model(x)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"seed {seed}: {losses[0]} -> {losses[-1]}"


def test_torch_compile_fullgraph_gives_the_same_results(seed):
    ref, fused = _pair("lstm", seed, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 5, I, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    hx = _hx(fused, 3, seed)
    compiled = torch.compile(fused, backend="aot_eager", fullgraph=True)
    got, got_grads = _run(compiled, x, hx, seed)
    want, want_grads = _run(ref, x, hx, seed)
    for a, b in zip(got + list(got_grads), want + list(want_grads)):
        torch.testing.assert_close(a, b, **F32)


def test_torch_compile_with_packed_input(seed):
    ref, fused = _pair("gru", seed, bidirectional=True)
    lengths = torch.tensor([4, 2, 3])
    x = pack_padded_sequence(torch.randn(4, 3, I, generator=torch.Generator().manual_seed(seed)), lengths,
                             enforce_sorted=False)
    compiled = torch.compile(fused, backend="aot_eager")
    got, want = _flat(compiled(x)), _flat(ref(x))
    for a, b in zip([got[0]] + got[1], [want[0]] + want[1]):
        torch.testing.assert_close(a, b, **F32)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_raises_naming_input_or_hx():
    m = ft.LSTM(I, H)
    x = torch.randn(5, 2, I)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        m(x[None])
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 3"):
        m(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="input dtype \\(torch.float64\\) does not match weight dtype"):
        m(x.double())
    with pytest.raises(TypeError, match="hx: expected a tuple \\(h_0, c_0\\)"):
        m(x, torch.zeros(1, 2, H))
    with pytest.raises(RuntimeError, match="Expected hidden\\[0\\] size \\(1, 2, 5\\), got \\[1, 3, 5\\]"):
        m(x, (torch.zeros(1, 3, H), torch.zeros(1, 3, H)))
    with pytest.raises(ValueError, match="hx: expected torch.float32 tensors on cpu"):
        m(x, (torch.zeros(1, 2, H, dtype=torch.float64), torch.zeros(1, 2, H)))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx should also be 2-D"):
        ft.GRU(I, H)(x[:, 0], torch.zeros(1, 2, H))
    with pytest.raises(ValueError, match="x: contains NaN or inf"):
        m(torch.full((5, 2, I), float("nan")))


def test_inference_reuses_the_mapped_weights_until_the_parameters_change(seed):
    """Under no_grad the Keras-layout weights are kept between calls, packed once for the kernels;
    an in-place update of a Parameter (an optimizer step, load_state_dict) is seen by the next call."""
    ref, fused = _pair("gru", seed, bidirectional=True)
    x = torch.randn(4, 2, I, generator=torch.Generator().manual_seed(seed))

    def packs():
        return [mapped.packed.packs for _, mapped in fused.__dict__["_keras_weights"]._kept.values()]

    with torch.no_grad():
        torch.testing.assert_close(fused(x)[0], ref(x)[0], **F32)
        torch.testing.assert_close(fused(x)[0], ref(x)[0], **F32)
        assert packs() == [1, 1], f"seed {seed}: each direction packed once for two calls, got {packs()}"
        for p in list(fused.parameters()) + list(ref.parameters()):
            p.mul_(0.5)
        torch.testing.assert_close(fused(x)[0], ref(x)[0], **F32)
        assert packs() == [1, 1], f"seed {seed}: the changed weights packed anew, once, got {packs()}"
        fused.load_state_dict(_pair("gru", seed + 7, bidirectional=True)[0].state_dict())
        ref.load_state_dict(fused.state_dict())
        torch.testing.assert_close(fused(x)[0], ref(x)[0], **F32)
    _compare(ref, fused, x.requires_grad_(), None, seed)  # and autograd still reaches the Parameters


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell", list(CELLS))
def test_inference_mode_runs_the_packed_weights_and_matches_torch_nn(cell, dtype, seed):
    """Under torch.inference_mode (inference tensors) the packed path gives torch.nn's outputs and
    final states, call after call, for every cell, two layers, both directions."""
    ref, fused = _pair(cell, seed, num_layers=2, bidirectional=True, batch_first=True)
    ref.to(dtype), fused.to(dtype)
    x = torch.randn(3, 5, I, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    tol = F32 if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    with torch.inference_mode():
        want = ref(x)
        for _ in range(2):
            got = fused(x)
            torch.testing.assert_close(got[0], want[0], **tol, msg=f"seed {seed}")
            states = (got[1], want[1]) if cell == "lstm" else ((got[1],), (want[1],))
            for a, b in zip(*states):
                torch.testing.assert_close(a, b, **tol, msg=f"seed {seed}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_reuses_mapped_weights_within_a_step_and_sees_every_update(cell, seed):
    """With autograd the Keras-layout weights are kept too: two forwards in one step accumulate the
    same gradients as torch.nn's, and every optimizer step (an in-place update) is seen by the
    next forward; assigning new Parameters is seen as well."""
    ref, fused = _pair(cell, seed, bidirectional=True, num_layers=2)
    ref.train(), fused.train()
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(4, 3, I, generator=g) for _ in range(2)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (ref, fused)]
    for _ in range(3):
        for m, opt in zip((ref, fused), opts):
            opt.zero_grad()
            for x in xs:  # gradient accumulation: two forwards, two backwards, one step
                (m(x)[0] ** 2).sum().backward()
        for (name, a), b in zip(ref.named_parameters(), fused.parameters()):
            torch.testing.assert_close(b.grad, a.grad, **F32, msg=f"{name}: seed {seed}")
        for opt in opts:
            opt.step()
    for a, b in zip(ref.parameters(), fused.parameters()):
        torch.testing.assert_close(b, a, **F32)
    replaced = _pair(cell, seed + 3, bidirectional=True, num_layers=2)[0]
    for name, p in replaced.named_parameters():
        setattr(ref, name, torch.nn.Parameter(p.detach().clone()))
        setattr(fused, name, torch.nn.Parameter(p.detach().clone()))
    torch.testing.assert_close(fused(xs[0])[0], ref(xs[0])[0], **F32)


@pytest.mark.parametrize("cell", list(CELLS))
def test_eager_path_and_operators_give_identical_results_and_gradients(cell, seed, monkeypatch):
    """The eager path (kept Keras-layout weights, one autograd node per layer and direction that
    maps the gradients back to the Parameters) and the path torch.compile traces (differentiable
    weight mapping, the registered operators) give the same bits."""
    from fusedrnn.torch import recurrent, recurrent_ops

    _, fused = _pair(cell, seed, num_layers=2, bidirectional=True, bias=cell != "gru")
    x = torch.randn(5, 3, I, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    hx = _hx(fused, 3, seed)
    eager, eager_grads = _run(fused, x, hx, seed)
    monkeypatch.setattr(recurrent, "_eager", lambda tensors: False)
    monkeypatch.setattr(recurrent_ops, "_eager", lambda tensors: False)
    traced, traced_grads = _run(fused, x, hx, seed)
    for a, b in zip(eager + list(eager_grads), traced + list(traced_grads)):
        assert torch.equal(a, b), f"seed {seed}"


def test_frozen_parameters_get_no_gradient_but_the_input_does(seed):
    ref, fused = _pair("gru", seed, num_layers=2)
    for m in (ref, fused):
        m.requires_grad_(False)
    x = torch.randn(4, 2, I, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    grads = [torch.autograd.grad(m(x)[0].square().sum(), x)[0] for m in (ref, fused)]
    torch.testing.assert_close(grads[1], grads[0], **F32)
    assert all(p.grad is None for p in fused.parameters())
