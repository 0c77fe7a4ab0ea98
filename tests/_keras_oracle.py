"""Test helpers: random recurrent problems, uniform calling of the ops, and a
Keras 3 / TensorFlow oracle.

* :func:`make_problem` draws a random problem (inputs, weights, options) for
  one of the :data:`VARIANTS`.
* :meth:`Problem.forward` / :meth:`Problem.backward` call any module that
  implements the ``fusedrnn.ops`` contract (``fusedrnn.ops`` itself or
  ``fusedrnn.reference``) with the problem's arguments.
* :func:`keras_run` evaluates ``keras.layers.SimpleRNN`` / ``LSTM`` / ``GRU``
  (``return_sequences=True, return_state=True``) on the same weights, inputs,
  ``mask=`` and ``initial_state=`` and differentiates with
  ``tf.GradientTape`` the scalar loss::

      L = sum(outputs * d_outputs) + sum(h_last * d_h_last) (+ sum(c_last * d_c_last))

  so that its gradients are directly comparable to the ``*_backward`` results
  for the incoming gradients ``(d_outputs, d_h_last[, d_c_last])``.

Dropout: Keras draws its masks at random, so the oracle monkeypatches the
cell's ``get_dropout_mask`` / ``get_recurrent_dropout_mask`` (from
``keras.src.layers.rnn.dropout_rnn_cell.DropoutRNNCell``) to return the
problem's masks and calls the layer with ``training=True``.  Per-gate masks
(and any recurrent mask) need the cell's ``implementation=1`` (one mask per
gate; Keras itself switches to it whenever ``recurrent_dropout > 0``); a
single (B, I) input mask alone goes through the default ``implementation=2``.

TensorFlow is imported lazily, once per session, on the first Keras call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}

#: variant name -> (cell, cell-specific keyword options)
VARIANTS = {
    "rnn_tanh": ("rnn", {"activation": "tanh"}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "lstm": ("lstm", {}),
    "gru_reset_after": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
}

MASK_KINDS = (None, "random", "prepad", "postpad")
DROPOUT_KINDS = (None, "shared", "per_gate")   # (B, n) or (G, B, n)


def grad_names(cell):
    """Names of the backward results, in order."""
    states = ["dh0", "dc0"] if cell == "lstm" else ["dh0"]
    return ["dx"] + states + ["d_kernel", "d_recurrent_kernel", "d_bias"]


def forward_names(cell):
    return ["outputs", "h_last", "c_last"] if cell == "lstm" else ["outputs", "h_last"]


def input_names(cell):
    """Differentiable inputs, in the order of the backward results."""
    states = ["h0", "c0"] if cell == "lstm" else ["h0"]
    return ["x"] + states + ["kernel", "recurrent_kernel", "bias"]


# --------------------------------------------------------------------------
# Random problems
# --------------------------------------------------------------------------
def make_mask(rng, kind, B, T):
    """A (B, T) bool mask.

    ``random``: Bernoulli(0.7) per step, and (when B > 1) row 0 fully masked
    and row 1 (when B > 2) fully unmasked; ``prepad``: each row starts with a
    random number of masked steps (the first row fully masked when B > 1);
    ``postpad``: each row ends with a random number of masked steps.
    """
    if kind is None:
        return None
    if kind == "random":
        m = rng.random((B, T)) < 0.7
        if B > 1:
            m[0] = False
        if B > 2:
            m[1] = True
        return m
    lengths = rng.integers(0, T + 1, size=B)      # number of valid steps per row
    if B > 1:
        lengths[0] = 0 if kind == "prepad" else T
    steps = np.arange(T)[None, :]
    if kind == "prepad":
        return steps >= (T - lengths)[:, None]
    if kind == "postpad":
        return steps < lengths[:, None]
    raise ValueError(kind)


def make_dropout_mask(rng, kind, G, B, n, dtype, rate=0.3):
    """Keras-style scaled dropout mask: values 0 or 1/(1-rate)."""
    if kind is None:
        return None
    shape = (B, n) if kind == "shared" else (G, B, n)
    return ((rng.random(shape) >= rate) / (1.0 - rate)).astype(dtype)


@dataclass
class Problem:
    variant: str
    cell: str
    dtype: type
    arrays: dict                       # x, h0, [c0], kernel, recurrent_kernel, bias
    mask: Optional[np.ndarray] = None
    go_backwards: bool = False
    options: dict = field(default_factory=dict)   # activation / reset_after
    dropout_mask: Optional[np.ndarray] = None
    recurrent_dropout_mask: Optional[np.ndarray] = None

    @property
    def shape(self):
        """(B, T, I, H)."""
        B, T, I = self.arrays["x"].shape
        return B, T, I, self.arrays["recurrent_kernel"].shape[0]

    def describe(self):
        B, T, I, H = self.shape
        m = None if self.mask is None else f"mask({int(self.mask.sum())}/{self.mask.size} on)"
        dm = None if self.dropout_mask is None else self.dropout_mask.shape
        rm = None if self.recurrent_dropout_mask is None else self.recurrent_dropout_mask.shape
        h0 = "h0" if self.arrays.get("h0") is not None else "no-h0"
        return (f"{self.variant} B={B} T={T} I={I} H={H} {np.dtype(self.dtype).name} {m} "
                f"go_backwards={self.go_backwards} {h0} dropout={dm} rec_dropout={rm}")

    def kwargs(self):
        kw = dict(mask=self.mask, go_backwards=self.go_backwards,
                  dropout_mask=self.dropout_mask,
                  recurrent_dropout_mask=self.recurrent_dropout_mask)
        kw.update(self.options)
        return kw

    def args(self, arrays=None):
        a = self.arrays if arrays is None else arrays
        return [a[n] for n in input_names(self.cell)]

    def forward(self, impl, arrays=None, **extra):
        """Call ``impl.<cell>_forward`` (with ``extra`` keyword arguments); return (results tuple, cache)."""
        fn = getattr(impl, f"{self.cell}_forward")
        res = fn(*self.args(arrays), **self.kwargs(), **extra)
        return tuple(res[:-1]), res[-1]

    def backward(self, impl, cache, incoming):
        fn = getattr(impl, f"{self.cell}_backward")
        return tuple(fn(cache, *incoming))

    def random_incoming(self, rng):
        """Random (d_outputs, d_h_last[, d_c_last])."""
        B, T, _, H = self.shape
        shapes = [(B, T, H), (B, H)] + ([(B, H)] if self.cell == "lstm" else [])
        return tuple(rng.standard_normal(s).astype(self.dtype) for s in shapes)


def product_scale(a, b, c=None):
    """max over the outputs of a @ b (+ c) of the summed absolute terms, |a| @ |b| (+ |c|): the
    size that rounding errors of the product scale with, however much its terms cancel."""
    size = np.abs(np.asarray(a, np.float64)) @ np.abs(np.asarray(b, np.float64))
    if c is not None:
        size = size + np.abs(np.asarray(c, np.float64))
    return float(np.max(size, initial=0.0))


def close_to_scale(ours, theirs, what, rtol, scale=None):
    """Asserts max |ours - theirs| <= rtol * scale (one scale for the whole array), the scale
    being max |theirs| unless given (see product_scale for sums whose terms may cancel)."""
    theirs = np.asarray(theirs, np.float64)
    if scale is None:
        scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-30)
    err = float(np.max(np.abs(np.asarray(ours, np.float64) - theirs), initial=0.0))
    assert err <= rtol * scale, f"{what}: max error {err:.3g}, scale {scale:.3g}"


def float64_copy(problem):
    """The same problem in float64 (inputs and masks converted exactly)."""
    def wide(a):
        return None if a is None else a.astype(np.float64)

    return replace(problem, dtype=np.float64, arrays={k: wide(v) for k, v in problem.arrays.items()},
                   dropout_mask=wide(problem.dropout_mask), recurrent_dropout_mask=wide(problem.recurrent_dropout_mask))


def relu_pattern_agrees(problem):
    """Whether fusedrnn's forward pass of a ReLU SimpleRNN problem switches the same units on at the
    same steps as the float64 reference's. ReLU's derivative jumps at 0: where a pre-activation
    lies within rounding of 0, float32 and float64 may take opposite sides, and the gradient paths
    through that unit then differ by far more than rounding over a long sequence. Where the
    patterns agree, both backward passes are the same linear map and must agree to rounding."""
    from fusedrnn import ops, reference

    ours = problem.forward(ops)[0][0]
    theirs = float64_copy(problem).forward(reference)[0][0]
    return bool(np.array_equal(ours > 0, theirs > 0))


def check_against_reference(problem, rng, close, ctx):
    """Runs `problem` through fusedrnn.ops and a float64 copy of it through fusedrnn.reference,
    forward and then backward with one random incoming gradient, and calls
    close(ours, reference, what) on every output and gradient."""
    from fusedrnn import ops, reference

    ref_problem = float64_copy(problem)
    incoming = problem.random_incoming(rng)
    fwd, cache = problem.forward(ops)
    ref, ref_cache = ref_problem.forward(reference)
    for name, a, b in zip(["outputs", "h_last", "c_last"], fwd, ref):
        close(a, b, f"{name} {ctx}")
    grads = problem.backward(ops, cache, incoming)
    ref_grads = ref_problem.backward(reference, ref_cache, tuple(g.astype(np.float64) for g in incoming))
    for name, a, b in zip(input_names(problem.cell), grads, ref_grads):
        assert a.shape == b.shape, f"d{name} shape {a.shape} != {b.shape}. {ctx}"
        close(a, b, f"d{name} {ctx}")


def make_problem(rng, variant, B, T, I, H, dtype=np.float64, *, mask=None, go_backwards=False,
                 initial_state=True, dropout=None, recurrent_dropout=None):
    """Random weights and inputs (never all zeros).

    Weights are U(-1, 1)/sqrt(fan_in) so the recurrence is contractive and
    float32 rounding errors do not blow up over long sequences.
    """
    cell, options = VARIANTS[variant]
    G = NUM_GATES[cell]

    def cast(a):
        return np.ascontiguousarray(a, dtype=dtype)

    arrays = {
        "x": cast(rng.standard_normal((B, T, I))),
        "h0": cast(0.5 * rng.standard_normal((B, H))) if initial_state else None,
        "kernel": cast(rng.uniform(-1, 1, (I, G * H)) / np.sqrt(I)),
        "recurrent_kernel": cast(rng.uniform(-1, 1, (H, G * H)) / np.sqrt(H)),
    }
    if cell == "lstm":
        arrays["c0"] = cast(rng.standard_normal((B, H))) if initial_state else None
    bias_shape = (2, G * H) if cell == "gru" and options["reset_after"] else (G * H,)
    arrays["bias"] = cast(rng.uniform(-0.5, 0.5, bias_shape))
    return Problem(
        variant=variant, cell=cell, dtype=dtype, arrays=arrays,
        mask=make_mask(rng, mask, B, T), go_backwards=go_backwards, options=dict(options),
        dropout_mask=make_dropout_mask(rng, dropout, G, B, I, dtype),
        recurrent_dropout_mask=make_dropout_mask(rng, recurrent_dropout, G, B, H, dtype))


# --------------------------------------------------------------------------
# Comparison helper
# --------------------------------------------------------------------------
def max_rel_err(a, b):
    """max|a - b| / max|b| (max|b| floored at tiny)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def float32_rtol(T):
    """Relative (to max-abs) tolerance for float32 results over T steps.

    Rounding differences (u = 6e-8 per op, different summation orders and
    exp/tanh implementations) propagate through the contractive recurrence
    like a random walk, i.e. grow ~sqrt(T); measured errors are 1e-7..1e-6 for
    T <= 200.  clip(5e-6 * sqrt(T), 1e-5, 1e-4) leaves a 30-100x margin.
    """
    return float(min(1e-4, max(1e-5, 5e-6 * np.sqrt(T))))


def assert_close(actual, expected, *, rtol, atol, what, context=""):
    """Assert ``max|a - b| <= rtol * max|b| + atol`` (relative to max-abs).

    ``actual`` must have the shape of ``expected`` and be all finite.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape} != expected {expected.shape}. {context}")
    assert np.all(np.isfinite(actual)), f"{what}: contains NaN/inf. {context}"
    err = np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64)), initial=0.0)
    scale = np.max(np.abs(expected.astype(np.float64)), initial=0.0)
    tol = rtol * scale + atol
    if not err <= tol:
        idx = tuple(int(i) for i in np.unravel_index(
            np.argmax(np.abs(actual.astype(np.float64) - expected)), expected.shape))
        raise AssertionError(
            f"{what}: max|a-b| = {err:.3e} > tol = {tol:.3e} (rtol={rtol:g}, max|b|={scale:.3e}, "
            f"atol={atol:g}); worst at {idx}: {float(actual[idx])!r} vs "
            f"{float(expected[idx])!r}. {context}")


# --------------------------------------------------------------------------
# Keras oracle
# --------------------------------------------------------------------------
_tf_modules = None
_layers: dict = {}


def _tf():
    """(tensorflow, keras), imported once."""
    global _tf_modules
    if _tf_modules is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf
        import keras
        _tf_modules = (tf, keras)
    return _tf_modules


def _get_layer(cell, I, H, dtype, go_backwards, options, dropout, rec_dropout, implementation):
    """Build (once per configuration) a Keras layer matching the options."""
    _, keras = _tf()
    key = (cell, I, H, np.dtype(dtype).name, go_backwards, tuple(sorted(options.items())),
           dropout, rec_dropout, implementation)
    layer = _layers.get(key)
    if layer is not None:
        return layer
    common = dict(return_sequences=True, return_state=True, go_backwards=go_backwards,
                  dtype=np.dtype(dtype).name, dropout=0.5 if dropout else 0.0,
                  recurrent_dropout=0.5 if rec_dropout else 0.0)
    if cell == "rnn":
        layer = keras.layers.SimpleRNN(H, activation=options.get("activation", "tanh"),
                                       **common)
    elif cell == "lstm":
        layer = keras.layers.LSTM(H, implementation=implementation, use_cudnn=False, **common)
    else:
        layer = keras.layers.GRU(H, reset_after=options.get("reset_after", True),
                                 implementation=implementation, use_cudnn=False, **common)
    layer.build((None, None, I))
    _layers[key] = layer
    return layer


def _keras_dropout_value(m, G, per_gate):
    """A dropout mask in the form the Keras cell indexes it."""
    tf, _ = _tf()
    if m is None:
        return None
    if not per_gate:                # SimpleRNN or implementation=2: one (B, n) tensor
        return tf.constant(m if m.ndim == 2 else m[0])
    if m.ndim == 2:
        m = np.broadcast_to(m, (G,) + m.shape)
    return [tf.constant(np.ascontiguousarray(m[g])) for g in range(G)]


def keras_run(problem, incoming, *, arrays=None):
    """Run Keras on ``problem``; return ``(forward, grads)``.

    ``forward`` is ``(outputs, h_last[, c_last])``; ``grads`` is ordered like
    the ``fusedrnn.ops`` backward results: ``(dx, dh0[, dc0], d_kernel,
    d_recurrent_kernel, d_bias)``.  A ``None`` initial state is passed to Keras
    as explicit zeros (exactly what Keras uses by default) so that ``dh0`` and
    ``dc0`` exist.
    """
    tf, _ = _tf()
    p = problem
    a = p.arrays if arrays is None else arrays
    cell, dtype = p.cell, p.dtype
    B, T, I, H = p.shape
    G = NUM_GATES[cell]
    dm, rm = p.dropout_mask, p.recurrent_dropout_mask
    per_gate = cell != "rnn" and (rm is not None or (dm is not None and dm.ndim == 3))
    layer = _get_layer(cell, I, H, dtype, bool(p.go_backwards), p.options, dm is not None,
                       rm is not None, 1 if per_gate else 2)
    layer.set_weights([a["kernel"], a["recurrent_kernel"], a["bias"]])
    dm_value = _keras_dropout_value(dm, G, per_gate)
    rm_value = _keras_dropout_value(rm, G, per_gate)
    layer.cell.get_dropout_mask = lambda _step_input: dm_value
    layer.cell.get_recurrent_dropout_mask = lambda _state: rm_value
    training = dm is not None or rm is not None

    zeros = np.zeros((B, H), dtype)
    xt = tf.constant(a["x"])
    states = [tf.constant(zeros if a["h0"] is None else a["h0"])]
    if cell == "lstm":
        states.append(tf.constant(zeros if a["c0"] is None else a["c0"]))
    mask = None if p.mask is None else tf.constant(p.mask)
    weights = [layer.cell.kernel.value, layer.cell.recurrent_kernel.value, layer.cell.bias.value]
    with tf.GradientTape() as tape:
        tape.watch([xt] + states)
        res = layer(xt, initial_state=states, mask=mask, training=training)
        loss = tf.add_n([tf.reduce_sum(r * tf.constant(d)) for r, d in zip(res, incoming)])
    sources = [xt] + states + weights
    grads = tape.gradient(loss, sources)
    grads = tuple(np.zeros(s.shape, dtype) if g is None else np.asarray(g)
                  for g, s in zip(grads, sources))
    return tuple(np.asarray(r) for r in res), grads


def random_variation(rng, variant, shape, dtype):
    """make_problem with a random mask kind, dropout kinds and go_backwards; shape (B, T, I, H)."""
    mask = MASK_KINDS[int(rng.integers(len(MASK_KINDS)))]
    dropout = DROPOUT_KINDS[int(rng.integers(len(DROPOUT_KINDS)))]
    recurrent_dropout = DROPOUT_KINDS[int(rng.integers(len(DROPOUT_KINDS)))]
    return make_problem(rng, variant, *shape, dtype, mask=mask, go_backwards=bool(rng.random() < 0.5),
                        dropout=dropout, recurrent_dropout=recurrent_dropout)
