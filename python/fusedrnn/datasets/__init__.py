"""Loaders for the reference tasks' data: IMDB reviews, the Nietzsche text, Spanish-English pairs.

Files are found by :mod:`fusedrnn.datasets.locate` (an explicit path, ``$FUSEDRNN_DATA``, then
the user cache folder). The loader modules can also be imported directly, e.g.
``fusedrnn.datasets.imdb``.
"""

from fusedrnn.datasets.imdb import encode_texts, get_word_index, load_imdb, pad_sequences
from fusedrnn.datasets.locate import DataNotFoundError, find_data_file
from fusedrnn.datasets.nietzsche import CharVocab, load_text, make_windows, train_val_split

__all__ = [
    "DataNotFoundError", "find_data_file",
    "load_imdb", "get_word_index", "encode_texts", "pad_sequences",
    "load_text", "CharVocab", "make_windows", "train_val_split",
]
