"""benchmarks/bench_decoding.py: its smoke mode runs end to end and writes consistent JSON, the
decoding paths decode every sentence to the fixed length, and the translate step's FLOP count
and one sentence's weight bytes equal counts done another way. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DATA = ROOT / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not ((DATA / "spa-eng" / "spa.txt").is_file() and (DATA / "nietzsche.txt").is_file()),
                                reason="needs ../shared/data (spa-eng/spa.txt, nietzsche.txt)")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_decoding

        yield bench_decoding
    finally:
        sys.path.remove(str(BENCH))


def products(B, Ts, Tt, E, U, V):
    """Every (M, K, N) product of the translation model's forward pass, listed layer by layer."""
    out = []
    for _ in range(Ts):                                  # encoder GRU, one step at a time
        out += [(B, E, 3 * U), (B, U, 3 * U)]
    out.append((B * Ts, U, U))                           # attention keys W2
    for _ in range(Tt):
        out.append((B, U, U))                            # query W1
        out += [(B * Ts, U, 1), (B, Ts, U)]              # scores v . tanh(.), context = weights . values
        out += [(B, U + E, 3 * U), (B, U, 3 * U)]        # decoder GRU on concat(context, embedding)
    out.append((B * Tt, U, V))                           # output Dense over all steps
    return out


@pytest.mark.parametrize("shapes", [(64, 16, 10, 256, 1024, 4935), (3, 5, 4, 7, 11, 13)])
def test_translate_step_flops_equal_the_products_counted_one_by_one(bench, shapes):
    B, Ts, Tt, E, U, V = shapes
    forward = sum(2 * m * k * n for m, k, n in products(*shapes))
    got = bench.translate_step_flops(B, {"source_len": Ts, "target_len": Tt, "embedding": E, "units": U,
                                         "target_vocab": V})
    assert got["total"] == 3 * forward
    assert sum(v for k, v in got.items() if k != "total") == got["total"]


def test_translate_step_flops_match_the_issue(bench):
    flops = bench.translate_step_flops(64, bench.TRANSLATE)
    assert flops["total"] / 1e9 == pytest.approx(81.4, abs=0.1)  # issue 21: "about 81 GFLOP per batch"
    assert flops["decoder_gru"] / flops["total"] == pytest.approx(1 / 3, abs=0.02)  # "a third of it"


@needs_data
def test_smoke_run_writes_consistent_json(tmp_path):
    out = tmp_path / "tasks.json"
    # the fusedrnn this test imported (the installed package under CI, which has the compiled
    # extension; the source tree has it only after a development build)
    import fusedrnn

    package_parent = str(Path(fusedrnn.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(BENCH / "bench_decoding.py"), "--smoke", "--no-progress", "--threads", "1",
                           "--decode-batch", "3", "--json", str(out), "--markdown"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| translate training step |" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["smoke"] is True and payload["threads"] == 1
    assert payload["machine"] and payload["blas"]
    assert payload["fusedrnn"]["step_api"] in (True, False) and payload["fusedrnn"]["path"]

    step = payload["results"]["step"]
    assert step["steps_timed"] >= 1 and step["sgemms_timed"] >= 1
    assert step["gflops"] == pytest.approx(step["gflop"] / step["step_ms"] * 1e3)
    assert step["sgemm_gflops"] == pytest.approx(2 * 1024 ** 3 / step["sgemm_ms"] / 1e6)
    assert step["percent_of_sgemm"] == pytest.approx(100 * step["gflops"] / step["sgemm_gflops"])

    dec = payload["results"]["decode"]
    assert dec["sentences"] == 8 and dec["decode_batch"] == 3 and dec["api"] == "decode_batch_greedy"
    assert dec["words"] == dec["sentences"] * dec["max_length"]  # fixed-length decoding, no early stop
    assert dec["sentences_per_s"] == pytest.approx(dec["sentences"] / dec["seconds"])

    one = payload["results"]["sentence"]
    assert one["sentences"] == 3 and one["rounds"] == 1 and one["beam_width"] == 4
    for name in ("greedy", "beam", "greedy-bf16"):
        r = one[name]
        assert r["timed"] == 3 and r["words"] == [one["max_length"]] * 3  # no early stop, beams included
        assert r["ms_median"] > 0 and r["weights_gbs_median"] > 0
        assert r["percent_of_triad"] == pytest.approx(100 * r["weights_gbs_median"] / one["triad_gbs"])
    assert "| one sentence (greedy_decode) |" in proc.stdout and "| one sentence (beam_search, beam 4) |" in proc.stdout
    assert "| one sentence (greedy_decode, bfloat16 weights) |" in proc.stdout

    gen = payload["results"]["textgen"]
    assert gen["chars"] == 20 and gen["vocab"] == 57
    assert gen["chars_per_s"] == pytest.approx(gen["chars"] / gen["seconds"])


@needs_data
def test_one_sentence_at_a_time_decodes_every_sentence_to_the_fixed_length(bench):
    args = bench.parse_args(["--smoke", "--what", "decode", "--decode-batch", "1", "--sentences", "5", "--no-progress"])
    dec = bench.bench_decode(args)
    assert dec["api"] == "greedy_decode" and dec["sentences"] == 5
    assert dec["words"] == 5 * dec["max_length"]


def test_sentence_weight_bytes_are_the_arrays_one_sentence_multiplies(bench):
    from fusedrnn.tasks.seq2seq import AttentionSeq2Seq

    model = AttentionSeq2Seq(13, 17, embedding_dim=5, units=7, dtype="float64")
    Ts, words = 4, 6
    encoder = Ts * model.encoder.recurrent_kernel.nbytes + model.encoder.kernel.nbytes + model.attention.W2.nbytes
    per_word = (model.attention.W1.nbytes + model.decoder.kernel.nbytes + model.decoder.recurrent_kernel.nbytes
                + model.output.kernel.nbytes)
    got = bench.sentence_weight_bytes(model, Ts, words)
    assert got == {"encoder": encoder, "per_word": per_word, "total": encoder + words * per_word}


def test_bad_counts_are_refused(bench):
    for flag in ("--sentences", "--latency-sentences", "--latency-rounds", "--beam"):
        with pytest.raises(SystemExit):
            bench.parse_args([flag, "0"])
