"""Keras 3 drop-in layers computed by fusedrnn's fused kernels (work in progress)."""
