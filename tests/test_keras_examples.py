"""The Keras example programs: each fusedrnn version differs from its stock twin by the LSTM
import alone, their models use the fused layer, and the text-generation program runs end to end
on a slice of the shared Nietzsche text."""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = ROOT.parent / "shared" / "data"
STEMS = ["keras_imdb_sentiment", "keras_nietzsche_textgen"]


def load(stem):
    spec = importlib.util.spec_from_file_location(f"_example_{stem}", EXAMPLES / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stem", STEMS)
def test_twins_differ_by_the_import_alone(stem):
    ours = (EXAMPLES / f"{stem}.py").read_text(encoding="utf-8").splitlines()
    stock = (EXAMPLES / f"{stem}_stock.py").read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.unified_diff(stock, ours, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["-from keras.layers import LSTM", "+from fusedrnn.keras import LSTM"]


@pytest.mark.parametrize("stem", STEMS)
def test_models_use_the_fused_lstm(stem):
    from fusedrnn.keras import LSTM

    ours, stock = load(stem), load(f"{stem}_stock")
    args = () if "imdb" in stem else (57,)
    fused_model, stock_model = ours.build_model(*args), stock.build_model(*args)
    fused_lstm = next(layer for layer in fused_model.layers if isinstance(layer, keras.layers.LSTM))
    stock_lstm = next(layer for layer in stock_model.layers if isinstance(layer, keras.layers.LSTM))
    assert type(fused_lstm) is LSTM and fused_lstm.fused
    assert type(stock_lstm) is keras.layers.LSTM
    assert fused_lstm.get_config() | {"name": ""} == stock_lstm.get_config() | {"name": ""}


def test_textgen_runs_on_the_shared_text(capsys):
    if not (DATA / "nietzsche.txt").is_file():
        pytest.skip(f"{DATA / 'nietzsche.txt'} is missing")
    example = load("keras_nietzsche_textgen")
    model = example.main(["--data", str(DATA), "--epochs", "1", "--limit", "3000", "--sample-length", "5"])
    out = capsys.readouterr().out
    assert "epoch 1:" in out and out.count("[temperature") == 4
    assert np.isfinite(model.get_weights()[0]).all()
