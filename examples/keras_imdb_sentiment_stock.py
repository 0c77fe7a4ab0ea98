#!/usr/bin/env python3
"""IMDB sentiment with an LSTM: the classic Keras ``imdb_lstm`` example as a plain Keras 3 program.

The model of ``fusedrnn train sentiment``: Embedding(20000, 128) -> LSTM(128, dropout=0.2,
recurrent_dropout=0.2) -> Dense(1, sigmoid); Adam, binary cross-entropy, batch 32, reviews cut
to their last 80 words (pre-truncation, pre-padding), 3 epochs, validated on the 25,000 test
reviews. The reviews come from fusedrnn's IMDB loader (``keras.datasets.imdb``'s encoding, read
from ``aclImdb.tar.gz`` without the network).

Two copies of this program ship in ``examples/``, differing by one line, the LSTM import::

    keras_imdb_sentiment.py        from fusedrnn.keras import LSTM    (fused kernels)
    keras_imdb_sentiment_stock.py  from keras.layers import LSTM      (stock Keras)

    diff examples/keras_imdb_sentiment_stock.py examples/keras_imdb_sentiment.py

Run (``--limit`` reviews per split and ``--epochs`` for a quick run)::

    python examples/keras_imdb_sentiment.py --data ../shared/data --epochs 1 --limit 2000
"""

import argparse
import time

import keras

from fusedrnn.datasets import imdb
from keras.layers import LSTM

NUM_WORDS = 20000
MAXLEN = 80
BATCH_SIZE = 32


def build_model(num_words=NUM_WORDS, maxlen=MAXLEN):
    """Embedding -> LSTM -> Dense(sigmoid), compiled with Adam and binary cross-entropy."""
    model = keras.Sequential([
        keras.Input((maxlen,), dtype="int32"),
        keras.layers.Embedding(num_words, 128),
        LSTM(128, dropout=0.2, recurrent_dropout=0.2),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def load_data(data=None, limit=None, num_words=NUM_WORDS, maxlen=MAXLEN):
    """((x_train, y_train), (x_test, y_test)): (N, maxlen) int32 word ids, float32 0/1 labels."""
    (x_train, y_train), (x_test, y_test) = imdb.load_imdb(data, num_words=num_words, limit=limit)
    x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
    x_test = keras.utils.pad_sequences(x_test, maxlen=maxlen)
    return (x_train, y_train.astype("float32")), (x_test, y_test.astype("float32"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="aclImdb.tar.gz, or a folder holding it (default: $FUSEDRNN_DATA)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, help="use only the first LIMIT reviews of each split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    print("Loading data...")
    (x_train, y_train), (x_test, y_test) = load_data(args.data, args.limit)
    print(f"{len(x_train)} train sequences, {len(x_test)} test sequences, shape {x_train.shape}")

    model = build_model()
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=args.epochs, validation_data=(x_test, y_test))
    print(f"training took {time.perf_counter() - start:.1f} s")
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, verbose=0)
    print(f"Test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    return model


if __name__ == "__main__":
    main()
