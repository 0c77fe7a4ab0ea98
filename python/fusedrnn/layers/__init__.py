"""Layers with Keras\x27s constructor arguments and weight layout."""
