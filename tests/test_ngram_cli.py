"""The ngram CLI, through a parser built here (independent of fusedrnn/cli.py)."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pytest

from fusedrnn.ngram import read_arpa
from fusedrnn.ngram import cli as ngram_cli
from fusedrnn.ngram.cli import add_evaluate_lm_parser, add_ngram_parser

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusedrnn")
    sub = p.add_subparsers(dest="command", required=True)
    add_ngram_parser(sub)
    ev = sub.add_parser("evaluate").add_subparsers(dest="what", required=True)
    add_evaluate_lm_parser(ev)
    return p


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def corpus(tmp_path, seed) -> Path:
    rng = random.Random(seed)
    words = ["i", "am", "a", "student", "you", "are", "teacher"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 7))) for _ in range(200)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(["i am a student"] + lines) + "\n", encoding="utf-8")
    return path


def test_train_explain_generate_word(tmp_path, corpus, capsys):
    out = tmp_path / "model.arpa"
    assert _run(["ngram", "train", "--order", "3", "--level", "word", str(corpus), "-o", str(out)]) == 0
    assert "SRILM/KenLM convention" in capsys.readouterr().out
    lm = read_arpa(out)
    assert lm.order == 3 and lm.level == "word" and lm.padding.n_bos == 1
    assert "<s> <s>" not in out.read_text(encoding="utf-8")
    assert _run(["ngram", "explain", str(out), "i am a student"]) == 0
    text = capsys.readouterr().out
    assert "P(i | <s>)" in text and "P(</s> | a student)" in text and "perplexity" in text
    assert _run(["ngram", "generate", str(out), "-n", "12", "--seed", "3", "--seed-text", "i am"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("i am")
    assert _run(["ngram", "generate", str(out), "-n", "12", "--seed", "3", "--seed-text", "i am"]) == 0
    assert capsys.readouterr().out == first


def test_train_char(tmp_path, corpus, capsys):
    out = tmp_path / "char.arpa"
    assert _run(["ngram", "train", "--order", "5", "--level", "char", str(corpus), "-o", str(out),
                 "--estimator", "modified-kneser-ney"]) == 0
    lm = read_arpa(out)
    assert lm.level == "char" and lm.order == 5
    assert _run(["ngram", "explain", str(out), "i am"]) == 0
    assert "P(\u2423 | <s>i)" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert _run(["ngram", "train", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "m.arpa")]) == 1
    assert "corpus" in capsys.readouterr().err
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an arpa file\n", encoding="utf-8")
    assert _run(["ngram", "explain", str(bad), "x"]) == 1
    assert "malformed ARPA" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["ngram", "train", "c.txt", "-o", "m.arpa", "--order", "0"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["ngram", "train", "c.txt", "-o", "m.arpa", "--estimator", "mle"])


def test_help_texts():
    for cmd in (["ngram", "train"], ["ngram", "explain"], ["ngram", "generate"], ["evaluate", "lm"]):
        with pytest.raises(SystemExit) as info:
            _parser().parse_args(cmd + ["--help"])
        assert info.value.code == 0


def test_evaluate_lm_small(tmp_path, capsys, monkeypatch, seed):
    rng = random.Random(seed)
    text = " ".join(rng.choice(["the will", "to power", "beyond", "good and evil"]) for _ in range(800))
    data = tmp_path / "nietzsche.txt"
    data.write_text(text, encoding="utf-8")
    png = tmp_path / "plot.png"
    monkeypatch.setenv("FUSEDRNN_DATA", str(tmp_path))
    rc = _run(["evaluate", "lm", "--orders", "1-3", "--plot", str(png), "--quiet",
               "--lstm-checkpoint", str(tmp_path / "lstm.ckpt")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| kneser-ney | 3 |" in out and "| mle | 1 |" in out and "add-k" in out
    assert "does not exist" in out and "char LSTM" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nietzsche.txt", "plot.png"]


def test_evaluate_lm_with_a_trained_textgen_checkpoint(tmp_path, capsys, monkeypatch, seed):
    from fusedrnn.tasks import textgen

    rng = random.Random(seed)
    text = " ".join(rng.choice(["the will", "to power", "beyond", "good and evil"]) for _ in range(800))
    data = tmp_path / "nietzsche.txt"
    data.write_text(text, encoding="utf-8")
    cfg = textgen.TextgenConfig(epochs=1, steps_per_epoch=20, units=16, sample_length=1, seed=seed % 1000)
    textgen.train(cfg, data, tmp_path / "lstm.npz", None, progress=False, print_fn=lambda s: None)
    rc = _run(["evaluate", "lm", "--data", str(data), "--orders", "1-2", "--quiet", "--plot", str(tmp_path / "p.png"),
               "--lstm-checkpoint", str(tmp_path / "lstm.npz")])
    out = capsys.readouterr().out
    assert rc == 0
    row = next(line for line in out.splitlines() if "char LSTM" in line)
    numbers = [float(c) for c in row.split("|")[1:-1] if c.strip().replace(".", "", 1).isdigit()]
    perplexity, bpc = numbers
    assert perplexity == pytest.approx(2.0 ** bpc, rel=1e-3), row
    assert 0.5 < bpc < 4.5, row  # 20 steps: below a uniform guess over the text's ~15 characters


def test_find_nietzsche_order(tmp_path, monkeypatch):
    monkeypatch.delenv("FUSEDRNN_DATA", raising=False)
    explicit = tmp_path / "x.txt"
    explicit.write_text("abc", encoding="utf-8")
    assert ngram_cli.find_nietzsche(str(explicit)) == explicit
    with pytest.raises(ValueError, match="data: file"):
        ngram_cli.find_nietzsche(str(tmp_path / "nope.txt"))
    envdir = tmp_path / "env"
    envdir.mkdir()
    (envdir / "nietzsche.txt").write_text("abc", encoding="utf-8")
    monkeypatch.setenv("FUSEDRNN_DATA", str(envdir))
    assert ngram_cli.find_nietzsche(None) == envdir / "nietzsche.txt"
    monkeypatch.setenv("FUSEDRNN_DATA", str(tmp_path / "empty"))
    pkg = Path(ngram_cli.__file__).resolve().parents[1] / "data" / "nietzsche.txt"
    if pkg.is_file():
        assert ngram_cli.find_nietzsche(None) == pkg
    else:
        with pytest.raises(ValueError, match="nietzsche.txt not found"):
            ngram_cli.find_nietzsche(None)


def test_neural_hook_reports_unusable_checkpoint(tmp_path):
    missing = tmp_path / "model.npz"
    with pytest.raises(ngram_cli.NeuralModelUnavailable, match="does not exist"):
        ngram_cli.neural_bits_per_char(str(missing), "text")


@pytest.mark.slow
def test_evaluate_lm_nietzsche(tmp_path, capsys):
    if not DATA.is_file():
        pytest.skip(f"Nietzsche corpus not found at {DATA} (expected <repo>/../shared/data/nietzsche.txt)")
    rc = _run(["evaluate", "lm", "--data", str(DATA), "--orders", "1,3,5", "--plot", str(tmp_path / "p.png"),
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = {(r.split("|")[1].strip(), r.split("|")[2].strip()): r for r in out.splitlines() if r.startswith("| ")}
    kn5 = float(rows[("kneser-ney", "5")].split("|")[4])
    kn1 = float(rows[("kneser-ney", "1")].split("|")[4])
    assert kn5 < kn1  # context helps: 5-gram bits/char below unigram
    assert rows[("mle", "5")].split("|")[3].strip() == "inf"
