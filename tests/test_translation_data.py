"""The Spanish->English data: preprocessing, the word tokenizer, loading the real shared file,
the train/validation split, and the errors for malformed or missing files."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from fusedrnn.datasets import locate
from fusedrnn.datasets.locate import DataNotFoundError
from fusedrnn.datasets.translation import (END_TOKEN, START_TOKEN, TranslationData, WordTokenizer, load_pairs,
                                           load_translation, pad_post, preprocess_sentence)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SPA_TXT = SHARED_DATA / "spa-eng" / "spa.txt"
needs_data = pytest.mark.skipif(not SPA_TXT.is_file(),
                                reason=f"the shared Spanish-English file is not at {SPA_TXT} (see shared/data/README.md)")


@pytest.fixture(autouse=True)
def _isolated_search(monkeypatch, tmp_path):
    """No test sees $FUSEDRNN_DATA or the user's real cache folder."""
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# --------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("raw, expected", [
    ("¿Todavía están en casa?", "<start> ¿ todavia estan en casa ? <end>"),
    ("May I borrow this book?", "<start> may i borrow this book ? <end>"),
    ("Él tiene 3 perros, ¡y 12 gatos!", "<start> el tiene perros , y gatos ! <end>"),
    ("  Hola    mundo...  ", "<start> hola mundo . . . <end>"),
    ("Tom's car - it's red.", "<start> tom s car it s red . <end>"),
    ("Ñandú PINGÜINO à la crème", "<start> nandu pinguino a la creme <end>"),
    ("a\tb\nc\r\nd", "<start> a b c d <end>"),
    ("¿¿Qué??", "<start> ¿ ¿ que ? ? <end>"),
    ("1,000", "<start> , <end>"),
    ("", "<start> <end>"),
    ("123 #$%", "<start> <end>"),
    ("中文 straße", "<start> stra e <end>"),
])
def test_preprocess_hand_examples(raw, expected):
    assert preprocess_sentence(raw) == expected


def test_preprocess_composed_and_decomposed_accents_agree():
    composed = "canción está aquí"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert preprocess_sentence(composed) == preprocess_sentence(decomposed) == "<start> cancion esta aqui <end>"


def test_preprocess_random_strings(rng, seed):
    alphabet = list("abcXYZ áéíóúñüÁÑ ¿?¡!.,;:'\"-() 0123456789\t\n€中") + ["\u0301", "  "]
    marks = set("?.!,¿")
    for _ in range(200):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))))
        out = preprocess_sentence(s)
        words = out.split(" ")
        assert words[0] == START_TOKEN and words[-1] == END_TOKEN, f"seed {seed}: {s!r} -> {out!r}"
        for w in words[1:-1]:
            assert (w in marks) or (w.isascii() and w.isalpha() and w.islower()), f"seed {seed}: {s!r} -> {out!r}"
        inner = " ".join(words[1:-1])
        assert preprocess_sentence(inner) == out, f"seed {seed}: not idempotent on {s!r}"


def test_preprocess_type_error():
    with pytest.raises(TypeError, match="s: expected a str"):
        preprocess_sentence(b"hola")


# --------------------------------------------------------------------------- tokenizer
def _random_sentences(rng, n, vocab):
    words = [f"w{k}" for k in range(vocab)]
    # Zipf-like frequencies so that both distinct counts and ties occur
    p = 1.0 / np.arange(1, vocab + 1)
    p /= p.sum()
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 12)), p=p)) for _ in range(n)]


def test_tokenizer_indices_by_frequency_then_word(rng, seed):
    sents = _random_sentences(rng, 300, 40)
    tok = WordTokenizer().fit(sents)
    counts = {}
    for s in sents:
        for w in s.split():
            counts[w] = counts.get(w, 0) + 1
    assert sorted(tok.word_index.values()) == list(range(1, len(counts) + 1)), f"seed {seed}"
    assert 0 not in tok.index_word and tok.vocab_size == len(counts) + 1
    order = [tok.index_word[i] for i in range(1, tok.vocab_size)]
    assert order == sorted(counts, key=lambda w: (-counts[w], w)), f"seed {seed}"
    assert tok.word_counts == counts
    # the order of the fitted sentences does not matter
    shuffled = [sents[i] for i in rng.permutation(len(sents))]
    assert WordTokenizer().fit(shuffled) == tok, f"seed {seed}"


def test_tokenizer_tie_break_is_alphabetical():
    tok = WordTokenizer().fit(["b a c", "c"])
    assert tok.word_index == {"c": 1, "a": 2, "b": 3}


def test_tokenizer_round_trip_and_padding(rng, seed):
    sents = [f"{START_TOKEN} {s} {END_TOKEN}" for s in _random_sentences(rng, 100, 25)]
    tok = WordTokenizer().fit(sents)
    for s in sents[:20]:
        ids = tok.encode(s)
        assert ids.dtype == np.int32 and ids.ndim == 1 and (ids > 0).all()
        assert tok.decode(ids, stop_at_end=False, strip_markers=False) == s, f"seed {seed}"
        assert tok.decode(ids) == " ".join(s.split()[1:-1]), f"seed {seed}"
    batch = tok.encode_batch(sents)
    lengths = [len(s.split()) for s in sents]
    assert batch.dtype == np.int32 and batch.shape == (len(sents), max(lengths))
    for row, s, n in zip(batch, sents, lengths):
        assert (row[:n] == tok.encode(s)).all() and (row[n:] == 0).all(), f"seed {seed}"
        assert tok.decode(row, stop_at_end=False, strip_markers=False) == s  # padding dropped
    assert tok.encode_batch(sents[:3], maxlen=20).shape == (3, 20)
    with pytest.raises(ValueError, match="more than maxlen=1"):
        tok.encode_batch(sents[:3], maxlen=1)


def test_decode_stops_at_end_and_handles_markers():
    tok = WordTokenizer().fit(["<start> hola mundo <end>"])
    ids = [tok.word_index[w] for w in "<start> hola <end> mundo mundo".split()] + [0, 0]
    assert tok.decode(ids) == "hola"
    assert tok.decode(ids, strip_markers=False) == "<start> hola <end>"
    assert tok.decode(ids, stop_at_end=False) == "hola mundo mundo"
    assert tok.decode(np.array(ids, dtype=np.int64)) == "hola"
    assert tok.decode([]) == ""
    with pytest.raises(ValueError, match="index 99 is not in the vocabulary"):
        tok.decode([99])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode([[1, 2]])


def test_unknown_words_raise_listing_them():
    tok = WordTokenizer().fit(["el gato", "el perro"])
    with pytest.raises(ValueError, match=r"2 unknown word\(s\): 'la', 'casa'"):
        tok.encode("la casa el")
    with pytest.raises(ValueError, match=r"'raton' \(sentence 1\)"):
        tok.encode_batch(["el gato", "el raton"])


def test_oov_token():
    tok = WordTokenizer(oov_token="<unk>").fit(["el gato", "el perro el"])
    assert tok.word_index["<unk>"] == 1 and tok.word_index["el"] == 2
    assert tok.encode("el raton").tolist() == [2, 1]
    assert tok.decode([2, 1]) == "el <unk>"
    with pytest.raises(ValueError, match="oov_token"):
        WordTokenizer(oov_token="two words")


def test_tokenizer_json_round_trip(rng, seed, tmp_path):
    for oov in (None, "<unk>"):
        tok = WordTokenizer(oov_token=oov).fit(_random_sentences(rng, 50, 30) + ["¿ qué ?"])
        text = tok.to_json()
        json.loads(text)  # plain JSON, storable in a checkpoint
        back = WordTokenizer.from_json(text)
        assert back == tok and back.index_word == tok.index_word, f"seed {seed}"
        assert (back.encode("w0 w1 ¿") == tok.encode("w0 w1 ¿")).all()
        path = tmp_path / "tok.json"
        path.write_text(text, encoding="utf-8")
        assert WordTokenizer.from_json(path.read_bytes()) == tok


@pytest.mark.parametrize("payload, match", [
    ("not json", "not valid JSON"),
    ('{"format": "other"}', "format"),
    ('{"format": "fusedrnn.WordTokenizer", "version": 9, "words": [], "counts": []}', "version"),
    ('{"format": "fusedrnn.WordTokenizer", "version": 1, "words": ["a", "a"], "counts": [1, 1]}', "more than once"),
    ('{"format": "fusedrnn.WordTokenizer", "version": 1, "words": ["a b"], "counts": [1]}', "'words'"),
    ('{"format": "fusedrnn.WordTokenizer", "version": 1, "words": ["a"], "counts": []}', "'counts'"),
    ('{"format": "fusedrnn.WordTokenizer", "version": 1, "words": ["a"], "counts": [1], "oov_token": "<unk>"}',
     "first word"),
])
def test_tokenizer_from_json_rejects_malformed(payload, match):
    with pytest.raises(ValueError, match=match):
        WordTokenizer.from_json(payload)


def test_unfitted_tokenizer():
    with pytest.raises(RuntimeError, match="not fitted"):
        WordTokenizer().encode("a")


def test_pad_post():
    out = pad_post([[1, 2, 3], [], [4]])
    assert out.dtype == np.int32 and out.tolist() == [[1, 2, 3], [0, 0, 0], [4, 0, 0]]
    assert pad_post([]).shape == (0, 0)


# --------------------------------------------------------------------------- the real file
@needs_data
def test_load_pairs_real_file():
    pairs = load_pairs(SPA_TXT)
    assert len(pairs) == 118_964
    assert pairs[0] == ("Ve.", "Go.") and pairs[1] == ("Vete.", "Go.")
    assert all(s and e and "\t" not in s + e for s, e in pairs)


@needs_data
@pytest.mark.parametrize("where", ["file", "folder", "parent", "env"])
def test_load_pairs_search_places(where, monkeypatch):
    path = {"file": SPA_TXT, "folder": SPA_TXT.parent, "parent": SHARED_DATA, "env": None}[where]
    if where == "env":
        monkeypatch.setenv(locate.ENV_VAR, str(SHARED_DATA))
    assert load_pairs(path, num_examples=3) == [("Ve.", "Go."), ("Vete.", "Go."), ("Vaya.", "Go.")]


@needs_data
def test_num_examples_takes_the_first_lines(rng, seed):
    n = int(rng.integers(1, 3000))
    assert load_pairs(SPA_TXT, num_examples=n) == load_pairs(SPA_TXT, num_examples=3000)[:n], f"seed {seed}"
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_examples"):
            load_pairs(SPA_TXT, num_examples=bad)


@needs_data
def test_load_translation_default_30000():
    data = load_translation(SHARED_DATA)
    assert isinstance(data, TranslationData)
    assert data.source.shape == (30000, 16) and data.target.shape == (30000, 11)
    assert data.source.dtype == data.target.dtype == np.int32
    assert (data.max_source_len, data.max_target_len) == (16, 11)
    assert (data.source_tokenizer.vocab_size, data.target_tokenizer.vocab_size) == (9414, 4935)
    assert len(data.train_idx) == 24000 and len(data.val_idx) == 6000
    assert data.source_train.shape == (24000, 16) and data.target_val.shape == (6000, 11)
    assert data.pairs[0] == ("<start> ve . <end>", "<start> go . <end>")
    assert data.decode_target(data.target[0]) == "go ."


@needs_data
def test_load_translation_arrays_split_and_seed(rng, seed):
    n = int(rng.integers(200, 2000))
    frac = float(rng.uniform(0.05, 0.5))
    split_seed = int(rng.integers(0, 2**31))
    data = load_translation(SPA_TXT, num_examples=n, val_fraction=frac, seed=split_seed)
    msg = f"seed {seed}: n={n} frac={frac} split_seed={split_seed}"
    assert len(data.pairs) == n and data.source.shape[0] == data.target.shape[0] == n, msg
    raw = load_pairs(SPA_TXT, num_examples=n)
    assert data.pairs == [(preprocess_sentence(s), preprocess_sentence(e)) for s, e in raw], msg
    # post-padding: the words, then zeros; <start> first, <end> last
    for arr, tok, side in ((data.source, data.source_tokenizer, 0), (data.target, data.target_tokenizer, 1)):
        lengths = np.array([len(p[side].split()) for p in data.pairs])
        assert arr.shape[1] == lengths.max(), msg
        positions = np.arange(arr.shape[1])[None, :]
        assert ((arr != 0) == (positions < lengths[:, None])).all(), msg
        assert (arr[:, 0] == tok.word_index[START_TOKEN]).all(), msg
        assert (arr[np.arange(n), lengths - 1] == tok.word_index[END_TOKEN]).all(), msg
        k = int(rng.integers(0, n))
        assert tok.decode(arr[k], strip_markers=False) == data.pairs[k][side], msg
    # the split: sizes, a partition, sorted, reproducible, different for another seed
    n_val = int(round(n * frac))
    assert len(data.val_idx) == n_val and len(data.train_idx) == n - n_val, msg
    assert np.array_equal(np.sort(np.concatenate([data.train_idx, data.val_idx])), np.arange(n)), msg
    assert (np.diff(data.train_idx) > 0).all() and (np.diff(data.val_idx) > 0).all(), msg
    again = load_translation(SPA_TXT, num_examples=n, val_fraction=frac, seed=split_seed)
    assert np.array_equal(again.val_idx, data.val_idx) and np.array_equal(again.source, data.source), msg
    other = load_translation(SPA_TXT, num_examples=n, val_fraction=frac, seed=split_seed + 1)
    assert not np.array_equal(other.val_idx, data.val_idx), msg
    assert np.array_equal(data.source_val, data.source[data.val_idx])


@needs_data
def test_encode_source_for_inference(rng, seed):
    data = load_translation(SPA_TXT, num_examples=2000)
    raw = load_pairs(SPA_TXT, num_examples=2000)
    ks = rng.integers(0, 2000, size=5)
    x = data.encode_source([raw[k][0] for k in ks])
    assert x.shape == (5, data.max_source_len) and x.dtype == np.int32
    assert np.array_equal(x, data.source[ks]), f"seed {seed}: rows {ks}"
    assert np.array_equal(data.encode_source(raw[ks[0]][0]), data.source[ks[:1]])  # one str: one row
    with pytest.raises(ValueError, match="unknown word.*'xilofono'"):
        data.encode_source("Xilófono")


@needs_data
def test_load_translation_bad_val_fraction():
    for bad in (-0.1, 1.0, "0.2", None):
        with pytest.raises(ValueError, match="val_fraction"):
            load_translation(SPA_TXT, num_examples=10, val_fraction=bad)
    assert len(load_translation(SPA_TXT, num_examples=10, val_fraction=0.0).val_idx) == 0


# --------------------------------------------------------------------------- synthetic files
def _write(tmp_path, text, name="spa.txt", mode="w"):
    p = tmp_path / name
    if mode == "w":
        p.write_text(text, encoding="utf-8", newline="")
    else:
        p.write_bytes(text)
    return p


def test_load_pairs_format_details(tmp_path):
    p = _write(tmp_path, "\ufeffGo.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org\r\n\nHi.\tHola.\r\n  \nRun!\t¡Corre!")
    assert load_pairs(p) == [("Ve.", "Go."), ("Hola.", "Hi."), ("¡Corre!", "Run!")]
    assert load_pairs(tmp_path) == load_pairs(p)  # a folder holding spa.txt


@pytest.mark.parametrize("content, line, match", [
    ("Go.\tVe.\nHi.\tHola.\nno tab here\n", 3, "no tab"),
    ("Go.\tVe.\n\tHola.\n", 2, "English"),
    ("Go.\tVe.\nHi.\t  \n", 2, "Spanish"),
])
def test_malformed_line_names_file_and_line(tmp_path, content, line, match):
    p = _write(tmp_path, content)
    with pytest.raises(ValueError, match=rf"spa\.txt:{line}: .*{match}"):
        load_pairs(p)


def test_invalid_utf8_names_the_line(tmp_path):
    p = _write(tmp_path, b"Go.\tVe.\nHi.\tHol\xe1.\n", mode="b")
    with pytest.raises(ValueError, match=r"spa\.txt:2: not valid UTF-8"):
        load_pairs(p)


def test_num_examples_stops_before_a_later_bad_line(tmp_path):
    p = _write(tmp_path, "Go.\tVe.\nHi.\tHola.\nbroken\n")
    assert load_pairs(p, num_examples=2) == [("Ve.", "Go."), ("Hola.", "Hi.")]


def test_load_translation_synthetic(tmp_path):
    p = _write(tmp_path, "Go.\tVe.\nGo!\t¡Vete!\nI won!\t¡He ganado!\nWho?\t¿Quién?\nWow!\t¡Órale!\n")
    data = load_translation(p, num_examples=None, val_fraction=0.4, seed=3)
    assert data.pairs[1] == ("<start> vete ! <end>", "<start> go ! <end>")
    assert data.pairs[4] == ("<start> orale ! <end>", "<start> wow ! <end>")
    assert data.source.shape == (5, 5) and data.target.shape == (5, 5)  # "<start> he ganado ! <end>", "<start> i won ! <end>"
    assert len(data.val_idx) == 2 and len(data.train_idx) == 3
    assert data.source_tokenizer.decode(data.source[3], strip_markers=False) == "<start> ¿ quien ? <end>"


def test_empty_file(tmp_path):
    p = _write(tmp_path, "\n\n")
    assert load_pairs(p) == []
    with pytest.raises(ValueError, match="no sentence pairs"):
        load_translation(p)


# --------------------------------------------------------------------------- missing file
def test_missing_file_raises_data_not_found(tmp_path, monkeypatch):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv(locate.ENV_VAR, str(empty))
    with pytest.raises(DataNotFoundError, match=r"spa-eng/spa\.txt") as info:
        load_pairs()
    message = str(info.value)
    assert str(empty) in message and str(tmp_path / "xdg-cache") in message
    assert not (tmp_path / "xdg-cache").exists()  # looking does not create the cache folder
    with pytest.raises(DataNotFoundError):
        load_translation()


def test_missing_explicit_path(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_pairs(tmp_path / "nowhere" / "spa.txt")
    with pytest.raises(DataNotFoundError, match=r"spa-eng/spa\.txt"):
        load_pairs(tmp_path)  # an existing folder without the file
