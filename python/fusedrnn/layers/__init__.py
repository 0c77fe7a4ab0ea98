"""Layers with Keras's constructor arguments, weight layout and return values."""

from fusedrnn.layers.recurrent import GRU, LSTM, SimpleRNN

__all__ = ["GRU", "LSTM", "SimpleRNN"]
