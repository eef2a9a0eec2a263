"""`nnlab animate`: a GIF of a run's recorded latent space over training.

One figure is made once and its artists are updated for every frame (image data, scatter
offsets, titles); each frame is drawn to an array and the arrays become one GIF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnlab import record, store
from nnlab.config import int_list
from nnlab.density import (
    grid_density,
    mixture_moments,
    moments_over_time,
    one_sigma_density,
    pca_basis,
)
from nnlab.errors import NnlabError, RunError

CLASS_NAMES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
KINDS = ("auto", "density", "scatter")
GRID = 160  # density grid points per axis
PANEL_INCHES = 5.6
DPI = 100
GREEK = {"beta": "β", "lr": "lr", "latent_dim": "latent dim", "hidden_dims": "hidden"}


def class_names(dataset: str) -> list[str]:
    """Display names of the ten classes of a dataset."""
    return CLASS_NAMES.get(dataset, [str(i) for i in range(10)])


def class_colors() -> np.ndarray:
    """Ten distinct RGB colours (matplotlib's tab10), shape (10, 3)."""
    from matplotlib import colormaps

    return np.array(colormaps["tab10"].colors)[:10, :3]


def parse_classes(classes) -> list[int]:
    """--classes as typed (0,4,9 / [0,4,9] / 4) into a sorted list of class ids."""
    if classes is None:
        return list(range(10))
    out = sorted(set(int_list(classes, "classes", "0,4,9")))
    if not out or min(out) < 0 or max(out) > 9:
        raise NnlabError(f"--classes={classes}: class numbers run from 0 to 9")
    return out


def frame_indices(n: int, every: int) -> list[int]:
    """Snapshots to draw: every `every`-th, always ending with the last."""
    idx = list(range(0, n, every))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


@dataclass
class Source:
    """One run's recording, prepared for drawing."""

    run: store.Run
    cfg: object
    rec: record.Recording
    kind: str  # density, scatter, scatter3d
    label: str = ""
    points: np.ndarray | None = None  # (S, N, 2 or 3) for scatter kinds
    axis_labels: tuple[str, str] = ("z₁", "z₂")
    frames: list[int] = field(default_factory=list)


def load_source(run_id: str, runs_dir, kind: str) -> Source:
    """Open a run and its recording, and choose how to draw it."""
    run = store.open_run(run_id, runs_dir)
    run.meta()
    cfg = run.config()
    if cfg.snapshot_every == 0 and not record.chunk_files(run.latents):
        raise RunError(f"run {run.id} has no latent recording (trained with snapshot_every=0)")
    rec = record.load_recording(run.latents, cfg.model)
    dims = rec.latents.shape[2]
    if kind not in KINDS:
        raise NnlabError(f"--kind={kind}: choose from auto, density, scatter")
    if kind == "density" and not (cfg.model == "vae" and dims == 2):
        raise NnlabError(
            f"--kind=density needs a VAE with a 2-D latent; run {run.id} has "
            f"{'a classifier' if cfg.model != 'vae' else f'{dims} latent dimensions'}"
        )
    src = Source(run, cfg, rec, "scatter")
    if cfg.model == "vae" and dims == 2 and kind != "scatter":
        src.kind = "density"
    elif dims == 3 and kind != "scatter":
        src.kind, src.points = "scatter3d", rec.latents
        src.axis_labels = ("h₁", "h₂")
    elif dims <= 2:
        pts = rec.latents
        if dims == 1:  # a 1-D latent: spread the classes vertically
            pts = np.concatenate(
                [pts, np.broadcast_to(rec.labels[None, :, None] / 9.0, pts.shape)], 2
            )
        src.points = pts
        if cfg.model != "vae":
            src.axis_labels = ("h₁", "h₂") if dims == 2 else ("h₁", "class")
    else:
        centre, basis, ratio = pca_basis(rec.latents[-1], 2)  # fitted once, on the final snapshot
        src.points = (rec.latents - centre) @ basis.T
        src.axis_labels = (
            f"PC1 ({100 * ratio[0]:.0f}% of variance)",
            f"PC2 ({100 * ratio[1]:.0f}% of variance)",
        )
    return src


def run_label(cfg) -> str:
    """A short description of a run's model."""
    if cfg.model == "vae":
        return f"β-VAE · β = {cfg.beta:g} · {cfg.latent_dim}-D latent · {cfg.dataset}"
    return (
        f"classifier {'-'.join(map(str, cfg.sizes))} · layer {cfg.recorded_layer} · {cfg.dataset}"
    )


def differing_labels(cfgs) -> list[str]:
    """Panel titles for compared runs: the settings in which they differ (e.g. 'β = 10')."""
    import dataclasses

    dicts = [dataclasses.asdict(c) for c in cfgs]
    skip = {"name", "data_dir", "device"}
    keys = [
        k for k in dicts[0] if k not in skip and any(d.get(k) != dicts[0].get(k) for d in dicts)
    ]
    if not keys:
        return [run_label(c) for c in cfgs]
    out = []
    for d in dicts:
        parts = []
        for k in keys[:3]:
            v = d.get(k)
            v = f"{v:g}" if isinstance(v, float) else v
            parts.append(f"{GREEK.get(k, k)} = {v}")
        out.append(", ".join(parts))
    return out


def _limits(src: Source, classes: list[int]) -> tuple[float, float, float, float]:
    """Fixed axes for the whole animation."""
    if src.kind == "density":
        reach = 3.0
        for c in classes:
            sel = src.rec.labels == c
            if sel.any():
                m, cov = moments_over_time(src.rec.mu[:, sel], src.rec.sd[:, sel])
                sds = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
                reach = max(reach, float(np.max(np.abs(m) + 2 * sds)))
        reach = min(math.ceil(reach * 2) / 2, 50.0)
        return -reach, reach, -reach, reach
    pts = src.points[:, np.isin(src.rec.labels, classes)]
    lo, hi = np.nanmin(pts, axis=(0, 1)), np.nanmax(pts, axis=(0, 1))
    pad = np.maximum((hi - lo) * 0.05, 1e-3)
    return (
        float(lo[0] - pad[0]),
        float(hi[0] + pad[0]),
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    )


def shared_limits(sources: list[Source], classes: list[int]) -> list[tuple]:
    """Axis limits per source; compared runs drawn the same way share one scale."""
    own = [_limits(s, classes) if s.kind != "scatter3d" else None for s in sources]
    out = []
    for s in sources:
        same = [lim for t, lim in zip(sources, own, strict=True) if t.kind == s.kind and lim]
        if not same:
            out.append(None)
            continue
        out.append(
            (
                min(lim[0] for lim in same),
                max(lim[1] for lim in same),
                min(lim[2] for lim in same),
                max(lim[3] for lim in same),
            )
        )
    return out


class DensityPanel:
    """Each class's mixture density as a translucent region, above its one-sigma level."""

    def __init__(self, ax, src: Source, classes: list[int], colors: np.ndarray, names, limits):
        from matplotlib.patches import Circle

        self.src, self.classes, self.colors = src, classes, colors
        x0, x1, y0, y1 = limits
        self.xs, self.ys = np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID)
        self.members = {c: np.flatnonzero(src.rec.labels == c) for c in classes}
        self.image = ax.imshow(
            np.full((GRID, GRID, 3), 255, np.uint8),
            extent=(x0, x1, y0, y1),
            origin="lower",
            interpolation="bilinear",
            zorder=0,
        )
        circles = [
            ax.add_patch(
                Circle((0, 0), r, fill=False, ls="--", lw=1.2, color="0.15", alpha=alpha, zorder=2)
            )
            for r, alpha in ((1, 0.9), (2, 0.5))
        ]
        self.tags = {
            c: ax.text(
                0,
                0,
                names[c],
                fontsize=8,
                ha="center",
                va="center",
                zorder=3,
                color=colors[c] * 0.6,
                fontweight="bold",
            )
            for c in classes
        }
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        # Drawn every frame, in this order, over a background drawn once (blitting); the
        # opaque image covers the spines, so they are drawn again above it.
        self.dynamic = [self.image, *circles, *self.tags.values(), *ax.spines.values()]

    def update(self, s: int) -> None:
        """Draw snapshot s."""
        img = np.ones((GRID, GRID, 3), dtype=np.float32)
        rec = self.src.rec
        for c in self.classes:
            idx = self.members[c]
            if not len(idx):
                continue
            mu, sd = rec.mu[s, idx], rec.sd[s, idx]
            dens = grid_density(mu, sd, self.xs, self.ys, dtype=np.float32)
            mean, cov = mixture_moments(mu, sd)
            level = one_sigma_density(cov)
            inside = dens >= level
            peak = max(float(dens.max()), level * (1 + 1e-9))
            shade = np.sqrt(np.clip((dens - level) / (peak - level), 0, 1))
            alpha = np.where(inside, 0.28 + 0.42 * shade, 0.0)[..., None]
            img = img * (1 - alpha) + self.colors[c] * alpha
            self.tags[c].set_position((float(mean[0]), float(mean[1])))
        # uint8 pixels: matplotlib resamples them as they are, with no float normalisation
        self.image.set_data((img * 255 + 0.5).astype(np.uint8))


class ScatterPanel:
    """The probe points of the shown classes, coloured by class."""

    def __init__(self, ax, src: Source, classes: list[int], colors: np.ndarray, names, limits):
        self.src = src
        self.sel = np.flatnonzero(np.isin(src.rec.labels, classes))
        x0, x1, y0, y1 = limits
        pts = src.points[0, self.sel]
        self.sc = ax.scatter(
            pts[:, 0], pts[:, 1], s=4, c=colors[src.rec.labels[self.sel]], alpha=0.6, linewidths=0
        )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        self.dynamic = [self.sc]

    def update(self, s: int) -> None:
        """Draw snapshot s."""
        self.sc.set_offsets(self.src.points[s, self.sel, :2])


class Scatter3DPanel:
    """A 3-D scatter in the unit cube (sigmoid units), the camera turning as it plays."""

    def __init__(self, ax, src: Source, classes: list[int], colors: np.ndarray, names, n_frames):
        self.src, self.ax = src, ax
        self.sel = np.flatnonzero(np.isin(src.rec.labels, classes))
        pts = src.points[0, self.sel]
        self.sc = ax.scatter(
            pts[:, 0],
            pts[:, 1],
            pts[:, 2],
            s=3,
            c=colors[src.rec.labels[self.sel]],
            alpha=0.6,
            linewidths=0,
            depthshade=False,
        )
        lo = min(0.0, float(np.nanmin(src.points)))
        hi = max(1.0, float(np.nanmax(src.points)))
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(lo, hi)
        ax.set_zlabel("h₃")
        self.turn = min(360.0, 2.5 * n_frames)  # slow: at most 2.5 degrees a frame
        self.n_frames = max(n_frames - 1, 1)
        self.k = 0

    def update(self, s: int) -> None:
        """Draw snapshot s, turning the camera a little."""
        p = self.src.points[s, self.sel]
        self.sc._offsets3d = (p[:, 0], p[:, 1], p[:, 2])
        self.ax.view_init(elev=22, azim=-60 + self.turn * self.k / self.n_frames)
        self.k += 1


def align(sources: list[Source], every: int) -> list[list[int]]:
    """Per frame, the snapshot each source shows: by step when all runs share the same
    snapshot steps, else by fraction of training."""
    first = sources[0].rec.steps
    if all(np.array_equal(s.rec.steps, first) for s in sources):
        return [[i] * len(sources) for i in frame_indices(len(first), every)]
    n = max(len(frame_indices(len(s.rec), every)) for s in sources)
    out = []
    for f in range(n):
        t = f / max(n - 1, 1)
        row = []
        for s in sources:
            steps = s.rec.steps
            target = steps[0] + t * (steps[-1] - steps[0])
            row.append(int(np.abs(steps - target).argmin()))
        out.append(row)
    return out


def animate(
    run_id,
    runs_dir=None,
    *,
    kind="auto",
    classes=None,
    fps=10,
    every=1,
    out=None,
    compare=(),
    dpi=DPI,
    console=None,
) -> list[str]:
    """Write the latent-space GIF (and its final frame as PNG); return the two paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.spines import Spine

    from nnlab.render.gif import canvas_array, figure_to_array, write_gif, write_png
    from nnlab.train import stderr_console

    classes = parse_classes(classes)
    out_path = _gif_path(out) if out else None
    every, fps = _positive_int(every, "every"), _positive_number(fps, "fps")
    dpi = _positive_int(dpi, "dpi")
    compare = [compare] if isinstance(compare, str) else list(compare or [])
    sources = [load_source(r, runs_dir, str(kind)) for r in [run_id, *compare]]
    labels = (
        differing_labels([s.cfg for s in sources])
        if len(sources) > 1
        else [run_label(sources[0].cfg)]
    )
    frames_of = align(sources, every)
    names = class_names(sources[0].cfg.dataset)
    colors = class_colors()

    limits = shared_limits(sources, classes)
    n = len(sources)
    fig = plt.figure(figsize=(PANEL_INCHES * n, PANEL_INCHES + 0.9), dpi=dpi)
    panels, titles = [], []
    for i, (src, label) in enumerate(zip(sources, labels, strict=True)):
        three = src.kind == "scatter3d"
        ax = fig.add_subplot(1, n, i + 1, projection="3d" if three else None)
        if src.kind == "density":
            panels.append(DensityPanel(ax, src, classes, colors, names, limits[i]))
        elif three:
            panels.append(Scatter3DPanel(ax, src, classes, colors, names, len(frames_of)))
        else:
            panels.append(ScatterPanel(ax, src, classes, colors, names, limits[i]))
        ax.set_xlabel(src.axis_labels[0])
        ax.set_ylabel(src.axis_labels[1])
        titles.append((ax.set_title(label, fontsize=10), label))
    if sources[0].kind == "density":
        handles = [Patch(facecolor=colors[c], alpha=0.6, label=names[c]) for c in classes]
        handles.append(Line2D([], [], ls="--", color="0.15", label="prior N(0, I): 1σ, 2σ"))
    else:
        handles = [
            Line2D([], [], ls="", marker="o", color=colors[c], label=names[c]) for c in classes
        ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 6 if n > 1 else 4),
        fontsize=8,
        frameon=False,
    )
    fig.subplots_adjust(left=0.08 / n**0.5, right=1 - 0.03 / n, top=0.9, bottom=0.2, wspace=0.25)

    console = console or stderr_console()
    frames = []
    # Blitting: draw everything that never changes once, then per frame only the artists
    # that do. The turning 3-D camera moves everything, so it is drawn whole.
    blit = all(hasattr(p, "dynamic") for p in panels)
    if blit:
        for artist in [a for p in panels for a in p.dynamic] + [t for t, _ in titles]:
            if not isinstance(artist, Spine):  # spines stay in the background too
                artist.set_animated(True)
        fig.canvas.draw()
        background = fig.canvas.copy_from_bbox(fig.bbox)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[bold]animate", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
        task = bar.add_task("frames", total=len(frames_of))
        for row in frames_of:
            for panel, src, s, (title, label) in zip(panels, sources, row, titles, strict=True):
                panel.update(s)
                title.set_text(f"{label}\nEpoch {src.rec.epochs[s]:.2f} · step {src.rec.steps[s]}")
            if blit:
                fig.canvas.restore_region(background)
                for artist in [a for p in panels for a in p.dynamic] + [t for t, _ in titles]:
                    artist.axes.draw_artist(artist)
                frames.append(canvas_array(fig))
            else:
                frames.append(figure_to_array(fig))
            bar.advance(task)
    plt.close(fig)

    run = sources[0].run
    if out_path:
        gif_path = out_path
    else:
        stem = "latents" if not compare else "compare-" + "-".join(s.run.id for s in sources[1:])
        gif_path = run.file("media", f"{stem}-{sources[0].kind}.gif")
    write_gif(gif_path, frames, fps=fps)
    png_path = write_png(gif_path.with_suffix(".png"), frames[-1])
    return [str(gif_path), str(png_path)]


def _gif_path(out):
    from pathlib import Path

    p = Path(str(out)).expanduser()
    if p.suffix.lower() != ".gif":
        raise NnlabError(f"--out={out}: the animation is a GIF; give a path ending in .gif")
    return p


def _positive_int(v, name: str) -> int:
    try:
        i = int(str(v))
    except ValueError:
        raise NnlabError(f"--{name}={v}: expected a whole number of at least 1") from None
    if i < 1:
        raise NnlabError(f"--{name}={v}: expected a whole number of at least 1")
    return i


def _positive_number(v, name: str) -> float:
    try:
        x = float(str(v))
    except ValueError:
        raise NnlabError(f"--{name}={v}: expected a positive number") from None
    if not x > 0 or not math.isfinite(x):
        raise NnlabError(f"--{name}={v}: expected a positive number")
    return x
