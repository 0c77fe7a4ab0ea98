"""fusedrnn for PyTorch: autograd operators (:mod:`fusedrnn.torch.ops`).

Needs ``torch`` (``pip install "fusedrnn[torch]"``). See docs/torch.md.
"""

from fusedrnn.torch import ops

__all__ = ["ops"]
