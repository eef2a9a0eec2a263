"""`nnlab animate`: a GIF of a run's recorded latent space over training.

One figure is made once and its artists are updated for every frame (image data, scatter
offsets, titles); each frame is drawn to an array and the arrays become one GIF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnlab import record, store
from nnlab.console import stderr_console
from nnlab.data import class_names
from nnlab.density import pca_basis
from nnlab.errors import NnlabError, RunError
from nnlab.options import parse_classes, positive_int, positive_number
from nnlab.progress import CountProgress
from nnlab.render.panels import DensityPanel, Panel, Scatter3DPanel, ScatterPanel
from nnlab.render.style import (
    DPI,
    LABEL_SIZE,
    PANEL_INCHES,
    PRIOR_COLOR,
    TITLE_SIZE,
    class_colors,
)

KINDS = ("auto", "density", "scatter")
MAX_FRAMES = 150  # without --every, snapshots are thinned to at most this many frames
KIND_WORDS = {"density": "class densities", "scatter": "points", "scatter3d": "a 3-D cube"}
GREEK = {"beta": "β", "lr": "lr", "latent_dim": "latent dim", "hidden_dims": "hidden"}


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


def robust_limits(points: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
    """Axis limits (lo, hi) per axis, shape (2, 2), that follow the bulk of the data.

    Per frame, the 0.5% and 99.5% quantiles of each coordinate (widened by the frame's
    median spread, for densities); over frames, the 5% quantile of those lows and the 95%
    quantile of the highs; then 2% padding. A transient outlier (a few points far out in a
    few early frames) never sets the scale; the frames note the points they leave out.
    """
    lo_f = np.nanquantile(points, 0.005, axis=1)  # (S, 2)
    hi_f = np.nanquantile(points, 0.995, axis=1)
    if spread is not None:
        s = np.nanmedian(spread, axis=1)
        lo_f, hi_f = lo_f - s, hi_f + s
    lo, hi = np.quantile(lo_f, 0.05, axis=0), np.quantile(hi_f, 0.95, axis=0)
    pad = np.maximum((hi - lo) * 0.02, 1e-3)
    return np.stack([lo - pad, hi + pad], axis=1)


def _limits(src: Source, classes: list[int]) -> tuple[float, float, float, float]:
    """Fixed axes for the whole animation: a square around the prior for densities (at
    least its 2-sigma circle), the bulk of the points otherwise."""
    sel = np.isin(src.rec.labels, classes)
    if src.kind == "density":
        lim = robust_limits(src.rec.mu[:, sel], src.rec.sd[:, sel])
        reach = min(max(2.5, float(np.abs(lim).max())), 50.0)
        return -reach, reach, -reach, reach
    (x0, x1), (y0, y1) = robust_limits(src.points[:, sel, :2])
    return float(x0), float(x1), float(y0), float(y1)


def outside_counts(src: Source, classes: list[int], limits) -> np.ndarray | None:
    """Per snapshot, how many shown points lie outside fixed 2-D limits (None for 3-D)."""
    if limits is None:
        return None
    pts = (src.rec.mu if src.kind == "density" else src.points)[:, np.isin(src.rec.labels, classes)]
    x0, x1, y0, y1 = limits
    x, y = pts[..., 0], pts[..., 1]
    return ((x < x0) | (x > x1) | (y < y0) | (y > y1)).sum(axis=1)


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
    every=None,
    out=None,
    compare=(),
    dpi=DPI,
    console=None,
) -> list[str]:
    """Write the latent-space GIF (and its final frame as PNG); return the two paths."""
    from nnlab.render.gif import write_gif, write_png

    classes = parse_classes(classes)
    out_path = _gif_path(out) if out else None
    asked = every is not None
    every = positive_int(every, "every") if asked else 1
    fps = positive_number(fps, "fps")
    dpi = positive_int(dpi, "dpi")
    compare = [compare] if isinstance(compare, str) else list(compare or [])
    sources = [load_source(r, runs_dir, str(kind)) for r in [run_id, *compare]]
    for other in sources[1:]:
        if other.kind != sources[0].kind:
            a, b = sources[0], other
            raise NnlabError(
                f"--compare: {a.run.id} is drawn as {KIND_WORDS[a.kind]}, {b.run.id} as "
                f"{KIND_WORDS[b.kind]}; compare runs drawn the same way (--kind=scatter draws "
                "any 2-D latent as points)"
            )
    if not asked:  # a GIF a newcomer can open: at most MAX_FRAMES frames unless asked
        every = math.ceil(max(len(src.rec) for src in sources) / MAX_FRAMES)
    frames = render_frames(sources, classes, every, dpi, console)
    if out_path:
        gif_path = out_path
    else:
        stem = "latents" if not compare else "compare-" + "-".join(s.run.id for s in sources[1:])
        stem += f"-{sources[0].kind}"
        if classes != list(range(10)):  # names say what is inside
            stem += "-classes" + "-".join(map(str, classes))
        if asked and every > 1:
            stem += f"-every{every}"
        gif_path = sources[0].run.file("media", f"{stem}.gif")
    write_gif(gif_path, frames, fps=fps)
    png_path = write_png(gif_path.with_suffix(".png"), frames[-1])
    return [str(gif_path), str(png_path)]


def render_frames(sources: list[Source], classes: list[int], every: int, dpi: int, console=None):
    """The animation's frames as RGB arrays: one figure, its artists updated per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames_of = align(sources, every)
    limits = shared_limits(sources, classes)
    outside = [outside_counts(s, classes, lim) for s, lim in zip(sources, limits, strict=True)]
    fig, panels, titles = _figure(sources, classes, len(frames_of), dpi, limits)
    draw = _frame_drawer(fig, panels, titles)
    frames = []
    with CountProgress(console or stderr_console(), "animate", len(frames_of)) as bar:
        for row in frames_of:
            for i, (panel, src, s) in enumerate(zip(panels, sources, row, strict=True)):
                panel.update(s)
                title, label = titles[i]
                text = f"{label}\nEpoch {src.rec.epochs[s]:.2f} · step {src.rec.steps[s]}"
                k = 0 if outside[i] is None else int(outside[i][s])
                if k:
                    text += f" · {k:,} point{'s' if k > 1 else ''} outside"
                title.set_text(text)
            frames.append(draw())
            bar.advance()
    plt.close(fig)
    return frames


def _figure(sources: list[Source], classes: list[int], n_frames: int, dpi: int, limits=None):
    """The figure with one panel per source, titles and the shared legend."""
    import matplotlib.pyplot as plt

    labels = (
        differing_labels([s.cfg for s in sources])
        if len(sources) > 1
        else [run_label(sources[0].cfg)]
    )
    colors = class_colors()
    limits = limits or shared_limits(sources, classes)
    n = len(sources)
    fig = plt.figure(figsize=(PANEL_INCHES * n, PANEL_INCHES + 0.9), dpi=dpi)
    panels: list[Panel] = []
    titles = []
    for i, (src, label) in enumerate(zip(sources, labels, strict=True)):
        three = src.kind == "scatter3d"
        ax = fig.add_subplot(1, n, i + 1, projection="3d" if three else None)
        labels_ = src.rec.labels
        names = class_names(src.cfg.dataset)  # each panel its own run's classes
        if src.kind == "density":
            panels.append(DensityPanel(ax, src.rec, classes, colors, names, limits[i]))
        elif three:
            panels.append(Scatter3DPanel(ax, src.points, labels_, classes, colors, n_frames))
        else:
            panels.append(ScatterPanel(ax, src.points, labels_, classes, colors, limits[i]))
        ax.set_xlabel(src.axis_labels[0])
        ax.set_ylabel(src.axis_labels[1])
        titles.append((ax.set_title(label, fontsize=TITLE_SIZE), label))
    datasets = {s.cfg.dataset for s in sources}
    if len(datasets) == 1:
        _legend(fig, sources[0].kind == "density", classes, colors, names, n)
    else:  # different classes side by side: a legend under each panel
        for ax, src in zip(fig.axes, sources, strict=True):
            names = class_names(src.cfg.dataset)
            _legend(ax, src.kind == "density", classes, colors, names, 1, below_axes=True)
    # room on the left for a long axis label ("PC2 (23% of variance)") and its ticks
    fig.subplots_adjust(left=0.12 / n, right=1 - 0.03 / n, top=0.9, bottom=0.2, wspace=0.3)
    return fig, panels, titles


def _legend(where, density: bool, classes, colors, names, n_panels: int, below_axes=False):
    """A legend of the classes (and the prior's circles): below the panels of a figure, or
    below one axes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if density:
        handles = [Patch(facecolor=colors[c], alpha=0.6, label=names[c]) for c in classes]
        handles.append(Line2D([], [], ls="--", color=PRIOR_COLOR, label="prior N(0, I): 1σ, 2σ"))
    else:
        handles = [
            Line2D([], [], ls="", marker="o", color=colors[c], label=names[c]) for c in classes
        ]
    where.legend(
        handles=handles,
        loc="upper center" if below_axes else "lower center",
        bbox_to_anchor=(0.5, -0.1) if below_axes else None,
        ncol=min(len(handles), 6 if n_panels > 1 else 4),
        fontsize=LABEL_SIZE,
        frameon=False,
    )


def _frame_drawer(fig, panels: list[Panel], titles):
    """A function that draws the current state of the figure and returns its pixels.

    Blitting: everything that never changes is drawn once, then per frame only the artists
    that do. A panel whose every artist changes (the turning 3-D camera) needs whole redraws.
    """
    from matplotlib.spines import Spine

    from nnlab.render.gif import canvas_array, figure_to_array

    if any(p.dynamic is None for p in panels):
        return lambda: figure_to_array(fig)
    dynamic = [a for p in panels for a in p.dynamic] + [t for t, _ in titles]
    for artist in dynamic:
        if not isinstance(artist, Spine):  # spines stay in the background too
            artist.set_animated(True)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)

    def draw():
        fig.canvas.restore_region(background)
        for artist in dynamic:
            artist.axes.draw_artist(artist)
        return canvas_array(fig)

    return draw


def _gif_path(out):
    from pathlib import Path

    p = Path(str(out)).expanduser()
    if p.suffix.lower() != ".gif":
        raise NnlabError(f"--out={out}: the animation is a GIF; give a path ending in .gif")
    return p
