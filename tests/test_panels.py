"""The animation panels: what each draws where."""

from __future__ import annotations

import numpy as np

from nnlab import record
from nnlab.render.panels import DensityPanel
from nnlab.render.style import class_colors


def test_density_panel_colours_each_class_where_it_lives():
    """Two classes far apart: their regions are coloured, the space between stays white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    mu = np.where(labels[:, None] == 0, [-2.0, 0.0], [2.0, 0.0]) + rng.normal(0, 0.1, (100, 2))
    rec = record.Recording(
        "vae",
        np.array([0]),
        np.array([0.0]),
        labels,
        np.arange(100),
        "test",
        mu=mu[None],
        sd=np.full((1, 100, 2), 0.3),
    )
    fig, ax = plt.subplots()
    colors = class_colors()
    panel = DensityPanel(ax, rec, [0, 1], colors, ["a", "b"], (-4, 4, -4, 4))
    panel.update(0)
    img = np.asarray(panel.image.get_array(), dtype=np.float64) / 255
    xs = panel.xs

    def pixel(x, y):
        return img[np.abs(panel.ys - y).argmin(), np.abs(xs - x).argmin()]

    for c, x in ((0, -2.0), (1, 2.0)):
        p = pixel(x, 0.0)
        assert np.linalg.norm(p - colors[c]) < np.linalg.norm(p - colors[1 - c])
        assert not np.allclose(p, 1.0)
    assert np.allclose(pixel(0.0, 0.0), 1.0) and np.allclose(pixel(0.0, 3.5), 1.0)
    plt.close(fig)
