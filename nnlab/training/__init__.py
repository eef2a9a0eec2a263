"""Torch: data, models, the training loop, snapshots, continual backprop, loading, embedding."""
