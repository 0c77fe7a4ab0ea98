"""Layers with Keras's constructor arguments, weight layout and return values."""

from fusedrnn.layers.attention import AdditiveAttention, Attention, BahdanauAttention
from fusedrnn.layers.recurrent import GRU, LSTM, SimpleRNN

__all__ = ["AdditiveAttention", "Attention", "BahdanauAttention", "GRU", "LSTM", "SimpleRNN"]
