"""Keras 3 drop-in layers computed by fusedrnn's fused kernels.

``from fusedrnn.keras import LSTM`` instead of ``from keras.layers import LSTM``: same
constructor, weights, outputs and gradients; see docs/keras.md for what is fused.
"""

from fusedrnn.keras.attention import AdditiveAttention, Attention
from fusedrnn.keras.recurrent import GRU, LSTM, SimpleRNN
from fusedrnn.keras.saving import load_model

__all__ = ["AdditiveAttention", "Attention", "GRU", "LSTM", "SimpleRNN", "load_model"]
