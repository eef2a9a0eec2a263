"""Colours and sizes shared by every picture nnlab draws."""

from __future__ import annotations

import numpy as np

PANEL_INCHES = 5.6  # one animation panel is a 5.6-inch square (plus room for titles)
TITLE_SIZE = 10
LABEL_SIZE = 8  # class tags, legends
DENSITY_GRID = 160  # density grid points per axis
# The prior N(0, I) drawn as dashed circles at radius 1 and 2: (radius, alpha)
PRIOR_CIRCLES = ((1, 0.9), (2, 0.5))
PRIOR_COLOR = "0.15"
POINT_ALPHA = 0.6
LEGEND_CHARS = 30  # a class name is cut to this many characters in legends and tags


def shown_name(name: str) -> str:
    """A class name as a picture shows it: whole, or cut with an ellipsis past
    LEGEND_CHARS (a 250-character folder name would push every other name off the canvas)."""
    return name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"


# Ten colours told apart at the opacities the density panels use (0.28-0.7 over white):
# the smallest CIELAB distance between two of them blended at 45% is 20, against 11 for
# matplotlib's tab10, whose purple/pink (Coat/Shirt) and brown/grey (Sandal/Sneaker) blur.
CLASS_COLORS = (
    "#1f5fbf",  # blue
    "#ff7f0e",  # orange
    "#1a9e1a",  # green
    "#d62728",  # red
    "#6a0dad",  # purple
    "#8b4513",  # brown
    "#e6c200",  # gold
    "#1a1a1a",  # black
    "#ff5ec4",  # pink
    "#00c8d2",  # cyan
)


def class_colors(n: int = 10) -> np.ndarray:
    """The class colours as RGB in [0, 1], shape (max(n, 10), 3): the ten above, then
    matplotlib's tab20 and its hues again for datasets with more classes."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    more = [colormaps["tab20"](i % 20)[:3] for i in range(max(n - 10, 0))]
    return np.array([to_rgb(c) for c in CLASS_COLORS] + more)
