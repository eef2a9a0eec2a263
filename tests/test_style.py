"""Colours that can be told apart at the opacities the pictures use."""

from __future__ import annotations

import itertools

import numpy as np

from nnlab.render.style import class_colors


def _lab(rgb):
    rgb = np.asarray(rgb, float)
    c = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def _closest_pair(colors, alpha):
    lab = _lab(1 - alpha + alpha * np.asarray(colors))
    return min(np.linalg.norm(a - b) for a, b in itertools.combinations(lab, 2))


def test_ten_classes_distinguishable_over_white():
    from matplotlib import colormaps

    tab10 = np.array(colormaps["tab10"].colors)
    for alpha in (0.3, 0.45, 0.7):  # the density panels' range of opacities
        ours = _closest_pair(class_colors(), alpha)
        assert ours > 1.6 * _closest_pair(tab10, alpha) and ours > 9, alpha
