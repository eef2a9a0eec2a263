"""nnlab: see what a neural network learns."""

__version__ = "0.1.0"
