"""The sentiment and text-generation tasks: short runs that must learn, checkpoints, the CLI
and bad input. The data comes from ../shared/data (skipped with a reason when absent); the
Nietzsche text also ships inside the package."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fusedrnn.cli import main
from fusedrnn.tasks import sentiment, textgen

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
IMDB = SHARED / "aclImdb.tar.gz"
needs_imdb = pytest.mark.skipif(not IMDB.is_file(), reason=f"aclImdb.tar.gz not found at {IMDB}")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep the IMDB token cache out of the user's home (one cache for the whole module)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("FUSEDRNN_DATA", raising=False)
    monkeypatch.delenv("FUSEDRNN_IMDB_CACHE", raising=False)


# -- text generation -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def textgen_run(tmp_path_factory):
    """300 steps on the first 60,000 characters of the shipped corpus (about 10 s)."""
    out = tmp_path_factory.mktemp("textgen")
    cfg = textgen.TextgenConfig(epochs=2, limit=60000, steps_per_epoch=150, sample_length=20, seed=5)
    lines = []
    history = textgen.train(cfg, None, out / "tg.npz", out / "tg.png", progress=False, print_fn=lines.append)
    return cfg, history, out, lines


def test_textgen_learns(textgen_run):
    _, history, _, lines = textgen_run
    # a uniform guess over ~50 characters costs ln(50) = 3.9 nats; unigram frequencies ~3.0
    assert history["loss"][0] < 3.2 and history["loss"][-1] < 2.6, history.history
    assert history["val_loss"][-1] < 2.7, history.history
    assert any("[temperature 0.2]" in line for line in lines) and any("[temperature 1.2]" in line for line in lines)
    assert any("validation" in line and "bits/char" in line for line in lines)


def test_textgen_checkpoint_generate_and_bits_per_char(textgen_run, capsys):
    _, history, out, _ = textgen_run
    assert (out / "tg.png").stat().st_size > 1000
    assert main(["generate", "--checkpoint", str(out / "tg.npz"), "--seed-text", "The Will to", "--length", "30",
                 "--temperature", "0.5", "--seed", "1"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    assert printed.startswith("The Will to") and len(printed) == len("The Will to") + 30
    model, vocab, cfg = textgen.load(out / "tg.npz")
    a = textgen.generate(model, vocab, "the will to", 25, 0.5, np.random.default_rng(7), cfg.maxlen)
    b = textgen.generate(model, vocab, "the will to", 25, 0.5, np.random.default_rng(7), cfg.maxlen)
    assert a == b and len(a) == 25
    assert main(["generate", "--checkpoint", str(out / "tg.npz"), "--seed-text", "the will to", "--length", "20",
                 "--seed", "1", "--bfloat16"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    assert printed.startswith("the will to") and len(printed) == len("the will to") + 20
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16'"):
        textgen.generate(model, vocab, "the will to", 5, 0.5, np.random.default_rng(7), cfg.maxlen, precision="half")
    from fusedrnn.datasets import nietzsche

    tail = nietzsche.load_text()[:60000][-3000:]  # the run's validation tail (its vocabulary)
    bpc = textgen.bits_per_char(out / "tg.npz", tail)
    assert 1.0 < bpc < 4.5
    assert math.isclose(bpc, history["val_loss"][-1] / math.log(2), rel_tol=0.25)


def test_textgen_bad_input(textgen_run, tmp_path, capsys):
    _, _, out, _ = textgen_run
    model, vocab, cfg = textgen.load(out / "tg.npz")
    with pytest.raises(ValueError, match="temperature"):
        textgen.generate(model, vocab, "abc", 5, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        textgen.generate(model, vocab, "\u4e2d\u6587", 5, 1.0, np.random.default_rng(0))
    for blank in ("", "  \n"):
        with pytest.raises(ValueError, match="seed_text: the text is"):
            textgen.generate(model, vocab, blank, 5, 1.0, np.random.default_rng(0))
        assert main(["generate", "--checkpoint", str(out / "tg.npz"), "--seed-text", blank]) == 1
        captured = capsys.readouterr()
        assert "seed_text: the text is" in captured.err and captured.out == ""
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    assert main(["generate", "--checkpoint", str(corrupt)]) == 1
    assert "not a readable fusedrnn checkpoint" in capsys.readouterr().err


def test_predict_refuses_empty_reviews_before_scoring(textgen_run, tmp_path, capsys):
    """An empty or whitespace-only review is an error naming it, never a score (the check comes
    before the checkpoint is read, so any checkpoint serves here)."""
    _, _, out, _ = textgen_run
    for args, name in ((["good film", ""], "text #2"), ([" \t\n"], "text #1")):
        assert main(["predict", "sentiment", "--checkpoint", str(out / "tg.npz")] + args) == 1
        captured = capsys.readouterr()
        assert f"{name}: the text is" in captured.err and captured.out == ""
    blank_file = tmp_path / "review.txt"
    blank_file.write_text("\n\n", encoding="utf-8")
    assert main(["predict", "sentiment", "--checkpoint", str(out / "tg.npz"), "--file", str(blank_file)]) == 1
    assert f"--file {blank_file}: the text is only whitespace" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"texts\[1\]: the text is empty"):
        sentiment.predict_texts(out / "tg.npz", ["fine", ""])
    with pytest.raises(TypeError, match=r"texts\[0\]: expected a str"):
        sentiment.predict_texts(out / "tg.npz", [None])


def test_generate_refuses_another_tasks_checkpoint(textgen_run, capsys):
    _, _, out, _ = textgen_run
    assert main(["predict", "sentiment", "--checkpoint", str(out / "tg.npz"), "great film"]) == 1
    assert "not a sentiment one" in capsys.readouterr().err


def test_textgen_resume_continues_exactly_where_it_stopped(tmp_path, capsys):
    """An interrupted run resumed with --resume ends with the weights and history of one that
    never stopped (textgen has no dropout, so the data order and the optimizer state are all
    that carry over)."""
    args = ["train", "textgen", "--limit", "8000", "--steps", "6", "--sample-length", "3", "--seed", "3",
            "--no-progress", "--units", "16"]
    assert main(args + ["--epochs", "3", "--out-dir", str(tmp_path / "whole")]) == 0
    assert main(args + ["--epochs", "1", "--out-dir", str(tmp_path / "split")]) == 0
    assert main(args + ["--epochs", "3", "--out-dir", str(tmp_path / "split"), "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    whole, _, _ = textgen.load(tmp_path / "whole" / "textgen.npz")
    split, _, _ = textgen.load(tmp_path / "split" / "textgen.npz")
    for a, b in zip(whole.get_weights(), split.get_weights()):
        np.testing.assert_array_equal(a, b)
    from fusedrnn.training import load_checkpoint

    h_whole = load_checkpoint(tmp_path / "whole" / "textgen.npz").meta["history"]
    h_split = load_checkpoint(tmp_path / "split" / "textgen.npz").meta["history"]
    assert len(h_split["loss"]) == 3 and h_split["loss"] == h_whole["loss"]
    assert h_split["val_loss"] == h_whole["val_loss"]


def test_resume_refuses_other_settings_or_a_missing_checkpoint(tmp_path, capsys):
    args = ["train", "textgen", "--limit", "4000", "--steps", "2", "--sample-length", "3", "--no-progress",
            "--units", "8", "--out-dir", str(tmp_path)]
    assert main(args + ["--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(args[:-4] + ["--units", "12", "--out-dir", str(tmp_path), "--epochs", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "other settings" in err and "units: 8 there, 12 now" in err
    assert main(args[:-2] + ["--out-dir", str(tmp_path / "none"), "--epochs", "2", "--resume"]) == 1
    assert "does not exist" in capsys.readouterr().err


# -- sentiment ---------------------------------------------------------------------------------------
@needs_imdb
def test_sentiment_learns_on_a_small_subset_and_predicts_raw_text(tmp_path, capsys):
    cfg = sentiment.SentimentConfig(limit=4000, num_words=5000, epochs=3, seed=2)
    lines = []
    history = sentiment.train(cfg, IMDB, tmp_path / "s.npz", tmp_path / "s.png", progress=False,
                              print_fn=lines.append)
    # 4,000 training reviews: far from the full task's 0.83, but well above chance
    assert history["val_accuracy"][-1] > 0.62, history.history
    assert history["accuracy"][-1] > 0.75, history.history
    assert (tmp_path / "s.png").stat().st_size > 1000
    texts, labels = _raw_test_reviews(60)
    probs = sentiment.predict_texts(tmp_path / "s.npz", texts)
    accuracy = np.mean((np.array(probs) > 0.5) == (np.array(labels) == 1))
    assert accuracy > 0.6, accuracy  # raw text → tokenizer → saved word index → model
    assert main(["predict", "sentiment", "--checkpoint", str(tmp_path / "s.npz"), texts[0], texts[1]]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [float(r.split()[0]) for r in rows] == pytest.approx(probs[:2], abs=1e-3)
    assert rows[0].split()[1] == ("positive" if probs[0] >= 0.5 else "negative")


def _raw_test_reviews(per_class):
    """The first `per_class` positive and negative raw reviews of the test split, from the archive."""
    import tarfile

    texts, labels, counts = [], [], {"pos": 0, "neg": 0}
    with tarfile.open(IMDB, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) == 4 and parts[1] == "test" and parts[2] in counts and counts[parts[2]] < per_class:
                texts.append(tar.extractfile(member).read().decode("utf-8"))
                labels.append(1 if parts[2] == "pos" else 0)
                counts[parts[2]] += 1
                if min(counts.values()) >= per_class:
                    break
    return texts, labels


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["train", "--help"], ["train", "textgen", "--help"], ["train", "sentiment", "--help"],
                                  ["train", "translate", "--help"], ["predict", "sentiment", "--help"],
                                  ["generate", "--help"], ["translate", "--help"], ["evaluate", "translate", "--help"]])
def test_help_texts(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: fusedrnn" in capsys.readouterr().out


def test_cli_tiny_textgen_run(tmp_path, capsys):
    rc = main(["train", "textgen", "--limit", "3000", "--epochs", "1", "--steps", "3", "--out-dir", str(tmp_path),
               "--no-progress", "--sample-length", "5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch 1:" in out and f"wrote {tmp_path / 'textgen.npz'}" in out
    assert (tmp_path / "textgen.npz").is_file() and (tmp_path / "textgen.png").is_file()


def test_cli_unknown_task_and_missing_data(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "poetry"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    rc = main(["train", "sentiment", "--data", str(tmp_path / "nowhere"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "nowhere" in err
    rc = main(["train", "sentiment", "--no-progress"])
    assert rc == 1
    assert "aclImdb" in capsys.readouterr().err
