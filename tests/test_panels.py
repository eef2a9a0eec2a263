"""The animation panels: what each draws where."""

from __future__ import annotations

import numpy as np

from nnlab.render.panels import DensityPanel, spread_labels
from nnlab.render.style import class_colors
from nnlab.store import record


def test_density_panel_colours_each_class_where_it_lives():
    """Two classes far apart: their regions are coloured, the space between stays white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    mu = np.where(labels[:, None] == 0, [-2.0, 0.0], [2.0, 0.0]) + rng.normal(0, 0.1, (100, 2))
    rec = record.Recording(
        np.array([0]),
        np.array([0.0]),
        labels,
        np.arange(100),
        "test",
        points=mu[None],
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


def test_class_labels_never_overlap_even_when_the_classes_do():
    """Ten classes crowded on a small circle: the labels are moved apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.repeat(np.arange(10), 20)
    rec = record.Recording(
        np.array([0]),
        np.array([0.0]),
        labels,
        np.arange(200),
        "test",
        points=(
            np.random.default_rng(0).normal(0, 0.05, (200, 2))
            + 1.2 * np.stack([np.cos(labels * 0.63), np.sin(labels * 0.63)], axis=1)
        )[None],
        sd=np.full((1, 200, 2), 0.7),
    )
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"] + ["Sandal", "Shirt"] * 2
    names += ["Bag"]
    fig, ax = plt.subplots(figsize=(5.6, 5.6), dpi=100)
    panel = DensityPanel(ax, rec, list(range(10)), class_colors(), names, (-4, 4, -4, 4))
    panel.update(0)
    fig.canvas.draw()
    shown = [t for t in panel.tags.values() if t.get_visible()]  # (hidden ones: no box)
    assert shown
    boxes = [t.get_window_extent() for t in shown]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= 1 or overlap_y <= 1, (shown[i].get_text(), shown[j].get_text())
    ax_box = ax.get_window_extent()
    assert all(ax_box.x0 - 1 <= b.x0 and b.x1 <= ax_box.x1 + 1 for b in boxes)
    plt.close(fig)


def test_spread_labels_leaves_separate_labels_alone():
    xy = np.array([[0.0, 0.0], [2.0, 2.0]])
    half = np.full((2, 2), 0.5)
    np.testing.assert_array_equal(spread_labels(xy, half, (-4, 4, -4, 4)), xy)


def test_labels_far_from_their_class_are_hidden_until_classes_separate():
    """Step 0, every class at one place: the labels pushed off their class's mean would
    name the wrong place, and when most would be, the few left said nothing (two stacked
    names): none is drawn, the legend names the colours; classes apart: every label
    shows, each with a white halo so it reads over its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.repeat(np.arange(10), 20)
    rng = np.random.default_rng(0)
    together = rng.normal(0, 0.05, (200, 2))
    apart = together + np.stack(
        [3 * np.cos(labels * 0.6), 3 * np.sin(labels * 0.6)], axis=1
    )  # ten classes on a circle of radius 3
    rec = record.Recording(
        np.array([0, 1]),
        np.array([0.0, 1.0]),
        labels,
        np.arange(200),
        "test",
        points=np.stack([together, apart]),
        sd=np.full((2, 200, 2), 0.1),
    )
    fig, ax = plt.subplots(figsize=(5.6, 5.6), dpi=100)
    panel = DensityPanel(
        ax, rec, list(range(10)), class_colors(), list("abcdefghij"), (-4, 4, -4, 4)
    )
    panel.update(0)  # most labels would be pushed off their classes: none is drawn (#38)
    assert not any(t.get_visible() for t in panel.tags.values())
    panel.update(1)
    assert all(t.get_visible() for t in panel.tags.values())
    assert all(t.get_path_effects() for t in panel.tags.values())  # the halo
    plt.close(fig)


def test_region_edges_are_a_one_cell_ramp_not_a_step():
    """#38 item 4: density outlines were stair-stepped by the grid."""
    from nnlab.render.panels import edge_coverage

    x = np.linspace(-3, 3, 121)
    dens = np.exp(-0.5 * (x[None, :] ** 2 + x[:, None] ** 2))  # level 0.5 at radius 1.18
    cover = edge_coverage(dens, 0.5)
    r = np.hypot(x[None, :], x[:, None])
    assert (cover[r < 1.0] == 1).all() and (cover[r > 1.4] == 0).all()
    ramp = (cover > 0.02) & (cover < 0.98)
    assert ramp.any() and (np.abs(r[ramp] - np.sqrt(2 * np.log(2))) < 0.06).all()


def test_the_cube_names_its_third_axis_and_draws_only_what_is_inside():
    """#38 item 5: the 3-D view was labelled z₁, z₂, h₃ and drew points beside its box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.render.panels import Scatter3DPanel

    points = np.zeros((2, 4, 3))
    points[:, 0] = [0.5, 0.5, 9.0]  # above the box
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    limits = (-1, 1, 0, 2, -0.5, 0.5)
    panel = Scatter3DPanel(
        ax, points, np.arange(4), [0, 1, 2, 3], class_colors(4), 2, limits, ("z₁", "z₂", "z₃")
    )
    assert ax.get_zlabel() == "z₃"
    assert ax.get_xlim() == (-1, 1) and ax.get_ylim() == (0, 2) and ax.get_zlim() == (-0.5, 0.5)
    panel.update(1)
    fig.canvas.draw()  # mplot3d sorts every point by depth: none may be NaN
    xs, ys, zs = panel.sc._offsets3d
    assert zs[0] == 0.5 and not np.isnan(np.asarray(zs)).any()  # onto the box's top
    assert panel.rgba[0, 3] == 0 and (panel.rgba[1:, 3] > 0).all()  # and not seen
    plt.close(fig)
