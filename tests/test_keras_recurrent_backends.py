"""fusedrnn.keras on Keras backends without a fused loop (JAX): the layers say they are not fused,
name the backends that are, and compute exactly what Keras's own layers compute. Each backend runs
in a subprocess (Keras picks its backend once per process, from KERAS_BACKEND). The PyTorch
backend runs the fused loop: tests/test_keras_torch_backend.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _package_root() -> str:
    """The folder holding the fusedrnn this process imported (the installed package under CI, the
    source tree with its built extension in a development checkout): the subprocess imports it too."""
    import fusedrnn

    return str(Path(fusedrnn.__file__).resolve().parents[1])


SCRIPT = r"""
import json
import numpy as np
import keras
import fusedrnn.keras as fk

rng = np.random.default_rng(7)
x = rng.standard_normal((3, 5, 4)).astype("float32")
mask = np.ones((3, 5), bool)
mask[0, 3:] = False
report = {}
for name in ("SimpleRNN", "LSTM", "GRU"):
    fused = getattr(fk, name)(6, return_sequences=True, go_backwards=True)
    stock = getattr(keras.layers, name)(6, return_sequences=True, go_backwards=True)
    fused.build((3, 5, 4))
    stock.build((3, 5, 4))
    stock.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 for w in fused.get_weights()])
    fused.set_weights(stock.get_weights())
    got = keras.ops.convert_to_numpy(fused(x, mask=mask))
    want = keras.ops.convert_to_numpy(stock(x, mask=mask))
    report[name] = {"fused": fused.fused, "reason": fused.fused_reason, "jit": fused.supports_jit,
                    "max_diff": float(np.abs(got - want).max())}
print("REPORT" + json.dumps(report))
"""


def _run(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend,
           "PYTHONPATH": os.pathsep.join([_package_root(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT"))
    return json.loads(line[len("REPORT"):])


@pytest.mark.parametrize("backend,module", [("jax", "jax")])
def test_other_backends_run_keras_own_loop(backend, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    report = _run(backend)
    for name, layer in report.items():
        assert layer["fused"] is False, name
        assert f"'{backend}'" in layer["reason"] and "'tensorflow'" in layer["reason"], layer["reason"]
        assert layer["jit"] is True, name     # Keras's own loop compiles
        assert layer["max_diff"] == 0.0, name  # the very same computation as the stock layer
