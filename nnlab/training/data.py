"""Datasets as in-memory tensors, split into train, validation and test.

A whole split is one float tensor of shape (N, C*H*W) in [0, 1] on the training device,
and batches are drawn by index from a seeded permutation: no per-item transforms, no
workers. Networks that need images (convolutions) view rows as (C, H, W). Which datasets
exist and how their files are read is nnlab.data's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnlab.data.catalog import (  # noqa: F401  (re-exported: the training layer's names)
    DEBIAN_DIRS,
    RawData,
    default_data_dir,
    load_raw,
    load_sample,
)
from nnlab.helpers.errors import NnlabError


@dataclass
class Splits:
    """Train, validation and test tensors on one device, pixels in [0, 1]."""

    name: str
    source: str
    train_x: object  # torch.Tensor (N, C*H*W) float32
    train_y: object  # torch.Tensor (N,) int64
    train_index: np.ndarray  # positions of train_x rows in the original train split
    val_x: object
    val_y: object
    val_index: np.ndarray
    test_x: object
    test_y: object
    test_index: np.ndarray
    shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width of a row
    classes: list[str] = field(default_factory=list)

    def channel_statistics(self) -> tuple[list[float], list[float]]:
        """The training split's per-channel pixel means and sds (channel_statistics)."""
        return channel_statistics(self.train_x, self.shape[0])

    def split(self, name: str):
        """Return (x, y, original indices) of 'train', 'val' or 'test'."""
        if name not in ("train", "val", "test"):
            raise NnlabError(f"unknown split '{name}' (choose from: train, val, test)")
        return (
            getattr(self, f"{name}_x"),
            getattr(self, f"{name}_y"),
            getattr(self, f"{name}_index"),
        )


def split(raw: RawData, val_fraction: float, seed: int, device="cpu") -> Splits:
    """Hold out a seeded validation split and move every split to `device` as float tensors."""
    import torch

    n = len(raw.train_labels)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    val_index, train_index = np.sort(order[:n_val]), np.sort(order[n_val:])
    test_index = np.arange(len(raw.test_labels))
    pixels = int(np.prod(raw.train_images.shape[1:]))  # explicit: an empty split has no -1

    def tensors(images, labels, index):
        x = torch.from_numpy(np.ascontiguousarray(images[index].reshape(len(index), pixels)))
        x = x.to(device=device, dtype=torch.float32).div_(255.0)
        return x, torch.from_numpy(labels[index]).to(device)

    tx, ty = tensors(raw.train_images, raw.train_labels, train_index)
    vx, vy = tensors(raw.train_images, raw.train_labels, val_index)
    sx, sy = tensors(raw.test_images, raw.test_labels, test_index)
    return Splits(
        raw.name,
        raw.source,
        tx,
        ty,
        train_index,
        vx,
        vy,
        val_index,
        sx,
        sy,
        test_index,
        raw.shape,
        list(raw.classes),
    )


STATISTICS_CHUNK = 10_000  # rows per float64 pass: CIFAR's train split at once would be 1.2 GB
STATISTICS_DECIMALS = 4  # as torchvision's examples write MNIST's (0.1307, 0.3081)


def channel_statistics(x, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the pixels of x (N, C*H*W), over every
    image and position (the population sd, as torchvision's Normalize constants are
    computed), summed in float64; a channel with no variation gets sd 1 (nothing to scale)."""
    import torch

    n = len(x)
    if n == 0:
        raise NnlabError("the training split has no images to compute pixel statistics from")
    total = torch.zeros(channels, dtype=torch.float64, device=x.device)
    squares = torch.zeros_like(total)
    for start in range(0, n, STATISTICS_CHUNK):
        part = (
            x[start : start + STATISTICS_CHUNK]
            .to(torch.float64)
            .view(-1, channels, x.shape[1] // channels)
        )
        total += part.sum(dim=(0, 2))
        squares += part.square().sum(dim=(0, 2))
    count = n * (x.shape[1] // channels)
    mean = total / count
    sd = (squares / count - mean.square()).clamp_min(0).sqrt()
    means = [round(float(m), STATISTICS_DECIMALS) for m in mean]
    sds = [round(float(s), STATISTICS_DECIMALS) or 1.0 for s in sd]
    return means, sds


def load(
    name: str,
    data_dir: str | Path | None,
    val_fraction: float,
    seed: int,
    device="cpu",
    *,
    image_size: int = 0,
    warn=None,
) -> Splits:
    """Load dataset `name` and return its splits as tensors on `device`."""
    raw = load_raw(name, data_dir, image_size=image_size, warn=warn)
    return split(raw, val_fraction, seed, device)


def load_for(cfg, device="cpu", *, warn=None) -> Splits:
    """The splits a run's config trains on: its dataset and data folder, split by its
    validation share and seed (the same splits in every command that reads the run).
    Refuses data that no longer match the run (a folder whose images changed)."""
    size = cfg.image_size
    raw = load_raw(cfg.dataset, cfg.data_dir or None, image_size=size, warn=warn)
    shape, classes = list(raw.shape), len(raw.classes)
    if shape != list(cfg.image_shape) or classes != cfg.num_classes:
        c, h, w = cfg.image_shape
        raise NnlabError(
            f"dataset {cfg.dataset} now holds {classes} classes of {shape[0]}x{shape[1]}x"
            f"{shape[2]} images; the run was trained on {cfg.num_classes} classes of "
            f"{c}x{h}x{w}"
        )
    return split(raw, cfg.val_fraction, cfg.seed, device)
