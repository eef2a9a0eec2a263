"""The panels of a latent animation, one per run, behind one small protocol.

A panel draws one run's snapshot `s` into its axes (`update(s)`) and says which of its
artists change between frames (`dynamic`), so the animation can draw everything else once
and blit only those; `dynamic = None` means the whole panel changes (a turning 3-D camera).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from nnlab.analysis.density import grid_density, mixture_moments, one_sigma_density
from nnlab.render.style import (
    DENSITY_GRID,
    LABEL_SIZE,
    POINT_ALPHA,
    PRIOR_CIRCLES,
    PRIOR_COLOR,
    shown_name,
)


class Panel(Protocol):
    """What the animation needs of a panel."""

    dynamic: list | None  # artists redrawn every frame; None: redraw the whole figure

    def update(self, s: int) -> None:
        """Show snapshot s."""


def spread_labels(xy: np.ndarray, half: np.ndarray, limits, iters: int = 300) -> np.ndarray:
    """Label centres (n, 2) moved apart until their boxes (half-sizes (n, 2), in data
    units) no longer overlap, each staying inside the limits: overlapping pairs are pushed
    apart along the axis that needs the smaller move, half each."""
    p = np.array(xy, dtype=float)
    x0, x1, y0, y1 = limits
    lo = np.array([x0, y0]) + half
    hi = np.maximum(np.array([x1, y1]) - half, lo)
    for _ in range(iters):
        moved = False
        for i in range(len(p)):
            for j in range(i + 1, len(p)):
                d = p[j] - p[i]
                overlap = half[i] + half[j] - np.abs(d)
                if (overlap > 0).all():
                    k = int(np.argmin(overlap / (half[i] + half[j])))
                    sign = 1.0 if d[k] >= 0 else -1.0
                    step = overlap[k] / 2 + 1e-9
                    p[i, k] -= sign * step
                    p[j, k] += sign * step
                    moved = True
        p = np.clip(p, lo, hi)
        if not moved:
            break
    return p


class DensityPanel:
    """Each class's mixture density as a translucent region, above its one-sigma level."""

    def __init__(self, ax, rec, classes: list[int], colors: np.ndarray, names, limits):
        from matplotlib import patheffects
        from matplotlib.patches import Circle

        self.rec, self.classes, self.colors = rec, classes, colors
        x0, x1, y0, y1 = limits
        self.xs = np.linspace(x0, x1, DENSITY_GRID)
        self.ys = np.linspace(y0, y1, DENSITY_GRID)
        self.members = {c: np.flatnonzero(rec.labels == c) for c in classes}
        self.image = ax.imshow(
            np.full((DENSITY_GRID, DENSITY_GRID, 3), 255, np.uint8),
            extent=(x0, x1, y0, y1),
            origin="lower",
            interpolation="bilinear",
            zorder=0,
        )
        circles = [
            ax.add_patch(
                Circle((0, 0), r, fill=False, ls="--", lw=1.2, color=PRIOR_COLOR, alpha=a, zorder=2)
            )
            for r, a in PRIOR_CIRCLES
        ]
        names = [shown_name(n) for n in names]
        self.tags = {
            c: ax.text(
                0,
                0,
                names[c],
                fontsize=LABEL_SIZE,
                ha="center",
                va="center",
                zorder=3,
                color=colors[c] * 0.6,
                fontweight="bold",
                # a white halo: readable over its own class's colour (gold on gold)
                path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
            )
            for c in classes
        }
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        self.ax, self.limits, self.names = ax, limits, names
        self.half: np.ndarray | None = None  # label half-sizes in data units, once laid out
        # Drawn every frame, in this order, over a background drawn once (blitting); the
        # opaque image covers the spines, so they are drawn again above it.
        self.dynamic = [self.image, *circles, *self.tags.values(), *ax.spines.values()]

    def update(self, s: int) -> None:
        """Draw snapshot s."""
        img = np.ones((DENSITY_GRID, DENSITY_GRID, 3), dtype=np.float32)
        means = {}
        for c in self.classes:
            idx = self.members[c]
            if not len(idx):
                continue
            mu, sd = self.rec.points[s, idx], self.rec.sd[s, idx]
            dens = grid_density(mu, sd, self.xs, self.ys, dtype=np.float32)
            mean, cov = mixture_moments(mu, sd)
            level = one_sigma_density(cov)
            peak = max(float(dens.max()), level * (1 + 1e-9))
            shade = np.sqrt(np.clip((dens - level) / (peak - level), 0, 1))
            alpha = (edge_coverage(dens, level) * (0.28 + 0.42 * shade))[..., None]
            img = img * (1 - alpha) + self.colors[c] * alpha
            means[c] = mean
        # Each label at its class's mean, moved apart where labels would overlap.
        shown = list(means)
        if shown:
            half = self._label_half_sizes()[[self.classes.index(c) for c in shown]]
            at = np.array([means[c] for c in shown])
            placed = spread_labels(at, half, self.limits)
            # a label pushed more than its own size off its class's mean would name the
            # wrong place: hidden until the classes move apart (all of them at step 0)
            moved = np.abs(placed - at) / half
            far = moved.max(1) > 2
            if far.sum() * 2 > len(far):  # most hidden: a few stacked names say nothing
                far[:] = True
            for c, (x, y), hide in zip(shown, placed, far, strict=True):
                self.tags[c].set_position((float(x), float(y)))
                self.tags[c].set_visible(not hide)
        # uint8 pixels: matplotlib resamples them as they are, with no float normalisation
        self.image.set_data((img * 255 + 0.5).astype(np.uint8))

    def _label_half_sizes(self) -> np.ndarray:
        """Half width and height of each class label's box in data units (bold text of
        LABEL_SIZE points: ~0.62 em a character, 1.3 em a line, with a little margin)."""
        if self.half is None:
            fig = self.ax.figure
            x0, x1, y0, y1 = self.limits
            per_pt_x = (x1 - x0) / self.ax.bbox.width * fig.dpi / 72
            per_pt_y = (y1 - y0) / self.ax.bbox.height * fig.dpi / 72
            chars = np.array([len(self.names[c]) for c in self.classes], dtype=float)
            w = (chars * 0.62 + 0.6) * LABEL_SIZE * per_pt_x / 2
            h = np.full_like(w, 1.3 * LABEL_SIZE * per_pt_y / 2)
            self.half = np.stack([w, h], axis=1)
        return self.half


class ScatterPanel:
    """The probe points of the shown classes, coloured by class."""

    def __init__(self, ax, points: np.ndarray, labels, classes, colors: np.ndarray, limits):
        self.points = points
        self.sel = np.flatnonzero(np.isin(labels, classes))
        x0, x1, y0, y1 = limits
        first = points[0, self.sel]
        self.sc = ax.scatter(
            first[:, 0],
            first[:, 1],
            s=4,
            c=colors[labels[self.sel]],
            alpha=POINT_ALPHA,
            linewidths=0,
        )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        self.dynamic = [self.sc]

    def update(self, s: int) -> None:
        """Draw snapshot s."""
        self.sc.set_offsets(self.points[s, self.sel, :2])


class Scatter3DPanel:
    """A 3-D scatter in fixed axes (the unit cube for sigmoid units, else the data's own
    ranges: sources.cube_limits), the camera turning as it plays. A point outside the axes
    is not drawn (3-D axes do not clip: it would sit beside the box); the title counts it."""

    dynamic = None  # the camera moves everything: the whole figure is drawn each frame

    def __init__(self, ax, points, labels, classes, colors: np.ndarray, n_frames, limits, names):
        lim = np.asarray(limits, dtype=np.float64).reshape(3, 2)
        # a point outside is moved onto the box and made transparent (mplot3d cannot take
        # NaN positions: it sorts every point by depth to draw them)
        self.inside = ((points >= lim[:, 0]) & (points <= lim[:, 1])).all(axis=2)
        self.points, self.ax = np.clip(points, lim[:, 0], lim[:, 1]), ax
        self.sel = np.flatnonzero(np.isin(labels, classes))
        self.rgba = np.zeros((len(self.sel), 4))
        self.rgba[:, :3] = colors[labels[self.sel]][:, :3]
        first = self.points[0, self.sel]
        self.sc = ax.scatter(
            first[:, 0],
            first[:, 1],
            first[:, 2],
            s=3,
            c=colors[labels[self.sel]],
            alpha=POINT_ALPHA,
            linewidths=0,
            depthshade=False,
        )
        for setter, (lo, hi) in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), lim, strict=True):
            setter(lo, hi)
        ax.set_zlabel(names[2])
        self.turn = min(360.0, 2.5 * n_frames)  # slow: at most 2.5 degrees a frame
        self.n_frames = max(n_frames - 1, 1)
        self.k = 0

    def update(self, s: int) -> None:
        """Draw snapshot s, turning the camera a little."""
        p = self.points[s, self.sel]
        self.sc._offsets3d = (p[:, 0], p[:, 1], p[:, 2])
        self.rgba[:, 3] = np.where(self.inside[s, self.sel], POINT_ALPHA, 0.0)
        self.sc.set_facecolor(self.rgba)
        self.ax.view_init(elev=22, azim=-60 + self.turn * self.k / self.n_frames)
        self.k += 1


def edge_coverage(dens: np.ndarray, level: float) -> np.ndarray:
    """How much of each grid cell lies inside the region dens >= level, from the signed
    distance to its edge in cells (the density's excess over its gradient): 1 inside, 0
    outside, a one-cell ramp across the edge, so that region outlines are smooth at any
    size instead of stair-stepped by the grid."""
    gy, gx = np.gradient(dens)
    slope = np.maximum(np.hypot(gx, gy), np.finfo(np.float32).tiny)
    return np.clip(0.5 + (dens - level) / slope, 0.0, 1.0)
