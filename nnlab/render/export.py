"""`nnlab export RUN_ID|SWEEP_ID --to=tensorboard`: a run (or every point of a sweep) as
TensorBoard event files, read from the store.

Per run: every scalar of metrics.jsonl and the latent metrics of every snapshot (the tags
of nnlab.training.tensorboard, the same as `--tensorboard=true` writes live), the latent space
at chosen snapshots as projector embeddings (a stratified probe subsample with its class labels and
a sprite of the images), the animation's frames and, for a classifier, the first layer's
masks at each kept checkpoint as images. A sweep adds the HParams table (swept values
against final metrics), one TensorBoard run per point. Everything is written into a fresh
folder that replaces the destination at the end, so an export is never half there and
never doubled.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np

from nnlab import families
from nnlab.analysis import latent
from nnlab.helpers import files
from nnlab.helpers.console import stderr_console, warn
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.progress import CountProgress
from nnlab.render.sources import probe_images
from nnlab.store import folders, metrics, record, schema, sweeps
from nnlab.training import tensorboard

TARGETS = ("tensorboard",)
MAX_PROJECTOR_POINTS = 2000  # the projector and its sprite stay light (a 45x45 sprite grid)
MAX_IMAGE_FRAMES = 20  # animation frames written as images (evenly spread)


def export(
    item_id,
    runs_dir=None,
    *,
    to: str,
    snapshots: str,
    logdir=None,
    force: bool = False,
    console=None,
) -> str:
    """Export a run or a sweep; return the log folder to point TensorBoard at."""
    if to not in TARGETS:
        raise NnlabError(f"--to={to}: nnlab exports to tensorboard")
    tensorboard.check_available("nnlab export --to=tensorboard")
    console = console or stderr_console()
    if sweeps.is_sweep(item_id, runs_dir):
        sweep = sweeps.open_sweep(item_id, runs_dir)
        rec = sweep.record()
        runs = [folders.read_run(p["run"], sweep.root) for p in rec["points"] if _exists(sweep, p)]
        if not runs:
            raise NnlabError(f"sweep {sweep.id}: no point has a run yet")
        dest = Path(logdir).expanduser() if logdir else sweep.media / "tensorboard"
    else:
        opened = folders.read_run(item_id, runs_dir)
        runs, rec = [opened], None
        dest = Path(logdir).expanduser() if logdir else opened.run.media / "tensorboard"
    plans = [(o, _snapshot_plan(o, snapshots)) for o in runs]  # bad --snapshots: now
    if dest.exists() or dest.is_symlink():
        if not force:
            raise NnlabError(f"{dest} exists already: export with --force to replace it")
        check_replaceable(dest)
    if logdir is None:
        dest.parent.mkdir(exist_ok=True)  # the run's (or sweep's) media folder
    elif not dest.parent.is_dir():
        raise NnlabError(f"--logdir={logdir}: its folder {dest.parent} does not exist")
    tmp = dest.parent / f".tmp-export-{dest.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for opened, steps in plans:
            # one TensorBoard run per point of a sweep, named by its run id
            _export_run(opened, tmp / opened.id if rec else tmp, steps, console)
        if rec:
            _write_hparams(tmp, rec, runs)
        _write_manifest(tmp, item_id)
        _replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(dest)


MANIFEST = "nnlab-export.json"  # in every export: what nnlab wrote there, and nothing else


def _write_manifest(folder: Path, item_id) -> None:
    """List every file of a finished export, so that --force can prove a folder is one."""
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    files.write_json(
        folder / MANIFEST, {"kind": "nnlab-export", "of": str(item_id), "files": written}
    )


def check_replaceable(dest: Path) -> None:
    """Refuse to replace anything but an earlier nnlab export: a folder holding its
    manifest and only the files the manifest lists (never a run, a sweep, the store, a
    folder of the user's, a file or a link)."""
    why = None
    if dest.is_symlink() or not dest.is_dir():
        why = "it is not a folder"
    else:
        try:
            manifest = files.read_json(dest / MANIFEST)
            listed = set(manifest["files"]) if manifest.get("kind") == "nnlab-export" else None
        except (NnlabError, KeyError, TypeError, AttributeError):
            listed = None
        if listed is None:
            why = f"it has no {MANIFEST} of an nnlab export"
        else:
            for p in dest.rglob("*"):
                rel = str(p.relative_to(dest))
                if p.is_symlink() or (p.is_file() and rel not in listed and rel != MANIFEST):
                    why = f"it holds {rel}, which nnlab did not write there"
                    break
    if why:
        raise NnlabError(
            f"--force replaces only an earlier nnlab export; {dest} is not one ({why}): "
            "choose another --logdir"
        )


def _exists(sweep: sweeps.Sweep, point: dict) -> bool:
    return (sweep.root / point["run"] / folders.META_FILE).exists()


def _replace(tmp: Path, dest: Path) -> None:
    """Put the finished export in place of dest (renames, not copies)."""
    if dest.exists():
        old = dest.parent / f".tmp-old-{dest.name}-{os.getpid()}"
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def _snapshot_plan(opened: folders.Opened, spec: str) -> list[int]:
    """The snapshot indices --snapshots names: first, middle, last, or recorded steps."""
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    if not record.chunk_files(run.latents):
        return []
    steps = record.load_steps(run.latents, schema.size_ceilings(cfg, meta)[1])
    n = len(steps)
    named = {"first": 0, "middle": n // 2, "last": n - 1}
    out = []
    for word in (w.strip() for w in str(spec).split(",") if w.strip()):
        if word in named:
            out.append(named[word])
            continue
        try:
            step = int(word)
        except ValueError:
            raise NnlabError(
                f"--snapshots={spec}: give first, middle, last or recorded steps, e.g. 0,400"
            ) from None
        hits = np.flatnonzero(steps == step)
        if not len(hits):
            raise NnlabError(
                f"--snapshots: run {run.id} has no snapshot at step {step} (recorded: steps "
                f"{steps[0]} to {steps[-1]}, every {cfg.snapshot_every})"
            )
        out.append(int(hits[0]))
    return sorted(set(out))


def _export_run(opened: folders.Opened, folder: Path, picks: list[int], console) -> None:
    """Every scalar, the projector embeddings at `picks`, frames and masks of one run."""
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    schema.check_metrics(run.metrics, cfg, meta)
    writer = tensorboard.Writer(folder)
    try:
        for line in metrics.read(run.metrics):
            writer.line(line, lr=cfg.lr)
        if record.chunk_files(run.latents):
            arrays = families.of(cfg).arrays
            rec = record.load_recording(run.latents, arrays, schema.size_ceilings(cfg, meta)[1])
            with CountProgress(console, f"latent metrics {run.id}", len(rec)) as bar:
                for s in range(len(rec)):
                    numbers = latent.snapshot_metrics(rec, s)
                    writer.scalars(int(rec.steps[s]), tensorboard.latent_scalars(numbers))
                    bar.advance()
            _embeddings(writer.writer, run, cfg, rec, picks)
            _frames(writer.writer, run, rec)
        if "masks" in families.of(cfg).pictures:
            _masks(writer.writer, opened)
    finally:
        writer.close()
    if writer.left_out:
        warn(console, f"{run.id}: {writer.left_out_text()}")


def tsv_text(text: str) -> str:
    r"""A value of the projector's metadata.tsv: one line, one column (a backslash, tab,
    newline or carriage return written as \\, \t, \n, \r), so each label stays beside
    its point."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def projector_subset(labels: np.ndarray, seed: int) -> np.ndarray:
    """Positions in the probe of the points the projector shows: all, or a seeded
    class-stratified MAX_PROJECTOR_POINTS (the same rule as the probe's own choice)."""
    return record.probe_indices(labels, MAX_PROJECTOR_POINTS, seed)


def _embeddings(writer, run: folders.Run, cfg, rec: record.Recording, picks: list[int]) -> None:
    """The latent space at each picked snapshot as a projector embedding with a sprite."""
    import torch

    if not picks:
        return
    keep = projector_subset(rec.labels, cfg.seed)
    images = torch.from_numpy(probe_images(run, cfg, rec.split, rec.indices, keep)).float() / 255.0
    names = [tsv_text(n) for n in record.class_names(rec, cfg)]
    labels = [names[int(c)] for c in rec.labels[keep]]
    for s in picks:
        points = torch.from_numpy(np.asarray(rec.points[s][keep], dtype=np.float32))
        writer.add_embedding(
            points,
            metadata=labels,
            label_img=images,
            global_step=int(rec.steps[s]),
            tag=folders.LATENTS,  # the recording, named as its folder
        )
    stderr_console().print(
        f"{run.id}: projector of {len(picks)} snapshot(s), {len(keep):,} of "
        f"{len(rec.labels):,} probe images (class-stratified) with their labels and a sprite",
        soft_wrap=True,
    )


def _frames(writer, run: folders.Run, rec: record.Recording) -> None:
    """The animation's frames (at most MAX_IMAGE_FRAMES, evenly spread) as images."""
    from nnlab.render.animate import render_frames
    from nnlab.render.sources import load_source

    src = load_source(run.id, run.root, "auto")
    every = max(1, math.ceil(len(rec) / MAX_IMAGE_FRAMES))
    classes = list(range(len(record.class_names(src.rec, src.cfg))))
    frames = render_frames([src], classes, every, 60, console=stderr_console())
    shown = list(range(0, len(rec), every))
    if shown[-1] != len(rec) - 1:
        shown.append(len(rec) - 1)  # render_frames always ends on the last snapshot
    for frame, s in zip(frames, shown, strict=False):
        writer.add_image("latent space", frame, int(rec.steps[s]), dataformats="HWC")


def _masks(writer, opened: folders.Opened) -> None:
    """The first layer's weights as masks (red for, blue against) at each kept checkpoint."""
    from matplotlib import colormaps

    from nnlab.render.masks import mask_weights, shown, weight_scale
    from nnlab.training.loading import load_model

    run = opened.run
    names = sorted(p.name for p in run.checkpoints.glob("epoch-*.pt"))
    last = folders.FINAL if run.checkpoint_file(folders.FINAL).exists() else folders.LATEST
    names += [f"{last}.pt"]
    cmap = colormaps["RdBu_r"]
    for name in names:
        if not (run.checkpoints / name).exists():
            continue
        _, model, ck = load_model(opened, str(run.checkpoints / name))
        w, _ = mask_weights(opened.cfg, model)  # (units, C, H, W)
        vmax = weight_scale(w)
        images = shown(w, vmax)
        cols = min(10, len(w))
        rows = -(-len(w) // cols)
        h, width = images.shape[1:3]
        fill = 0.5 if images.ndim == 4 else 0.0  # the colour of a zero weight
        grid = np.full((rows * (h + 2), cols * (width + 2), *images.shape[3:]), fill, np.float32)
        for u, m in enumerate(images):
            r, c = divmod(u, cols)
            top, left = r * (h + 2) + 1, c * (width + 2) + 1
            grid[top : top + h, left : left + width] = m if images.ndim == 4 else m / vmax
        rgb = grid if images.ndim == 4 else cmap(np.clip(grid, -1, 1) * 0.5 + 0.5)[..., :3]
        writer.add_image("first-layer masks", rgb, int(ck["step"]), dataformats="HWC")


def _write_hparams(folder: Path, rec: dict, runs: list[folders.Opened]) -> None:
    """The HParams plugin's table: each point's swept values and final metrics."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    keys = [c.key for c in families.get(rec["model"]).sweep_columns if not c.latent]
    points = {p["run"]: p for p in rec["points"]}
    domains = {
        k: list(v)
        for k, v in rec["grid"].items()
        if all(isinstance(x, (int, float, str, bool)) for x in v)
    }
    for run in runs:
        values = {k: _hparam(v) for k, v in points[run.id]["values"].items()}
        final = run.meta.final
        finals = {
            f"hparams/{k}": float(final[k])
            for k in keys
            if isinstance(final.get(k), (int, float)) and abs(final[k]) <= tensorboard.FLOAT32_MAX
        }
        exp, ssi, sei = hparams(values, finals, hparam_domain_discrete=domains)
        w = SummaryWriter(log_dir=str(folder / run.id))
        try:
            w.file_writer.add_summary(exp)
            w.file_writer.add_summary(ssi)
            w.file_writer.add_summary(sei)
            for k, v in finals.items():
                w.add_scalar(k, v, run.meta.steps_done)
        finally:
            w.close()


def _hparam(value):
    """An HParams value: numbers, text and booleans as they are, lists as text."""
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)
