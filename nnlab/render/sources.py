"""A run's recording prepared for drawing: what to draw (densities, points, a cube), on
which fixed axes, and which snapshot each frame of a side-by-side animation shows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnlab import families
from nnlab.analysis.density import pca_basis
from nnlab.helpers import options
from nnlab.helpers.errors import NnlabError, RunError
from nnlab.store import folders, record, schema

KINDS = ("auto", "density", "scatter")
PRIOR_REACH = 2.2  # density panels always hold the prior's 2-sigma circle, and a margin
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

    run: folders.Run
    cfg: object
    rec: record.Recording
    kind: str  # density, scatter, scatter3d
    label: str = ""
    points: np.ndarray | None = None  # (S, N, 2 or 3) for scatter kinds
    axis_labels: tuple[str, ...] = ("z₁", "z₂")  # one per drawn axis (three for a cube)
    frames: list[int] = field(default_factory=list)
    method: str = ""  # the 2-D embedding drawn ("t-SNE", "UMAP"), when not the layer itself
    request: tuple = ()  # projected()'s (method, points, every): how to make this source again
    kept: str = ""  # where the embedding's coordinates are kept in the run
    layer: str = ""  # one of the layers --record_layers kept, drawn instead of the recorded one


def load_source(run_id: str, runs_dir, kind: str, layer: str | None = None) -> Source:
    """Open a run and its recording (or one of the layers --record_layers kept), and choose
    how to draw it."""
    opened = folders.read_run(run_id, runs_dir)
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    family = families.of(cfg)
    if not record.chunk_files(run.latents):
        raise RunError(f"run {run.id} has no latent recording ({family.unrecorded(cfg)})")
    if layer is not None:
        from nnlab.store import layers

        ceiling = family.layers_ceiling(cfg, meta)
        rec = layers.as_recording(run.layers, run.latents, str(layer), ceiling)
    else:
        rec = record.load_recording(run.latents, family.arrays, schema.size_ceilings(cfg, meta)[1])
    dims = rec.points.shape[2]
    if kind not in KINDS:
        raise NnlabError(f"--kind={kind}: choose from auto, density, scatter")
    # densities need each point's spread (a posterior's sd) and a plane to draw them on
    drawable = rec.sd is not None and dims == 2
    if kind == "density" and not drawable:
        has = f"{dims} latent dimensions" if family.spread else family.noun
        raise NnlabError(f"--kind=density needs a VAE with a 2-D latent; run {run.id} has {has}")
    src = Source(run, cfg, rec, "scatter", layer=str(layer or ""))
    units = (f"{family.symbol}₁", f"{family.symbol}₂", f"{family.symbol}₃")
    if drawable and kind != "scatter":
        src.kind = "density"
    elif dims == 3 and kind != "scatter":
        src.kind, src.points = "scatter3d", rec.points
        src.axis_labels = units
    elif dims <= 2:
        pts = rec.points
        if dims == 1:  # a 1-D latent: spread the classes vertically
            pts = np.concatenate(
                [pts, np.broadcast_to(rec.labels[None, :, None] / 9.0, pts.shape)], 2
            )
        src.points = pts
        src.axis_labels = units[:2] if dims == 2 else (units[0], "class")
    else:
        centre, basis, ratio = pca_basis(rec.points[-1], 2)  # fitted once, on the final snapshot
        src.points = (rec.points - centre) @ basis.T
        src.axis_labels = (
            f"PC1 ({100 * ratio[0]:.0f}% of variance)",
            f"PC2 ({100 * ratio[1]:.0f}% of variance)",
        )
    return src


def projected(src: Source, method: str, points: int | None = None, every: int | None = None):
    """The source drawn through a 2-D embedding of its recording (nnlab project): the
    embedded snapshots, the subsample of points, coordinates kept in the run."""
    import dataclasses

    from nnlab.analysis import projection
    from nnlab.helpers.console import stderr_console, warn
    from nnlab.helpers.progress import CountProgress

    projection.require(method)
    rec = src.rec
    console = stderr_console()
    if method != "pca" and rec.points.shape[2] <= 2:
        warn(
            console,
            f"run {src.run.id}: the layer is {rec.points.shape[2]}-D already; "
            f"{projection.NAMES[method]} rearranges what animate draws as it is",
        )
    points, every = _projection_args(len(rec), points, every)
    name = projection.NAMES[method]
    proj = projection.project(
        src.run,
        rec,
        method,
        points,
        every,
        src.cfg.seed,
        bar=lambda n: CountProgress(console, f"{name} {src.run.id}", n),
        layer=src.layer,
    )
    snaps, pos = proj.snapshots, proj.positions
    sub = dataclasses.replace(
        rec,
        steps=rec.steps[snaps],
        epochs=rec.epochs[snaps],
        labels=rec.labels[pos],
        indices=rec.indices[pos],
        points=rec.points[snaps][:, pos],
        sd=None,
    )
    labels = (f"{name} 1", f"{name} 2")
    return Source(
        src.run,
        src.cfg,
        sub,
        "scatter",
        src.label,
        proj.coords,
        labels,
        method=name,
        request=(method, points, every),
        kept=str(proj.path),
        layer=src.layer,
    )


def _projection_args(snapshots: int, points, every) -> tuple[int, int]:
    """--points and --every as typed, or their defaults: 2,000 points, at most 100 frames."""
    import math

    from nnlab.analysis import projection

    points = projection.DEFAULT_POINTS if points is None else options.positive_int(points, "points")
    if every is None:
        return points, math.ceil(snapshots / projection.MAX_FRAMES)
    return points, options.positive_int(every, "every")


def project(run_id, runs_dir=None, *, method, points, every=None, layer=None) -> str:
    """`nnlab project`: a run's recording (or one of the layers --record_layers kept)
    embedded in 2-D (kept in the run); its path. Coordinates kept already are found from
    the recording's steps and labels alone."""
    from nnlab.analysis import projection

    opened = folders.read_run(run_id, runs_dir)
    run = opened.run
    projection.require(method)
    if layer is None and record.chunk_files(run.latents):
        n = len(record.load_steps(run.latents, schema.size_ceilings(opened.cfg, opened.meta)[1]))
        labels = record.probe_labels(run.latents)
        chosen, often = _projection_args(n, points, every)
        hit = projection.kept(run, labels, n, method, chosen, often, opened.cfg.seed)
        if hit is not None:
            return str(hit.path)
    return projected(load_source(run_id, runs_dir, "auto", layer), method, points, every).kept


def run_label(cfg) -> str:
    """A short description of a run's model."""
    return families.of(cfg).label(cfg)


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
    quantile of the highs, widened to hold the last frame's 0.1% to 99.9% quantiles; then
    2% padding. A transient outlier (a few points far
    out in a few early frames) never sets the scale; the frames note the points they leave
    out.
    """
    lo_f = np.nanquantile(points, 0.005, axis=1)  # (S, 2)
    hi_f = np.nanquantile(points, 0.995, axis=1)
    s = np.nanmedian(spread, axis=1) if spread is not None else np.zeros_like(lo_f)
    lo_f, hi_f = lo_f - s, hi_f + s
    lo = np.quantile(lo_f, 0.05, axis=0).astype(np.float64)
    hi = np.quantile(hi_f, 0.95, axis=0).astype(np.float64)
    # the end of training is in view whole, but for its 0.1% farthest points: where the
    # classes settle matters most (a late drift, under 5% of the frames, cut a class off)
    lo = np.minimum(lo, np.nanquantile(points[-1], 0.001, axis=0) - s[-1])
    hi = np.maximum(hi, np.nanquantile(points[-1], 0.999, axis=0) + s[-1])
    pad = np.maximum((hi - lo) * 0.02, 1e-3)
    return np.stack([lo - pad, hi + pad], axis=1)


def cube_limits(points: np.ndarray) -> np.ndarray:
    """A 3-D panel's axes, (3, 2): the unit cube when every coordinate lies in it (sigmoid
    units, whose corners mean something), else each axis's own range as robust_limits
    finds it, so that the points fill the box rather than a corner of it."""
    finite = points[np.isfinite(points)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1:
        return np.array([[0.0, 1.0]] * 3)
    return robust_limits(points)


def embedding_limits(points: np.ndarray) -> np.ndarray:
    """A t-SNE or UMAP view's axes, (2, 2): every point of every frame (the frames are
    aligned, and an embedding has no outliers to leave out), with 3% padding."""
    lo, hi = np.nanmin(points, axis=(0, 1)), np.nanmax(points, axis=(0, 1))
    pad = np.maximum((hi - lo) * 0.03, 1e-3)
    return np.stack([lo - pad, hi + pad], axis=1)


def source_limits(src: Source, classes: list[int]) -> tuple[float, ...]:
    """Fixed axes for the whole animation, (lo, hi) per axis flattened: for densities, a
    square (circles stay round) around the bulk of the data and the prior's 2-sigma circle,
    centred on them, not on the prior: a cloud that drifts away fills the panel; for a cube,
    cube_limits; for a t-SNE or UMAP view, every point; the bulk of the points otherwise."""
    sel = np.isin(src.rec.labels, classes)
    if src.kind == "scatter3d":
        return tuple(float(v) for v in cube_limits(src.points[:, sel]).ravel())
    if src.method not in ("", "PCA"):
        return tuple(float(v) for v in embedding_limits(src.points[:, sel, :2]).ravel())
    if src.kind == "density":
        lim = robust_limits(src.rec.points[:, sel], src.rec.sd[:, sel])
        lo = np.minimum(lim[:, 0], -PRIOR_REACH)
        hi = np.maximum(lim[:, 1], PRIOR_REACH)
        span = min(max(float((hi - lo).max()), 2 * PRIOR_REACH), 100.0)
        cx, cy = (lo + hi) / 2
        return cx - span / 2, cx + span / 2, cy - span / 2, cy + span / 2
    (x0, x1), (y0, y1) = robust_limits(src.points[:, sel, :2])
    return float(x0), float(x1), float(y0), float(y1)


def outside_counts(src: Source, classes: list[int], limits) -> np.ndarray | None:
    """Per snapshot, how many shown points lie outside fixed limits (lo, hi per axis)."""
    if limits is None:
        return None
    shown = np.isin(src.rec.labels, classes)
    lim = np.asarray(limits, dtype=np.float64).reshape(-1, 2)
    pts = (src.rec.points if src.kind == "density" else src.points)[:, shown, : len(lim)]
    return ((pts < lim[:, 0]) | (pts > lim[:, 1])).any(axis=2).sum(axis=1)


def shared_limits(sources: list[Source], classes: list[int]) -> list[tuple]:
    """Axis limits per source; compared runs drawn the same way share one scale."""
    own = [source_limits(s, classes) for s in sources]
    out = []
    for s in sources:
        same = [
            lim
            for t, lim in zip(sources, own, strict=True)
            if (t.kind, t.method) == (s.kind, s.method)
        ]
        out.append(
            tuple((min if k % 2 == 0 else max)(lim[k] for lim in same) for k in range(len(same[0])))
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


def probe_images(run, cfg, split: str, indices: np.ndarray, keep) -> np.ndarray:
    """The chosen probe images (positions `keep` of the probe) as (n, C, H, W) uint8: stored
    with the probe, or from the run's dataset: `split` at the probe's `indices`."""
    from nnlab.training import data

    stored = record.load_images(run.latents, keep)
    if stored is not None:
        return stored
    splits = data.load_for(cfg)
    x, _, _ = splits.split(split)
    idx = indices[keep]
    imgs = x[idx].cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)[idx]
    return (np.clip(imgs, 0, 1) * 255).round().astype(np.uint8).reshape(len(idx), *cfg.image_shape)
