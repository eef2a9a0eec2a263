"""A recording prepared for drawing: fixed axes that follow the data, frame alignment."""

from __future__ import annotations

import numpy as np
import pytest

from nnlab.render import sources
from nnlab.store import record


def test_align_by_fraction_when_lengths_differ():
    def src(steps):
        r = record.Recording(
            np.array(steps),
            np.zeros(len(steps)),
            np.zeros(1, int),
            np.zeros(1, int),
            "test",
            np.zeros((len(steps), 1, 2), np.float32),
        )
        return sources.Source(None, None, r, "density")

    rows = sources.align([src([0, 10, 20, 30, 40]), src([0, 100, 200])], every=1)
    assert rows == [[0, 0], [1, 0], [2, 1], [3, 2], [4, 2]] or rows[0] == [0, 0]
    assert rows[-1] == [4, 2] and len(rows) == 5
    same = sources.align([src([0, 4, 8]), src([0, 4, 8])], every=2)
    assert same == [[0, 0], [2, 2]]


def _outlier_source(frames=200, n=1000, seed=0):
    """Points that shrink from +-5.5 to +-4.1 over training, with a few far out (|mu| up to
    8.6) in the first 3% of frames: the shape of a beta = 1 run's early transient."""
    rng = np.random.default_rng(seed)
    reach = np.linspace(5.5, 4.1, frames)[:, None, None]
    mu = rng.uniform(-1, 1, (frames, n, 2)) * reach
    early = int(0.03 * frames)
    mu[:early, :20] = rng.uniform(6.0, 8.6, (early, 20, 2)) * rng.choice([-1, 1], (early, 20, 2))
    return _density_source(mu, rng), mu


def _density_source(mu: np.ndarray, rng) -> sources.Source:
    """A density source of posterior means mu (frames, n, 2), sd 0.05, random classes."""
    frames, n, _ = mu.shape
    rec = record.Recording(
        np.arange(frames),
        np.linspace(0, 1, frames),
        rng.integers(0, 10, n),
        np.arange(n),
        "test",
        points=mu.astype(np.float32),
        sd=np.full((frames, n, 2), 0.05, np.float32),
    )
    return sources.Source(None, None, rec, "density")


def test_axes_follow_the_bulk_of_the_data_not_an_early_outlier():
    src, mu = _outlier_source()
    x0, x1, y0, y1 = sources.source_limits(src, list(range(10)))
    inside = (mu[..., 0] >= x0) & (mu[..., 0] <= x1) & (mu[..., 1] >= y0) & (mu[..., 1] <= y1)
    share = inside.mean(axis=1)
    assert (share >= 0.9).mean() >= 0.95  # >= 90% of the points in >= 95% of the frames
    last = mu[-1]
    used = np.ptp(last[:, 0]) * np.ptp(last[:, 1]) / ((x1 - x0) * (y1 - y0))
    assert used > 0.5, (x0, x1, used)  # less than half of the panel empty at the end
    outside = sources.outside_counts(src, list(range(10)), (x0, x1, y0, y1))
    assert outside[0] > 0 and outside[-1] == 0  # the frames say what they leave out


def test_density_axes_follow_a_drifting_cloud_and_keep_the_prior():
    """A cloud that drifts to x in [-5, 2] fills its panel (the README's sweep GIF spanned
    +-9 around the prior), on a square so the prior's circles stay round."""
    frames, n = 20, 500
    rng = np.random.default_rng(0)
    mu = np.stack([rng.uniform(-5, 2, n), rng.uniform(-1, 1, n)], axis=1)[None].repeat(frames, 0)
    x0, x1, y0, y1 = sources.source_limits(_density_source(mu, rng), list(range(10)))
    assert x1 - x0 == pytest.approx(y1 - y0)  # square
    assert x0 <= -5 and x1 >= 2.2 and y0 <= -2.2 and y1 >= 2.2  # data and the 2-sigma circle
    assert x1 - x0 < 7.8  # no wider than they need (it was 2 x 5.1 around the prior)


def test_the_end_of_training_is_in_view_even_after_a_late_drift():
    """#38 item 4: a class that moved out in the last few frames (under the 5% that set
    the scale) was cut off at the end, "19 points outside"."""
    frames, n = 100, 1000
    rng = np.random.default_rng(1)
    mu = rng.uniform(-2, 2, (frames, n, 2))
    mu[-3:, :100, 0] += 3.0  # a tenth of the points drift right in the last 3 frames
    src = _density_source(mu, rng)
    limits = sources.source_limits(src, list(range(10)))
    assert sources.outside_counts(src, list(range(10)), limits)[-1] <= n // 1000


def _scatter_source(points: np.ndarray, kind="scatter3d", method="") -> sources.Source:
    frames, n, _ = points.shape
    rec = record.Recording(
        np.arange(frames),
        np.linspace(0, 1, frames),
        np.arange(n) % 10,
        np.arange(n),
        "test",
        points.astype(np.float32),
    )
    return sources.Source(None, None, rec, kind, points=points, method=method)


def test_a_sigmoid_cube_is_the_unit_cube_and_any_other_fills_its_box():
    """#38 item 5: the box held [0, 1] and every point in one range for all three axes,
    so a layer in [-3, 0.2] x [0, 40] x ... filled a corner of it."""
    rng = np.random.default_rng(0)
    unit = _scatter_source(rng.uniform(0.1, 0.9, (5, 300, 3)))
    assert sources.source_limits(unit, list(range(10))) == (0.0, 1.0) * 3
    wide = rng.uniform(0, 1, (5, 300, 3)) * [3.2, 40.0, 0.5] - [3.0, 0.0, 0.0]
    limits = np.reshape(sources.source_limits(_scatter_source(wide), list(range(10))), (3, 2))
    span = wide.max(axis=(0, 1)) - wide.min(axis=(0, 1))
    assert np.all((limits[:, 1] - limits[:, 0]) < 1.1 * span)  # each axis its own range
    assert np.all((limits[:, 1] - limits[:, 0]) > 0.95 * span)


def test_outside_counts_and_shared_limits_in_three_dimensions():
    pts = np.zeros((2, 10, 3))
    pts[1, :3, 2] = 5.0  # three points above the box in the second frame
    src = _scatter_source(pts)
    assert sources.outside_counts(src, list(range(10)), (0, 1, 0, 1, 0, 1)).tolist() == [0, 3]
    other = _scatter_source(np.full((2, 10, 3), -2.0) + np.arange(10)[None, :, None] / 10)
    a, b = sources.shared_limits([src, other], list(range(10)))
    assert a == b and len(a) == 6 and a[0] < -1.9 and a[5] >= 5.0


def test_a_t_sne_view_holds_every_point_of_every_frame():
    """#38 item 5: t-SNE frames clipped points at the edge (the robust limits of a layer
    leave out the farthest 0.5% of each frame; an embedding has no outliers to leave out)."""
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(6, 500, 2)) * 20
    src = _scatter_source(pts, kind="scatter", method="t-SNE")
    limits = sources.source_limits(src, list(range(10)))
    assert sources.outside_counts(src, list(range(10)), limits).tolist() == [0] * 6
    assert (
        sources.outside_counts(
            _scatter_source(pts, "scatter"),
            list(range(10)),
            (sources.source_limits(_scatter_source(pts, "scatter"), list(range(10)))),
        ).sum()
        > 0
    )  # the layer's own view does leave its farthest points out
