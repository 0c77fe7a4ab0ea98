"""The translation task end to end on the real Spanish-English file: a tiny model must overfit a
few dozen pairs and then translate them exactly; checkpoints, the CLI and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusedrnn.cli import main
from fusedrnn.tasks import translate

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "spa-eng" / "spa.txt"
needs_data = pytest.mark.skipif(not DATA.is_file(), reason=f"spa.txt not found at {DATA}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained on the first 40 pairs until it reproduces them (about 10 s)."""
    if not DATA.is_file():
        pytest.skip(f"spa.txt not found at {DATA}")
    out = tmp_path_factory.mktemp("translate")
    cfg = translate.TranslateConfig(num_examples=40, embedding_dim=32, units=64, batch_size=8, epochs=60,
                                    learning_rate=0.01, val_fraction=0.0, seed=3)
    history = translate.train(cfg, DATA, out / "t.npz", out / "t.png", progress=False, print_fn=lambda s: None)
    return cfg, history, out


@needs_data
def test_overfits_and_translates_training_pairs_exactly(trained):
    cfg, history, out = trained
    assert history["loss"][-1] < 0.02, history["loss"][-5:]
    translator = translate.load(out / "t.npz")
    from fusedrnn.datasets.translation import load_pairs, preprocess_sentence

    pairs = load_pairs(DATA, 40)
    wrong = []
    for spa, eng in pairs:
        expected = " ".join(preprocess_sentence(eng).split()[1:-1])
        got, result, words = translator.translate(spa)
        # the first 40 lines hold the same Spanish sentence with different English ones ("ve." ->
        # "go." / ...): a sentence is right when it matches any English of its Spanish source
        options = {" ".join(preprocess_sentence(e).split()[1:-1]) for s, e in pairs if s == spa}
        if got not in options:
            wrong.append((spa, got, expected))
        assert result.attention.shape == (len(result.ids), len(words))
    assert not wrong, wrong[:5]


@needs_data
def test_cli_translate_with_plot_and_beam(trained, tmp_path, capsys):
    _, _, out = trained
    png = tmp_path / "att.png"
    assert main(["translate", "--checkpoint", str(out / "t.npz"), "--plot", str(png), "¡Corre!"]) == 0
    assert png.stat().st_size > 1000
    greedy = capsys.readouterr().out.splitlines()[0]
    assert main(["translate", "--checkpoint", str(out / "t.npz"), "--beam", "1", "¡Corre!"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == greedy
    assert (out / "t.png").stat().st_size > 1000


@needs_data
def test_translate_bad_input(trained, capsys):
    _, _, out = trained
    translator = translate.load(out / "t.npz")
    with pytest.raises(ValueError, match="unknown|not in the vocabulary"):
        translator.translate("el ornitorrinco")
    with pytest.raises(ValueError, match="sentence: the text is only whitespace"):
        translator.translate("   ")
    with pytest.raises(ValueError, match="sentence: the text is empty"):
        translator.translate("")
    with pytest.raises(ValueError, match="no words"):
        translator.translate("#@")
    with pytest.raises(ValueError, match="at most"):
        translator.translate(" ".join(["ve"] * 40))
    assert main(["translate", "--checkpoint", str(out / "t.npz"), "zzzz"]) == 1
    assert "error" in capsys.readouterr().err
    for blank in ("", " \t"):
        assert main(["translate", "--checkpoint", str(out / "t.npz"), blank]) == 1
        captured = capsys.readouterr()
        assert "sentence: the text is" in captured.err and captured.out == ""


def test_translate_cli_missing_checkpoint(tmp_path, capsys):
    assert main(["translate", "--checkpoint", str(tmp_path / "none.npz"), "hola"]) == 1
    assert "does not exist" in capsys.readouterr().err


@needs_data
def test_evaluate_translate_bleu_on_a_tiny_split(tmp_path, capsys):
    cfg = translate.TranslateConfig(num_examples=60, embedding_dim=8, units=8, batch_size=16, epochs=1,
                                    val_fraction=0.25, seed=1)
    translate.train(cfg, DATA, tmp_path / "m.npz", None, progress=False, print_fn=lambda s: None)
    assert main(["evaluate", "translate", "--checkpoint", str(tmp_path / "m.npz"), "--data", str(DATA),
                 "--beam", "2", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("BLEU (greedy, 15 validation sentences):")
    assert lines[1].startswith("BLEU (beam 2, 15 validation sentences):")
    assert all(0.0 <= float(line.rsplit(":", 1)[1]) <= 100.0 for line in lines)


def test_teacher_forcing_arrays(rng):
    target = rng.integers(0, 9, (3, 6))
    tin, tout = translate.teacher_forcing_arrays(target)
    np.testing.assert_array_equal(tin, target[:, :-1])
    np.testing.assert_array_equal(tout, target[:, 1:])


@needs_data
def test_generic_load_checkpoint_reads_a_translation_checkpoint_in_a_fresh_interpreter(trained):
    """fusedrnn.training.load_checkpoint rebuilds the task's model class without the caller
    importing the task module first."""
    import os
    import subprocess
    import sys

    _, history, out = trained
    code = ("import sys; from fusedrnn.training import load_checkpoint; "
            "c = load_checkpoint(sys.argv[1]); print(type(c.model).__name__, len(c.meta['history']['loss']))")
    done = subprocess.run([sys.executable, "-c", code, str(out / "t.npz")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(translate.__file__).parents[2])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["AttentionSeq2Seq", str(len(history["loss"]))]


@needs_data
def test_cli_translate_and_evaluate_with_bfloat16_weights(trained, capsys):
    _, _, out = trained
    assert main(["translate", "--checkpoint", str(out / "t.npz"), "¡Corre!"]) == 0
    float32 = capsys.readouterr().out.splitlines()[0]
    assert main(["translate", "--checkpoint", str(out / "t.npz"), "--bfloat16", "¡Corre!"]) == 0
    # the model was trained to a loss under 0.02: rounding its GRU weights to bfloat16 keeps the arg-max
    assert capsys.readouterr().out.splitlines()[0] == float32
