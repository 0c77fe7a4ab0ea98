"""fusedrnn.keras on Keras's PyTorch backend (CPU tensors): the layers run the fused loop built on
fusedrnn.torch's autograd ops and compute what the stock Keras layers compute on that backend.

Keras picks its backend once per process (KERAS_BACKEND), so the checks run in one subprocess:
this file run as a script with KERAS_BACKEND=torch. It compares fused and stock layers with the
same weights (outputs, final states, and the torch-autograd gradients of a random loss with
respect to the inputs, the initial states and every weight) over cell x option combinations,
float64, both mixed precision policies, stateful layers, Bidirectional, model training
(train_on_batch losses and weights) and prediction, save/load, and the configurations that must
take Keras's own loop. It counts the calls into fusedrnn.torch's forward and backward ops to prove
which loop ran, and prints one JSON report; the tests below read it, one group each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _package_root() -> str:
    """The folder holding the fusedrnn this process imported (the installed package under CI, the
    source tree with its built extension in a development checkout): the subprocess imports it too."""
    import fusedrnn

    return str(Path(fusedrnn.__file__).resolve().parents[1])


# ================================ the subprocess (KERAS_BACKEND=torch) ================================
class _OpCounter:
    """Counts the runs of fusedrnn.torch's recurrent forward/backward ops (wraps the functions the
    registered operators call) and records each forward's keep_cache flag and input dtype."""

    def __init__(self) -> None:
        from fusedrnn.torch import recurrent_ops

        self.forward = self.backward = 0
        self.keep_cache: List[bool] = []
        self.x_dtypes: List[str] = []
        real_forward, real_backward = recurrent_ops._run_forward, recurrent_ops._run_backward

        def forward(cell: str, x: Any, *args: Any) -> Any:
            self.forward += 1
            self.keep_cache.append(bool(args[-1]))
            self.x_dtypes.append(str(x.dtype))
            return real_forward(cell, x, *args)

        def backward(*args: Any, **kwargs: Any) -> Any:
            self.backward += 1
            return real_backward(*args, **kwargs)

        recurrent_ops._run_forward, recurrent_ops._run_backward = forward, backward

    def take(self) -> Dict[str, Any]:
        """The counts since the last take, then reset."""
        out = {"forward": self.forward, "backward": self.backward, "keep_cache": self.keep_cache,
               "x_dtypes": self.x_dtypes}
        self.forward = self.backward = 0
        self.keep_cache, self.x_dtypes = [], []
        return out


def _script(seed: int) -> Dict[str, Any]:
    import keras
    import torch
    from _keras_recurrent_helpers import (CELLS, NUM_STATES, as_list, assert_all_close, assert_weights_after_adam_close,
                                          loss_weights, random_mask, twin_layers)

    import fusedrnn.keras as fk
    from fusedrnn import _C, reference
    from fusedrnn.keras import _backends

    getattr(_C, "set_poison_outputs", lambda on: None)(True)   # an unwritten output element shows up as NaN
    assert keras.backend.backend() == "torch"
    rng = np.random.default_rng(seed)
    counter = _OpCounter()
    results: Dict[str, Any] = {}

    def check(name: str, fn: Callable[[], None]) -> None:
        counter.take()
        try:
            fn()
            results[name] = "ok"
        except Exception:   # reported, with its traceback, for the test that reads this group
            results[name] = traceback.format_exc(limit=4)[-2500:]

    def expect_ops(forward: int, backward: int) -> None:
        got = counter.take()
        assert (got["forward"], got["backward"]) == (forward, backward), \
            f"fusedrnn.torch ops ran (forward, backward) = {(got['forward'], got['backward'])}, expected {(forward, backward)}"

    def numpy(t: Any) -> np.ndarray:
        return keras.ops.convert_to_numpy(t)

    def run(layer: Any, x: np.ndarray, weights: List[np.ndarray], states: Any = None, mask: Any = None,
            training: bool = False) -> List[Any]:
        """Outputs of the layer and the gradients (torch autograd) of sum_k sum(out_k * weights_k)
        with respect to x, the initial states and the layer's trainable weights."""
        xt = torch.tensor(x, requires_grad=True)
        kwargs: Dict[str, Any] = {"training": training}
        init = None if states is None else [torch.tensor(s, requires_grad=True) for s in states]
        if init is not None:
            kwargs["initial_state"] = init
        if mask is not None:
            kwargs["mask"] = torch.tensor(mask)
        outs = as_list(layer(xt, **kwargs))
        loss = sum((o.to(torch.float64) * torch.tensor(w, dtype=torch.float64)).sum() for o, w in zip(outs, weights))
        loss.backward()
        grads = [xt.grad] + [s.grad for s in (init or [])] + [v.value.grad for v in layer.trainable_weights]
        return [numpy(o) for o in outs] + [None if g is None else numpy(g) for g in grads]

    # -- 1. layers against stock Keras, eagerly: cells x options ------------------------------------
    options = {
        "plain": ({}, {}),
        "mask_initial_state": ({}, {"mask": True, "initial_state": True}),
        "backwards_mask_zero_output": ({"go_backwards": True, "zero_output_for_mask": True}, {"mask": True}),
        "backwards_mask_initial_state": ({"go_backwards": True}, {"mask": True, "initial_state": True}),
        "no_bias_last_output": ({"use_bias": False, "return_sequences": False}, {"initial_state": True}),
        "dropouts_training_mask": ({"dropout": 0.3, "recurrent_dropout": 0.25}, {"training": True, "mask": True}),
        "dropout_backwards_training": ({"dropout": 0.4, "go_backwards": True}, {"training": True, "initial_state": True}),
        "dropouts_inference": ({"dropout": 0.3, "recurrent_dropout": 0.3}, {"training": False}),
        "unroll_mask_no_bias": ({"unroll": True, "use_bias": False}, {"mask": True, "training": True}),
    }
    B, T, I, H = 4, 6, 5, 7

    def layer_case(cell: str, option: str, dtype: str = "float32", rtol: float = 1e-4, atol: float = 2e-5) -> None:
        ctor, call = options[option]
        ctor = {"return_sequences": True, "return_state": True, **ctor, "seed": seed % 1000}
        if dtype == "float64":
            ctor["dtype"] = "float64"
        fused, stock = twin_layers(cell, H, (B, T, I), rng, **ctor)
        assert fused.fused, fused.fused_reason
        x = rng.standard_normal((B, T, I)).astype(dtype)
        n_states = NUM_STATES[CELLS[cell][0]]
        states = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n_states)] if call.get("initial_state") else None
        mask = random_mask(rng, B, T) if call.get("mask") else None
        if option.startswith("backwards_mask") and mask is not None:
            mask[2, :2] = False   # masked steps at the start of a row (processed last under go_backwards)
        weights = loss_weights(rng, [(B, T, H) if ctor["return_sequences"] else (B, H)] + [(B, H)] * n_states)
        got = run(fused, x, weights, states, mask, call.get("training", False))
        expect_ops(1, 1)
        want = run(stock, x, weights, states, mask, call.get("training", False))
        expect_ops(0, 0)
        assert_all_close(got, want, f"{cell}/{option}/{dtype}", seed, rtol=rtol, atol=atol)

    for cell in CELLS:
        for option in options:
            check(f"layer:{cell}/{option}", lambda c=cell, o=option: layer_case(c, o))
    def float64_case(cell: str) -> None:
        # Stock Keras on torch does not keep float64 exactly (SimpleRNN, GRU reset_after=False, and
        # every cell given a mask or initial states differ from a float64 reference by ~1e-7), so:
        # against stock Keras (gradients too) at float32 tolerance, and against the float64 NumPy
        # reference (outputs, final states) at float64 tolerance.
        layer_case(cell, "backwards_mask_initial_state", "float64")
        fused, _ = twin_layers(cell, H, (B, T, I), rng, dtype="float64", return_sequences=True, return_state=True,
                               go_backwards=True)
        x = rng.standard_normal((B, T, I))
        states = [rng.standard_normal((B, H)) for _ in range(NUM_STATES[CELLS[cell][0]])]
        mask = random_mask(rng, B, T)
        got = [numpy(o) for o in as_list(fused(torch.tensor(x), initial_state=[torch.tensor(s) for s in states],
                                               mask=torch.tensor(mask)))]
        weights = [numpy(w) for w in fused.weights]
        options = dict(mask=mask, go_backwards=True)
        if cell == "lstm":
            want = reference.lstm_forward(x, *states, *weights, **options)[:3]
        elif cell.startswith("gru"):
            want = reference.gru_forward(x, *states, *weights, reset_after=fused.cell.reset_after, **options)[:2]
        else:
            want = reference.rnn_forward(x, *states, *weights, activation=CELLS[cell][1].get("activation", "tanh"),
                                         **options)[:2]
        assert_all_close(got, list(want), f"{cell} float64 against the reference", seed, rtol=1e-10, atol=1e-12)

    for cell in CELLS:
        check(f"layer:{cell}/float64", lambda c=cell: float64_case(c))

    # -- 2. mixed precision: the fused loop computes in float32 inside ------------------------------
    def mixed_case(cell: str, policy: str) -> None:
        keras.mixed_precision.set_dtype_policy(policy)
        try:
            fused, stock = twin_layers(cell, H, (B, T, I), rng, return_sequences=True, return_state=True)
        finally:
            keras.mixed_precision.set_dtype_policy("float32")
        assert fused.fused, fused.fused_reason
        x = rng.standard_normal((B, T, I)).astype("float32")
        mask = random_mask(rng, B, T)
        weights = loss_weights(rng, [(B, T, H)] + [(B, H)] * NUM_STATES[CELLS[cell][0]])
        got = run(fused, x, weights, mask=mask)
        expect_ops(1, 1)
        compute = keras.mixed_precision.Policy(policy).compute_dtype
        dtype = as_list(fused(x))[0].dtype
        assert str(dtype) == f"torch.{compute}", f"outputs in {dtype}, expected {compute}"
        assert_all_close(got, run(stock, x, weights, mask=mask), f"{cell} {policy}", seed, rtol=5e-2, atol=5e-2)

    for policy in ("mixed_float16", "mixed_bfloat16"):
        for cell in ("lstm", "gru"):
            check(f"mixed:{cell}/{policy}", lambda c=cell, p=policy: mixed_case(c, p))

    # -- 3. stateful layers: the second call starts where the first ended; reset_state -------------
    def stateful_case(cell: str) -> None:
        # Stock Keras on torch cannot differentiate a stateful layer (its in-place state update
        # breaks autograd), so the stateful twins are compared without gradients, and the fused
        # layer's gradients against a stock layer started from the same states.
        b, t, i, h = 3, 4, 2, 5
        fused, stock = twin_layers(cell, h, (b, t, i), rng, stateful=True, return_sequences=True)
        class_name, cell_kwargs = CELLS[cell]
        plain = getattr(keras.layers, class_name)(h, return_sequences=True, **cell_kwargs)
        plain.build((b, t, i))
        plain.set_weights(fused.get_weights())
        assert fused.fused, fused.fused_reason
        for step in range(2):
            x = rng.standard_normal((b, t, i)).astype("float32")
            weights = loss_weights(rng, [(b, t, h)])
            before = [numpy(s) for s in fused.states]
            got = run(fused, x, weights)   # [outputs, dx, d_weights...]
            want = run(plain, x, weights, states=before)   # [outputs, dx, d_states..., d_weights...]
            assert_all_close(got, want[:2] + want[2 + len(before):], f"{cell} stateful call {step}", seed)
            with torch.no_grad():
                want = numpy(stock(x))
            assert_all_close(got[:1], [want], f"{cell} stateful call {step} against stateful stock", seed)
            assert_all_close([numpy(s) for s in fused.states], [numpy(s) for s in stock.states], "states", seed)
        fused.reset_state()
        stock.reset_state()
        assert not any(np.any(numpy(s)) for s in fused.states), "reset_state left non-zero states"
        x = rng.standard_normal((b, t, i)).astype("float32")
        assert_all_close([numpy(fused(x))], [numpy(stock(x))], f"{cell} after reset_state", seed)
        ran = counter.take()
        assert ran["forward"] == 3 and ran["backward"] == 2, ran

    for cell in ("lstm", "gru", "rnn_tanh"):
        check(f"stateful:{cell}", lambda c=cell: stateful_case(c))

    # -- 4. Bidirectional over a masked sequence (Keras runs each direction's inner_loop) ----------
    def bidirectional_case(class_name: str) -> None:
        layers = [keras.layers.Bidirectional(cls(H, return_sequences=True)) for cls in
                  (getattr(fk, class_name), getattr(keras.layers, class_name))]
        for layer in layers:
            layer.build((B, T, I))
        weights = [(rng.standard_normal(w.shape) * 0.5).astype("float32") for w in layers[0].get_weights()]
        for layer in layers:
            layer.set_weights(weights)
        assert layers[0].forward_layer.fused and layers[0].backward_layer.fused
        x = rng.standard_normal((B, T, I)).astype("float32")
        mask = random_mask(rng, B, T)
        loss = loss_weights(rng, [(B, T, 2 * H)])
        got = run(layers[0], x, loss, mask=mask)
        expect_ops(2, 2)
        assert_all_close(got, run(layers[1], x, loss, mask=mask), f"Bidirectional({class_name})", seed)

    for class_name in ("LSTM", "GRU"):
        check(f"bidirectional:{class_name}", lambda n=class_name: bidirectional_case(n))

    # -- 5. configurations that run Keras's own loop: the very same numbers, no fused op -----------
    def unfused_case(cell: str, kwargs: Dict[str, Any], reason: str) -> None:
        fused, stock = twin_layers(cell, H, (B, T, I), rng, return_sequences=True, **kwargs)
        assert not fused.fused and reason in fused.fused_reason, fused.fused_reason
        x = rng.standard_normal((B, T, I)).astype("float32")
        weights = loss_weights(rng, [(B, T, H)])
        got = run(fused, x, weights, training=True)
        expect_ops(0, 0)
        assert_all_close(got, run(stock, x, weights, training=True), f"{cell} Keras path", seed, rtol=0, atol=0)

    check("unfused:softsign", lambda: unfused_case("lstm", {"activation": "softsign"}, "activation"))
    check("unfused:hard_sigmoid", lambda: unfused_case("gru", {"recurrent_activation": "hard_sigmoid"},
                                                       "recurrent_activation"))
    check("unfused:dropout_1", lambda: unfused_case("lstm", {"dropout": 1.0}, "dropout"))

    def cuda_device_case() -> None:
        real = _backends._torch_device
        _backends._torch_device = lambda: "cuda"
        try:
            fused, stock = twin_layers("lstm", H, (B, T, I), rng, return_sequences=True)
            assert not fused.fused and "'cuda'" in fused.fused_reason, fused.fused_reason
            x = rng.standard_normal((B, T, I)).astype("float32")
            weights = loss_weights(rng, [(B, T, H)])
            got = run(fused, x, weights)
            expect_ops(0, 0)
            assert_all_close(got, run(stock, x, weights), "lstm on a 'cuda' Keras device", seed, rtol=0, atol=0)
        finally:
            _backends._torch_device = real
        assert _backends.on_gpu(torch.empty(2, device="meta")) and not _backends.on_gpu(torch.empty(2))

    check("unfused:cuda_device", cuda_device_case)

    def attention_case() -> None:
        for layer in (fk.Attention(), fk.AdditiveAttention()):
            assert not layer.fused and "'torch'" in layer.fused_reason and "'tensorflow'" in layer.fused_reason, \
                layer.fused_reason
        q, v = rng.standard_normal((2, 3, 4)).astype("float32"), rng.standard_normal((2, 5, 4)).astype("float32")
        assert np.array_equal(numpy(fk.Attention()([q, v])), numpy(keras.layers.Attention()([q, v])))

    check("unfused:attention_stays_tensorflow_only", attention_case)

    def empty_and_non_finite() -> None:
        out = as_list(fk.GRU(4, return_sequences=True, return_state=True)(np.zeros((0, 3, 2), np.float32)))
        assert [tuple(o.shape) for o in out] == [(0, 3, 4), (0, 4)], [o.shape for o in out]
        x = rng.standard_normal((2, 3, 4)).astype("float32")
        x[1, 2, 3] = np.nan
        try:
            fk.LSTM(3)(x)
        except Exception as e:   # the op's argument check, named
            assert "x: contains NaN or inf" in str(e), str(e)
        else:
            raise AssertionError("a NaN input raised nothing")

    check("edge:empty_batch_and_nan", empty_and_non_finite)

    # -- 6. one-hot inputs with no gradient wanted run as integer ids ------------------------------
    def one_hot_case(cell: str) -> None:
        fused, stock = twin_layers(cell, H, (B, T, I), rng, return_sequences=True)
        x = np.eye(I, dtype="float32")[rng.integers(0, I, (B, T))]
        with torch.no_grad():
            got = numpy(fused(torch.tensor(x)))
            ran = counter.take()
            assert ran["x_dtypes"] == ["torch.int32"] and ran["keep_cache"] == [False], ran
            assert_all_close([got], [numpy(stock(torch.tensor(x)))], f"{cell} one-hot as ids", seed)

    for cell in ("lstm", "gru", "rnn_relu"):
        check(f"one_hot:{cell}", lambda c=cell: one_hot_case(c))

    # -- 7. training: train_on_batch losses and weights, predict, save/load -------------------------
    def build_models(kind: str) -> List[Any]:
        models = []
        for lib in (fk, keras.layers):
            if kind == "sentiment":   # Embedding(mask_zero) -> LSTM with both dropouts -> GRU backwards
                inputs = keras.Input((9,), dtype="int32")
                y = keras.layers.Embedding(30, 8, mask_zero=True)(inputs)
                y = lib.LSTM(6, dropout=0.2, recurrent_dropout=0.2, seed=11, return_sequences=True)(y)
                y = lib.GRU(5, go_backwards=True, reset_after=False)(y)
            else:   # one-hot characters -> Bidirectional SimpleRNN -> LSTM
                inputs = keras.Input((7, 6))
                y = keras.layers.Bidirectional(lib.SimpleRNN(5, return_sequences=True))(inputs)
                y = lib.LSTM(4)(y)
            model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(y))
            model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
            models.append(model)
        models[1].set_weights([(rng.standard_normal(w.shape) * 0.4).astype(w.dtype) for w in models[1].get_weights()])
        models[0].set_weights(models[1].get_weights())
        return models

    def training_case(kind: str) -> None:
        fused, stock = build_models(kind)
        if kind == "sentiment":
            x = rng.integers(1, 30, (24, 9)).astype("int32")
            x[:, :3] *= rng.random((24, 3)) < 0.5   # zeros (masked steps) at the start of some rows
        else:
            x = np.eye(6, dtype="float32")[rng.integers(0, 6, (24, 7))]
        y = (rng.random((24, 1)) < 0.5).astype("float32")
        n_layers = 2 if kind == "sentiment" else 3
        losses = []
        for model in (fused, stock):
            counter.take()
            losses.append([float(model.train_on_batch(x[i:i + 8], y[i:i + 8])) for i in range(0, 24, 8)])
            ran = counter.take()
            if model is fused:
                assert ran["forward"] == ran["backward"] == 3 * n_layers and all(ran["keep_cache"]), ran
                if kind == "chars":   # the one-hot input needs no gradient under fit: run as ids
                    assert ran["x_dtypes"].count("torch.int32") == 6, ran["x_dtypes"]
            else:
                assert ran["forward"] == 0, ran
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5, err_msg=f"{kind}: train_on_batch losses")
        assert_weights_after_adam_close(fused.get_weights(), stock.get_weights(), f"{kind} weights after 3 steps",
                                        seed, learning_rate=0.02, steps=3)
        got = fused.predict(x, batch_size=8, verbose=0)
        ran = counter.take()
        assert ran["forward"] == 3 * n_layers and not any(ran["keep_cache"]), ran   # no per-step caches
        assert_all_close([got], [stock.predict(x, batch_size=8, verbose=0)], f"{kind} predict", seed)
        path = os.path.join(os.environ["FUSEDRNN_TMP"], f"{kind}.keras")
        fused.save(path)
        loaded = keras.models.load_model(path)
        rnns = [getattr(layer, "forward_layer", layer) for layer in loaded.layers]
        rnns = [layer for layer in rnns if isinstance(layer, keras.layers.RNN)]
        assert len(rnns) == 2 and all(isinstance(layer, (fk.SimpleRNN, fk.LSTM, fk.GRU)) and layer.fused
                                      for layer in rnns), [type(layer) for layer in rnns]
        counter.take()
        assert_all_close([loaded.predict(x, batch_size=8, verbose=0)], [got], f"{kind} after save/load", seed,
                         rtol=0, atol=0)
        assert counter.take()["forward"] == 3 * n_layers

    check("fit:sentiment", lambda: training_case("sentiment"))
    check("fit:chars", lambda: training_case("chars"))
    return results


def _main() -> None:
    seed = int(sys.argv[1])
    print("REPORT" + json.dumps(_script(seed)))


if __name__ == "__main__":
    _main()


# ================================ the tests (any backend in this process) ================================
@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Dict[str, str]:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    seed = int(os.environ.get("FUSEDRNN_TEST_SEED") or np.random.SeedSequence().entropy % 2**32)
    print(f"random seed: {seed} (rerun with FUSEDRNN_TEST_SEED={seed})")
    env = {**os.environ, "KERAS_BACKEND": "torch", "FUSEDRNN_TMP": str(tmp_path_factory.mktemp("keras_torch")),
           "PYTHONPATH": os.pathsep.join([_package_root(), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(Path(__file__)), str(seed)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")), None)
    assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {**json.loads(line[len("REPORT"):]), "_seed": str(seed)}


def _assert_group(report: Dict[str, str], prefix: str, at_least: int) -> None:
    group = {k: v for k, v in report.items() if k.startswith(prefix)}
    assert len(group) >= at_least, f"{prefix}: {len(group)} checks ran, expected at least {at_least}"
    failed = {k: v for k, v in group.items() if v != "ok"}
    assert not failed, f"seed {report['_seed']}:\n" + "\n".join(f"--- {k}\n{v}" for k, v in failed.items())


def test_layers_match_stock_keras_on_torch(report):
    """5 cells x 9 option sets (masks, initial states, go_backwards, zero_output_for_mask, no bias,
    dropouts in training and inference, unroll) + float64: outputs, states, gradients; 1 fused
    forward and 1 fused backward op per call."""
    _assert_group(report, "layer:", 50)


def test_mixed_precision_on_torch(report):
    _assert_group(report, "mixed:", 4)


def test_stateful_on_torch(report):
    _assert_group(report, "stateful:", 3)


def test_bidirectional_on_torch(report):
    _assert_group(report, "bidirectional:", 2)


def test_unfused_configurations_run_keras_loop_on_torch(report):
    _assert_group(report, "unfused:", 5)


def test_edge_cases_on_torch(report):
    _assert_group(report, "edge:", 1)


def test_one_hot_inputs_run_as_ids_on_torch(report):
    _assert_group(report, "one_hot:", 3)


def test_training_predict_save_load_on_torch(report):
    _assert_group(report, "fit:", 2)
