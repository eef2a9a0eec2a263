"""Colours and sizes shared by every picture nnlab draws."""

from __future__ import annotations

import numpy as np

PANEL_INCHES = 5.6  # one animation panel is a 5.6-inch square (plus room for titles)
DPI = 100
TITLE_SIZE = 10
LABEL_SIZE = 8  # class tags, legends
DENSITY_GRID = 160  # density grid points per axis
# The prior N(0, I) drawn as dashed circles at radius 1 and 2: (radius, alpha)
PRIOR_CIRCLES = ((1, 0.9), (2, 0.5))
PRIOR_COLOR = "0.15"
POINT_ALPHA = 0.6


def class_colors() -> np.ndarray:
    """Ten distinct RGB colours (matplotlib's tab10), shape (10, 3)."""
    from matplotlib import colormaps

    return np.array(colormaps["tab10"].colors)[:10, :3]
