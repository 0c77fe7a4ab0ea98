"""Optimizers with Keras 3's update rules: SGD (momentum, Nesterov), RMSprop (momentum, centered)
and Adam (AMSGrad), with Keras's gradient clipping (``clipnorm``, ``clipvalue``,
``global_clipnorm``).

Usage, with the layer contract of :mod:`fusedrnn.layers.base`::

    opt = Adam(learning_rate=1e-3)
    opt.apply(model.params, model.grads)   # updates every array of model.params in place

Conventions
-----------
* ``apply(params, grads)`` takes two equally long lists of NumPy arrays. Each param must be a
  writeable float32 or float64 array, and its gradient an array of the same shape and dtype. The
  params are updated in place (never rebound); the grads are only read.
* Slot state (momentum, velocity, ...) is created on the first call, one array per param, keyed
  by position; later calls must pass the same number of params with the same shapes and dtypes.
* Everything is computed in each param's dtype, one operation at a time in Keras's order, with
  every hyperparameter rounded to that dtype as Keras casts it. The results are bit-identical to
  Keras's (TensorFlow backend) except with ``clipnorm``/``global_clipnorm``, whose norms are sums
  that NumPy and TensorFlow add up in different orders (a rounding or two).
* Each element-wise rule is a module-level function (:func:`sgd_update`, :func:`rmsprop_update`,
  :func:`adam_update`) taking the param, its gradient, its slots, scalars already in the
  param's dtype and scratch arrays; it is built from in-place NumPy ufuncs and allocates nothing.
  These functions are the reference for fused kernels that implement the same rules.

Gradient clipping (at most one of the three, applied to all gradients before any update):

* ``clipnorm=c`` (per param): ``g <- (g * c) / max(||g||_2, c)``, with ``||g||_2`` the L2 norm of
  that gradient (so ``g * c / c`` when the norm is at most ``c``, as Keras computes it).
* ``global_clipnorm=c``: ``n = sqrt(sum_i ||g_i||_2^2)`` over all gradients, then
  ``g_i <- g_i * s`` with ``s = c * min(1 / n, 1 / c)`` (NaN when ``n`` is not finite).
* ``clipvalue=c``: ``g <- min(max(g, -c), c)``.

Keras details reproduced here:

* RMSprop adds epsilon *inside* the square root (``sqrt(v + eps)``), Adam *outside*
  (``sqrt(v) + eps``).
* Adam folds both bias corrections into the step size,
  ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, and applies
  ``alpha * m / (sqrt(v) + eps)`` to the *uncorrected* moments; so epsilon is Kingma and Ba's
  "epsilon hat", not the epsilon of their Algorithm 1.
* Coefficients such as ``1 - beta_1`` are computed in double precision and then rounded to the
  param's dtype (``float32(1 - 0.9)``, not ``1 - float32(0.9)``); ``beta^t`` is the scalar
  ``pow`` in the param's dtype.
* In float64, Keras's TensorFlow backend casts Adam's ``beta_1``/``beta_2`` and SGD's
  ``momentum`` through a float32 constant, and keeps the learning rate in ``floatx()``
  (float32 by default). fusedrnn uses the exact values in float64; pass Keras float64 constants
  and ``floatx='float64'`` to get the same numbers from Keras.
* ``iterations`` counts completed steps; Adam's ``t`` is ``iterations + 1`` during a step.
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fusedrnn import _C
from fusedrnn.weight_versions import weights_changed

__all__ = ["SGD", "RMSprop", "Adam", "sgd_update", "rmsprop_update", "adam_update"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------------------
# Element-wise rules. Scalars are NumPy scalars of the param's dtype; `scratch` holds arrays of
# the param's shape and dtype whose contents are overwritten. Nothing is allocated.
# --------------------------------------------------------------------------------------------

def sgd_update(param: np.ndarray, grad: np.ndarray, momentum_slot: Optional[np.ndarray], *, learning_rate: Any,
               momentum: Any, nesterov: bool, scratch: Sequence[np.ndarray]) -> None:
    """One SGD step in place (Keras's ``SGD.update_step``).

    Without a momentum slot (``momentum == 0``)::

        p <- p - g * lr

    With a momentum slot ``u`` (zero-initialised)::

        u <- u * momentum - g * lr
        p <- p + u                                  (nesterov=False)
        p <- p + (u * momentum - g * lr)            (nesterov=True, with the new u)

    Args:
        param, grad, momentum_slot: arrays of one shape and one dtype (float32 or float64);
            ``momentum_slot`` is None when momentum is 0.
        learning_rate, momentum: scalars of that dtype.
        scratch: arrays of that shape and dtype: two with Nesterov momentum, else one.
    """
    step = scratch[0]
    np.multiply(grad, learning_rate, out=step)                 # g * lr
    if momentum_slot is None:
        np.subtract(param, step, out=param)
        return
    np.multiply(momentum_slot, momentum, out=momentum_slot)
    np.subtract(momentum_slot, step, out=momentum_slot)        # u * momentum - g * lr
    if nesterov:
        look = scratch[1]
        np.multiply(momentum_slot, momentum, out=look)
        np.subtract(look, step, out=look)
        np.add(param, look, out=param)
    else:
        np.add(param, momentum_slot, out=param)


def rmsprop_update(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, momentum_slot: Optional[np.ndarray],
                   average_gradient: Optional[np.ndarray], *, learning_rate: Any, rho: Any, one_minus_rho: Any,
                   momentum: Any, epsilon: Any, scratch: Sequence[np.ndarray]) -> None:
    """One RMSprop step in place (Keras's ``RMSprop.update_step``).

    With ``v`` (and, when centered, ``a``) zero-initialised::

        v <- rho * v + (1 - rho) * g^2
        a <- rho * a + (1 - rho) * g                (centered only)
        d <- v - a^2 + eps   if centered   else   v + eps
        inc = (lr * g) / sqrt(d)                    (epsilon inside the square root)
        p <- p - inc                                (no momentum slot)
        u <- momentum * u + inc;  p <- p - u        (momentum slot u, zero-initialised)

    Args:
        param, grad, velocity: arrays of one shape and one dtype (float32 or float64).
        momentum_slot: like ``velocity``, or None when momentum is 0.
        average_gradient: like ``velocity``, or None when not centered.
        learning_rate, rho, one_minus_rho, momentum, epsilon: scalars of that dtype
            (``one_minus_rho`` is ``1 - rho`` computed in double precision, then rounded).
        scratch: two arrays of that shape and dtype.
    """
    den, inc = scratch[0], scratch[1]
    np.multiply(grad, grad, out=den)
    np.multiply(den, one_minus_rho, out=den)
    np.multiply(velocity, rho, out=velocity)
    np.add(velocity, den, out=velocity)
    if average_gradient is not None:
        np.multiply(grad, one_minus_rho, out=den)
        np.multiply(average_gradient, rho, out=average_gradient)
        np.add(average_gradient, den, out=average_gradient)
        np.multiply(average_gradient, average_gradient, out=den)
        np.subtract(velocity, den, out=den)
        np.add(den, epsilon, out=den)
    else:
        np.add(velocity, epsilon, out=den)
    np.sqrt(den, out=den)
    np.multiply(grad, learning_rate, out=inc)
    np.divide(inc, den, out=inc)
    if momentum_slot is None:
        np.subtract(param, inc, out=param)
    else:
        np.multiply(momentum_slot, momentum, out=momentum_slot)
        np.add(momentum_slot, inc, out=momentum_slot)
        np.subtract(param, momentum_slot, out=param)


def _fusable(param: np.ndarray, *others: np.ndarray) -> bool:
    """Whether the fused C++ update (fusedrnn._C) can run in place on these arrays: C-contiguous,
    one dtype. It computes exactly what the NumPy rule functions here compute (same operation
    order, no fused multiply-adds), in one pass instead of eight."""
    return param.flags.c_contiguous and param.flags.writeable and all(
        a.flags.c_contiguous and a.dtype == param.dtype for a in others)


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, v_hat: Optional[np.ndarray], *,
                alpha: Any, one_minus_beta_1: Any, one_minus_beta_2: Any, epsilon: Any,
                scratch: Sequence[np.ndarray]) -> None:
    """One Adam step in place (Keras's ``Adam.update_step``).

    With ``m``, ``v`` (and ``v_hat``) zero-initialised and ``alpha`` the bias-corrected step
    size ``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` of step ``t`` (1 on the first step)::

        m <- m + (g - m) * (1 - beta_1)
        v <- v + (g^2 - v) * (1 - beta_2)
        v_hat <- max(v_hat, v);  v' = v_hat         (amsgrad; otherwise v' = v)
        p <- p - (m * alpha) / (sqrt(v') + eps)    (epsilon outside the square root)

    Args:
        param, grad, m, v: arrays of one shape and one dtype (float32 or float64).
        v_hat: like ``v``, or None without AMSGrad.
        alpha, one_minus_beta_1, one_minus_beta_2, epsilon: scalars of that dtype (the
            ``1 - beta`` terms computed in double precision, then rounded).
        scratch: two arrays of that shape and dtype.
    """
    s, step = scratch[0], scratch[1]
    np.subtract(grad, m, out=s)
    np.multiply(s, one_minus_beta_1, out=s)
    np.add(m, s, out=m)
    np.multiply(grad, grad, out=s)
    np.subtract(s, v, out=s)
    np.multiply(s, one_minus_beta_2, out=s)
    np.add(v, s, out=v)
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    np.sqrt(v, out=s)
    np.add(s, epsilon, out=s)
    np.multiply(m, alpha, out=step)
    np.divide(step, s, out=step)
    np.subtract(param, step, out=param)


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------

def _real(name: str, value: Any, *, low: float, high: float = math.inf, high_open: bool = False) -> float:
    """`value` as a finite float in [low, high] (or [low, high)), else an error naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x}")
    if x < low or x > high or (high_open and x == high):
        hi = ")" if high_open else "]"
        rng = f">= {low}" if high == math.inf else f"in [{low}, {high}{hi}"
        raise ValueError(f"{name}: must be {rng}, got {x}")
    return x


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _clip_arg(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    x = _real(name, value, low=0.0)
    if x == 0.0:
        raise ValueError(f"{name}: must be > 0 or None, got {x}")
    return x


_Spec = Tuple[Tuple[int, ...], np.dtype]


class _Optimizer(abc.ABC):
    """Shared machinery: argument checks, clipping, slots, iterations, config and state.

    A subclass lists its slots in ``_slot_names()``, the number of scratch arrays per param its
    rule needs in ``_n_scratch()``, and implements ``_update(params, grads)`` (called after the
    checks and clipping, before ``iterations`` grows).
    """

    def __init__(self, learning_rate: float, clipnorm: Optional[float], clipvalue: Optional[float],
                 global_clipnorm: Optional[float]) -> None:
        self.learning_rate = learning_rate
        self.clipnorm = _clip_arg("clipnorm", clipnorm)
        self.clipvalue = _clip_arg("clipvalue", clipvalue)
        self.global_clipnorm = _clip_arg("global_clipnorm", global_clipnorm)
        given = [n for n in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"{', '.join(given)}: only one of clipnorm, clipvalue and global_clipnorm may be set")
        self._iterations = 0
        self._spec: Optional[List[_Spec]] = None      # (shape, dtype) of each param, once known
        self._slots: Dict[str, List[np.ndarray]] = {}
        self._scratch: Optional[List[List[np.ndarray]]] = None
        self._clipped: Optional[List[np.ndarray]] = None

    # -- public API ----------------------------------------------------------------------

    @property
    def learning_rate(self) -> float:
        """The learning rate (a float >= 0), settable between steps."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = _real("learning_rate", value, low=0.0)

    @property
    def iterations(self) -> int:
        """Number of completed ``apply`` steps."""
        return self._iterations

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Updates every array of `params` in place from the matching array of `grads`.

        Args:
            params: list of writeable float32/float64 arrays; the same number, shapes and dtypes
                on every call (slot state is keyed by position).
            grads: list of arrays, one per param, with its shape and dtype; not modified.

        Raises:
            TypeError: a non-array, a non-float param, a grad whose dtype differs from its param's,
                or a param whose dtype changed since the first step.
            ValueError: lengths or shapes that differ, a read-only param. Nothing is modified then.

        An empty list is a no-op (``iterations`` does not grow), as in Keras.
        """
        params, grads = self._check(params, grads)
        if not params:
            return
        self._build(params)
        try:
            self._update(params, self._clip_gradients(grads))
        finally:  # also after a partial update: copies packed from the params repack (fusedrnn.weight_versions)
            weights_changed(*params)
        self._iterations += 1

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``type(opt)(**opt.get_config())`` rebuilds it."""
        return {"learning_rate": self.learning_rate, **self._rule_config(), "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    def get_state(self) -> Dict[str, np.ndarray]:
        """Copies of the state: ``"iterations"`` (int64 scalar) and ``"<slot>/<i>"`` per param."""
        state = {"iterations": np.array(self._iterations, dtype=np.int64)}
        for name, arrays in self._slots.items():
            for i, a in enumerate(arrays):
                state[f"{name}/{i}"] = a.copy()
        return state

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restores a :meth:`get_state` result (copied), so that training resumes exactly.

        The slot arrays fix the number, shapes and dtypes of the params that later calls of
        :meth:`apply` must pass. Raises ValueError/TypeError naming ``state`` when it does not fit
        this optimizer's configuration (or the params it has already seen).
        """
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
        if "iterations" not in state:
            raise ValueError("state: missing 'iterations'")
        it = np.asarray(state["iterations"])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"state: 'iterations' must be a non-negative integer scalar, got {state['iterations']!r}")
        names = self._slot_names()
        slots: Dict[str, Dict[int, np.ndarray]] = {n: {} for n in names}
        for key, value in state.items():
            if key == "iterations":
                continue
            name, _, index = key.rpartition("/")
            if name not in slots or not index.isdigit():
                raise ValueError(f"state: unexpected entry {key!r} for {type(self).__name__} with this configuration "
                                 f"(slots: {', '.join(names) or 'none'})")
            slots[name][int(index)] = value
        counts = {len(v) for v in slots.values()}
        n = 0 if not names else counts.pop() if len(counts) == 1 else -1
        if n < 0 or any(sorted(v) != list(range(n)) for v in slots.values()):
            raise ValueError("state: every slot needs one array per param, numbered 0..n-1")
        if n == 0 and names and int(it) > 0:
            raise ValueError(f"state: iterations={int(it)} but no slot arrays ({', '.join(names)})")
        new_slots: Dict[str, List[np.ndarray]] = {}
        spec: Optional[List[_Spec]] = None
        if n > 0:
            spec = []
            for i in range(n):
                first = np.asarray(slots[names[0]][i])
                for name in names:
                    a = np.asarray(slots[name][i])
                    if a.dtype not in _FLOATS:
                        raise TypeError(f"state: '{name}/{i}' must be float32 or float64, got {a.dtype}")
                    if a.shape != first.shape or a.dtype != first.dtype:
                        raise ValueError(f"state: '{name}/{i}' {a.shape} {a.dtype} does not match "
                                         f"'{names[0]}/{i}' {first.shape} {first.dtype}")
                spec.append((first.shape, first.dtype))
            for name in names:
                new_slots[name] = [np.array(slots[name][i], copy=True, order="C") for i in range(n)]
        if self._spec is not None and spec is not None and spec != self._spec:
            raise ValueError("state: its slot arrays do not match the shapes/dtypes of the params this optimizer updates")
        self._iterations = int(it)
        self._slots = new_slots
        if spec is not None:
            if spec != self._spec:
                self._scratch = self._clipped = None
            self._spec = spec
        elif names:  # slots expected, none given (iterations == 0): start afresh
            self._spec = None
            self._scratch = self._clipped = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"

    # -- subclass hooks ------------------------------------------------------------------

    @abc.abstractmethod
    def _slot_names(self) -> List[str]:
        """Names of the per-param state arrays (e.g. ``["momentum", "velocity"]``), each shaped like its param."""

    @abc.abstractmethod
    def _rule_config(self) -> Dict[str, Any]:
        """The update rule's hyper-parameters beyond the learning rate, for get_config()."""

    def _n_scratch(self) -> int:
        return 2

    @abc.abstractmethod
    def _update(self, params: List[np.ndarray], grads: List[np.ndarray]) -> None:
        """One step in place on params, from grads already checked and clipped."""

    # -- machinery -----------------------------------------------------------------------

    def _check(self, params: Any, grads: Any) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        for name, seq in (("params", params), ("grads", grads)):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(f"{name}: expected a list of arrays, got {type(seq).__name__}")
        if len(grads) != len(params):
            raise ValueError(f"grads: got {len(grads)} arrays for {len(params)} params")
        if self._spec is not None and len(params) != len(self._spec):
            raise ValueError(f"params: got {len(params)} arrays, but the optimizer state holds {len(self._spec)}")
        for i, (p, g) in enumerate(zip(params, grads)):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"params[{i}]: expected a NumPy array, got {type(p).__name__}")
            if p.dtype not in _FLOATS:
                raise TypeError(f"params[{i}]: expected float32 or float64, got {p.dtype}")
            if not p.flags.writeable:
                raise ValueError(f"params[{i}]: is read-only (params are updated in place)")
            if not isinstance(g, np.ndarray):
                raise TypeError(f"grads[{i}]: expected a NumPy array, got {type(g).__name__}")
            if g.dtype != p.dtype:
                raise TypeError(f"grads[{i}]: dtype {g.dtype} differs from params[{i}] dtype {p.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}]: shape {g.shape} differs from params[{i}] shape {p.shape}")
            if self._spec is not None:
                shape, dtype = self._spec[i]
                if p.shape != shape:
                    raise ValueError(f"params[{i}]: shape {p.shape} differs from {shape} in the optimizer state")
                if p.dtype != dtype:
                    raise TypeError(f"params[{i}]: dtype {p.dtype} differs from {dtype} in the optimizer state")
        return list(params), list(grads)

    def _build(self, params: List[np.ndarray]) -> None:
        """Creates missing slots (zeros) and scratch arrays for `params` (already checked)."""
        if self._spec is None:
            self._spec = [(p.shape, p.dtype) for p in params]
        if not self._slots:
            self._slots = {name: [np.zeros(p.shape, p.dtype) for p in params] for name in self._slot_names()}
        if self._scratch is None:
            self._scratch = [[np.empty(p.shape, p.dtype) for _ in range(self._n_scratch())] for p in params]
        if self._clipped is None and (self.clipnorm or self.clipvalue or self.global_clipnorm):
            self._clipped = [np.empty(p.shape, p.dtype) for p in params]

    def _clip_gradients(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        """Keras's ``_clip_gradients``: clipped copies in reusable buffers (grads are not touched)."""
        if self.clipnorm is not None:
            out = []
            for g, buf in zip(grads, self._clipped):
                dt = g.dtype.type
                c = dt(self.clipnorm)
                sq = _sum_squares(g)
                norm = np.sqrt(sq) if sq > 0 else sq
                np.multiply(g, c, out=buf)
                np.divide(buf, max(norm, c), out=buf)
                out.append(buf)
            return out
        if self.global_clipnorm is not None:
            sums = [_sum_squares(g) for g in grads]
            dtypes = {g.dtype for g in grads}
            common = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)
            dt = common.type
            norm = np.sqrt(np.sum(np.array(sums, dtype=common)))
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = dt(self.global_clipnorm) * min(dt(1) / norm, dt(1.0 / self.global_clipnorm))
                scale = scale + (norm - norm)  # NaN when the norm is inf or NaN, as in Keras
            if scale == 1:
                return grads
            out = []
            for g, buf in zip(grads, self._clipped):
                np.multiply(g, g.dtype.type(scale), out=buf)
                out.append(buf)
            return out
        if self.clipvalue is not None:
            out = []
            for g, buf in zip(grads, self._clipped):
                c = g.dtype.type(self.clipvalue)
                np.clip(g, -c, c, out=buf)
                out.append(buf)
            return out
        return grads


def _sum_squares(g: np.ndarray) -> Any:
    """sum(g^2) as a scalar of g's dtype, without a temporary for contiguous g."""
    flat = g.reshape(-1)
    return g.dtype.type(np.dot(flat, flat))


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum; Keras's ``SGD``.

    Update of each param ``p`` with gradient ``g`` (after clipping), in ``p``'s dtype::

        momentum == 0:   p <- p - g * lr
        otherwise:       u <- u * momentum - g * lr            (u: slot "momentum", starts at 0)
                         p <- p + u                            (nesterov=False)
                         p <- p + (u * momentum - g * lr)      (nesterov=True)

    Args:
        learning_rate: float >= 0.
        momentum: float in [0, 1]; 0 keeps no slot.
        nesterov: bool (has no effect when momentum is 0).
        clipnorm, clipvalue, global_clipnorm: positive floats or None; at most one (see the
            module docstring).
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        self.momentum = _real("momentum", momentum, low=0.0, high=1.0)
        self.nesterov = _flag("nesterov", nesterov)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)

    def _slot_names(self) -> List[str]:
        return ["momentum"] if self.momentum != 0 else []

    def _rule_config(self) -> Dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _n_scratch(self) -> int:
        return 2 if self.momentum != 0 and self.nesterov else 1

    def _update(self, params: List[np.ndarray], grads: List[np.ndarray]) -> None:
        moms = self._slots.get("momentum")
        for i, (p, g) in enumerate(zip(params, grads)):
            dt = p.dtype.type
            sgd_update(p, g, moms[i] if moms else None, learning_rate=dt(self.learning_rate),
                       momentum=dt(self.momentum), nesterov=self.nesterov, scratch=self._scratch[i])


class RMSprop(_Optimizer):
    """RMSprop with optional momentum and centering; Keras's ``RMSprop``.

    Update of each param ``p`` with gradient ``g`` (after clipping), in ``p``'s dtype, slots
    starting at 0 (``v``: "velocity"; ``a``: "average_gradient" when centered; ``u``:
    "momentum" when momentum > 0)::

        v <- rho * v + (1 - rho) * g^2
        a <- rho * a + (1 - rho) * g                     (centered)
        d <- v - a^2 + eps  (centered)   or   v + eps
        inc = lr * g / sqrt(d)                           (epsilon inside the square root)
        p <- p - inc                                     (momentum == 0)
        u <- momentum * u + inc;  p <- p - u             (momentum > 0)

    Args:
        learning_rate: float >= 0.
        rho: float in [0, 1).
        momentum: float in [0, 1].
        epsilon: float >= 0.
        centered: bool.
        clipnorm, clipvalue, global_clipnorm: positive floats or None; at most one.
    """

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        self.rho = _real("rho", rho, low=0.0, high=1.0, high_open=True)
        self.momentum = _real("momentum", momentum, low=0.0, high=1.0)
        self.epsilon = _real("epsilon", epsilon, low=0.0)
        self.centered = _flag("centered", centered)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)

    def _slot_names(self) -> List[str]:
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return names

    def _rule_config(self) -> Dict[str, Any]:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}

    def _update(self, params: List[np.ndarray], grads: List[np.ndarray]) -> None:
        vel, mom, avg = (self._slots.get(n) for n in ("velocity", "momentum", "average_gradient"))
        for i, (p, g) in enumerate(zip(params, grads)):
            dt = p.dtype.type
            lr, rho, omr, eps = dt(self.learning_rate), dt(self.rho), dt(1.0 - self.rho), dt(self.epsilon)
            if not mom and not avg and _fusable(p, g, vel[i]):
                _C.rmsprop_update(p, g, vel[i], lr, rho, omr, eps)
            else:
                rmsprop_update(p, g, vel[i], mom[i] if mom else None, avg[i] if avg else None, learning_rate=lr,
                               rho=rho, one_minus_rho=omr, momentum=dt(self.momentum), epsilon=eps,
                               scratch=self._scratch[i])


class Adam(_Optimizer):
    """Adam with optional AMSGrad; Keras's ``Adam``.

    Update of each param ``p`` with gradient ``g`` (after clipping) at step ``t`` (1 on the
    first), in ``p``'s dtype, slots starting at 0 (``m``: "momentum", ``v``: "velocity",
    ``v_hat``: "velocity_hat" with AMSGrad)::

        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)     (bias corrections in the step size)
        m <- m + (g - m) * (1 - beta_1)
        v <- v + (g^2 - v) * (1 - beta_2)
        v_hat <- max(v_hat, v);  v' = v_hat                  (amsgrad; else v' = v)
        p <- p - m * alpha / (sqrt(v') + eps)                (epsilon outside the square root)

    Args:
        learning_rate: float >= 0.
        beta_1, beta_2: floats in [0, 1).
        epsilon: float >= 0.
        amsgrad: bool.
        clipnorm, clipvalue, global_clipnorm: positive floats or None; at most one.
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        self.beta_1 = _real("beta_1", beta_1, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _real("beta_2", beta_2, low=0.0, high=1.0, high_open=True)
        self.epsilon = _real("epsilon", epsilon, low=0.0)
        self.amsgrad = _flag("amsgrad", amsgrad)
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)

    def _slot_names(self) -> List[str]:
        return ["momentum", "velocity"] + (["velocity_hat"] if self.amsgrad else [])

    def _rule_config(self) -> Dict[str, Any]:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}

    def step_size(self, dtype: Any) -> Any:
        """``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` for the coming step ``t``, in `dtype`.

        Computed as Keras does: every factor rounded to `dtype`, ``beta^t`` with the scalar ``pow``.
        """
        dt = np.dtype(dtype).type
        t = dt(self._iterations + 1)
        one = dt(1)
        with np.errstate(over="ignore", under="ignore"):
            b1p = dt(self.beta_1) ** t
            b2p = dt(self.beta_2) ** t
        return dt(self.learning_rate) * np.sqrt(one - b2p) / (one - b1p)

    def _update(self, params: List[np.ndarray], grads: List[np.ndarray]) -> None:
        m, v, vh = (self._slots.get(n) for n in ("momentum", "velocity", "velocity_hat"))
        alphas: Dict[np.dtype, Any] = {}
        for i, (p, g) in enumerate(zip(params, grads)):
            dt = p.dtype.type
            if p.dtype not in alphas:
                alphas[p.dtype] = self.step_size(p.dtype)
            omb1, omb2, eps = dt(1.0 - self.beta_1), dt(1.0 - self.beta_2), dt(self.epsilon)
            if vh is None and _fusable(p, g, m[i], v[i]):
                _C.adam_update(p, g, m[i], v[i], alphas[p.dtype], omb1, omb2, eps)
            else:
                adam_update(p, g, m[i], v[i], vh[i] if vh else None, alpha=alphas[p.dtype], one_minus_beta_1=omb1,
                            one_minus_beta_2=omb2, epsilon=eps, scratch=self._scratch[i])
