"""The shapes of the convolutional networks, computed without torch: feature-map sizes,
parameter counts and the smallest image each accepts. One place for the arithmetic that
the configs (sizes, ceilings, validation) and the torch networks (nnlab/families/networks)
both follow."""

from __future__ import annotations

CNN_KERNEL = 3  # the classifier's convolutions: 3x3, stride 1, no padding, then a 2x2 pool
VAE_KERNEL, VAE_STRIDE, VAE_PADDING = 4, 2, 1  # the VAE's: 4x4, stride 2, padding 1


def cnn_maps(shape: list[int], channels: list[int]) -> list[tuple[int, int, int]]:
    """(channels, height, width) after each 3x3 convolution, then after the 2x2 max-pool."""
    _, h, w = shape
    out = []
    for c in channels:
        h, w = h - CNN_KERNEL + 1, w - CNN_KERNEL + 1
        out.append((c, h, w))
    c = out[-1][0] if out else shape[0]
    out.append((c, h // 2, w // 2))
    return out


def cnn_min_side(channels: list[int]) -> int:
    """The smallest height and width the classifier's convolutions and pool accept."""
    return 2 * len(channels) + 2


def vae_maps(shape: list[int], channels: list[int]) -> list[tuple[int, int, int]]:
    """(channels, height, width) after each of the encoder's strided convolutions."""
    _, h, w = shape
    out = []
    for c in channels:
        h = (h + 2 * VAE_PADDING - VAE_KERNEL) // VAE_STRIDE + 1
        w = (w + 2 * VAE_PADDING - VAE_KERNEL) // VAE_STRIDE + 1
        out.append((c, h, w))
    return out


def vae_min_side(channels: list[int]) -> int:
    """The smallest height and width the VAE's encoder accepts: each strided convolution
    halves the side and its input must be at least 4 pixels (its kernel) wide."""
    return 2 ** (len(channels) + 1)


def conv_params(c_in: int, channels: list[int], kernel: int) -> int:
    """Weights and biases of a stack of convolutions of one kernel size."""
    total = 0
    for c in channels:
        total += c_in * c * kernel * kernel + c
        c_in = c
    return total


def dense_params(widths: list[int]) -> int:
    """Weights and biases of fully connected layers between consecutive widths."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def flat(map_: tuple[int, int, int]) -> int:
    """The units of a feature map."""
    return map_[0] * map_[1] * map_[2]
