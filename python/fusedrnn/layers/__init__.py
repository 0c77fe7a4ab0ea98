"""Layers with Keras's constructor arguments, weight layout and return values.

Every layer follows the contract in :mod:`fusedrnn.layers.base` (explicit ``backward``,
``params``/``grads`` for optimizers, ``compute_mask``, ``get_config``).
"""

from fusedrnn.layers.attention import AdditiveAttention, Attention, BahdanauAttention
from fusedrnn.layers.core import Dense, Dropout, Embedding
from fusedrnn.layers.recurrent import GRU, LSTM, SimpleRNN
from fusedrnn.layers.wrappers import Bidirectional

__all__ = ["AdditiveAttention", "Attention", "BahdanauAttention", "Bidirectional", "Dense", "Dropout", "Embedding",
           "GRU", "LSTM", "SimpleRNN"]
