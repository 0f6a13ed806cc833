"""Keras Explorer: see a Keras model's layer graph at once, then its activations on your own images."""

__version__ = "0.1.0"
