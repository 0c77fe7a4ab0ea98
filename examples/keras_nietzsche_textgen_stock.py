#!/usr/bin/env python3
"""Character-level text generation on Nietzsche: the classic Keras ``lstm_text_generation`` example
as a plain Keras 3 program.

The model of ``fusedrnn train textgen``: LSTM(128) over 40-character windows (one-hot, 57
characters) -> Dense(57, softmax); RMSprop(learning_rate=0.01), sparse categorical
cross-entropy, batch 128, windows every 3 characters, the last 5% of the text held out for
validation. After each epoch it prints samples at temperatures 0.2, 0.5, 1.0 and 1.2. The text
and its windows come from fusedrnn's Nietzsche loader; one-hot batches are made on the fly (the
whole one-hot training set would take 434 MB).

Two copies of this program ship in ``examples/``, differing by one line, the LSTM import::

    keras_nietzsche_textgen.py        from fusedrnn.keras import LSTM    (fused kernels)
    keras_nietzsche_textgen_stock.py  from keras.layers import LSTM      (stock Keras)

    diff examples/keras_nietzsche_textgen_stock.py examples/keras_nietzsche_textgen.py

Run (``--limit`` characters of the text and ``--epochs`` for a quick run)::

    python examples/keras_nietzsche_textgen.py --data ../shared/data --epochs 1 --limit 60000
"""

import argparse
import math
import time

import keras
import numpy as np

from fusedrnn.datasets import nietzsche
from keras.layers import LSTM

MAXLEN = 40
STEP = 3
BATCH_SIZE = 128
TEMPERATURES = (0.2, 0.5, 1.0, 1.2)


def build_model(chars, maxlen=MAXLEN):
    """LSTM(128) over one-hot windows -> Dense(softmax), compiled with RMSprop(0.01)."""
    model = keras.Sequential([
        keras.Input((maxlen, chars)),
        LSTM(128),
        keras.layers.Dense(chars, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class OneHotWindows(keras.utils.PyDataset):
    """Batches (one-hot windows (B, maxlen, chars) float32, next-character ids (B,)), shuffled
    every epoch when `shuffle`."""

    def __init__(self, windows, targets, chars, batch_size=BATCH_SIZE, shuffle=True, seed=0):
        super().__init__()
        self.windows, self.targets, self.chars = windows, targets, chars
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(targets))
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return one_hot(self.windows[rows], self.chars), self.targets[rows]

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)


def one_hot(ids, chars):
    """(..., n) integer ids -> (..., n, chars) float32 one-hot."""
    return np.eye(chars, dtype="float32")[ids]


def load_data(data=None, limit=None, maxlen=MAXLEN, step=STEP):
    """(vocab, train_text, (x_train, y_train), (x_val, y_val)): windows of character ids."""
    text = nietzsche.load_text(data)
    if limit is not None:
        text = text[:limit]
    vocab = nietzsche.CharVocab.from_text(text)
    train_text, val_text = nietzsche.train_val_split(text, 0.05)
    train = nietzsche.make_windows(vocab.encode(train_text), maxlen=maxlen, step=step)
    val = nietzsche.make_windows(vocab.encode(val_text), maxlen=maxlen, step=step)
    return vocab, train_text, train, val


def sample(probabilities, temperature, rng):
    """A character id drawn from the probabilities reweighted by `temperature`."""
    logits = np.log(np.asarray(probabilities, dtype="float64") + 1e-12) / temperature
    p = np.exp(logits - logits.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def generate(model, vocab, seed_text, length, temperature, rng, maxlen=MAXLEN):
    """`length` characters continuing `seed_text`, each predicted from the `maxlen` before it."""
    window = list(vocab.encode(seed_text[-maxlen:]))
    out = []
    for _ in range(length):
        x = one_hot(np.asarray([window]), len(vocab))
        probabilities = keras.ops.convert_to_numpy(model(x, training=False))[0]
        out.append(sample(probabilities, temperature, rng))
        window = (window + out[-1:])[-maxlen:]
    return vocab.decode(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="nietzsche.txt, or a folder holding it (default: the copy in fusedrnn)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, help="use only the first LIMIT characters of the text")
    parser.add_argument("--sample-length", type=int, default=200, help="characters generated per temperature")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vocab, train_text, (x, y), (xv, yv) = load_data(args.data, args.limit)
    chars = len(vocab)
    print(f"corpus: {len(train_text)} training characters, {chars} distinct; {len(y)} training windows, "
          f"{len(yv)} validation windows")

    model = build_model(chars)
    model.summary()
    train = OneHotWindows(x, y, chars, seed=args.seed)
    val = OneHotWindows(xv, yv, chars, shuffle=False) if len(yv) else None
    for epoch in range(args.epochs):
        start = time.perf_counter()
        history = model.fit(train, validation_data=val, epochs=epoch + 1, initial_epoch=epoch)
        logs = {k: v[-1] for k, v in history.history.items()}
        line = f"epoch {epoch + 1}: {logs['loss'] / math.log(2):.3f} bits/char"
        if "val_loss" in logs:
            line += f", validation {logs['val_loss'] / math.log(2):.3f} bits/char"
        print(line + f" ({time.perf_counter() - start:.1f} s)")
        begin = int(rng.integers(0, len(train_text) - MAXLEN))
        seed_text = train_text[begin:begin + MAXLEN]
        print(f'  seed: "{seed_text}"')
        for temperature in TEMPERATURES:
            text = generate(model, vocab, seed_text, args.sample_length, temperature, rng)
            print(f"  [temperature {temperature}] {text!r}")
    return model


if __name__ == "__main__":
    main()
