"""fusedrnn for PyTorch: drop-in ``torch.nn`` recurrent modules, attention modules and autograd
operators (:mod:`fusedrnn.torch.ops`), all on fusedrnn's fused kernels.

Needs ``torch`` (``pip install "fusedrnn[torch]"``). See docs/torch.md.
"""

from fusedrnn.torch import ops
from fusedrnn.torch.attention import AdditiveAttention, BahdanauAttention, LuongAttention
from fusedrnn.torch.recurrent import GRU, LSTM, RNN

__all__ = ["AdditiveAttention", "BahdanauAttention", "GRU", "LSTM", "LuongAttention", "RNN", "ops"]
