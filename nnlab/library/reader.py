"""Runs read back in Python: `nnlab.runs()` (the runs table), `nnlab.open(run)` (one run:
its config, facts, metrics, recording, checkpoints and pictures) and `nnlab.open_sweep(id)`.

Reading never writes into a run (the latent-metrics cache and the pictures asked for
excepted, as the commands write them), never unpickles, and reads a run that is training
as far as it has flushed. A file that is not what nnlab wrote raises RunDamaged in one line
naming it. Nothing here imports torch until a checkpoint or a dataset is asked for.
"""

from __future__ import annotations

import dataclasses
import html
import operator
import os
from pathlib import Path
from typing import Any

from nnlab import families
from nnlab.helpers.errors import NnlabError, RunDamaged, did_you_mean
from nnlab.store import folders, labels, metrics, record, schema, sweeps, table
from nnlab.store.meta import Meta, Status

__all__ = ["runs", "open_run", "open_sweep", "Run", "Sweep", "Latents", "RunsTable"]


# ---------------------------------------------------------------- the runs table


class RunsTable(list):
    """The runs table: a list of RunRow, newest first, shown as a table in a notebook."""

    def _repr_html_(self) -> str:
        head = ("id", "model", "dataset", "epochs", "steps", "headline", "status", "created")
        cells = []
        for r in self:
            family = families.FAMILIES.get(r.model)
            value = family.format_headline(r.value) if family and r.value is not None else "-"
            shown = (r.id, r.model, r.dataset, r.epochs, r.steps, f"{r.headline} {value}")
            cells.append((*shown, r.status, r.created[:19].replace("T", " ")))
        return _html_table(head, cells) if cells else "<p>no runs</p>"


def runs(
    runs_dir=None, *, model=None, dataset=None, status=None, sweep=None, tag=None
) -> RunsTable:
    """The runs of a store (default ./runs, or $NNLAB_RUNS), newest first, as typed rows;
    keep only those of a model, a dataset, a status, a sweep's points or a tag when asked."""
    wanted = {"model": model, "dataset": dataset, "status": status, "sweep": sweep}
    for key, value in {**wanted, "tag": tag}.items():
        if value is not None and not isinstance(value, str):
            raise NnlabError(f"runs: {key}={value!r}: give it as text")
    if status is not None and status not in {s.value for s in Status}:
        raise NnlabError(f"runs: status={status!r}: use {', '.join(s.value for s in Status)}")
    rows = [
        r
        for r in reversed(table.rows(runs_dir))
        if all(v is None or getattr(r, k) == v for k, v in wanted.items())
        and (tag is None or tag in r.tags)
    ]
    return RunsTable(rows)


# ---------------------------------------------------------------- one run


@dataclasses.dataclass(frozen=True)
class Latents:
    """One snapshot of a run's recording: the probe's labels and the recorded arrays, each
    (N, D) float32 (a VAE's `mu` and `sd`, a classifier layer's `act`, a user's `mu`)."""

    step: int
    epoch: float  # epochs done at the snapshot (fractional within an epoch)
    labels: Any  # (N,) int64: each probe image's class
    classes: list[str]  # the class names, indexed by label
    arrays: dict  # name -> (N, D) float32

    def __getitem__(self, name: str):
        """An array by name: latents["mu"]."""
        try:
            return self.arrays[name]
        except KeyError:
            raise KeyError(f"{name!r}: this recording holds {', '.join(self.arrays)}") from None


class Run:
    """A run of the store, opened for reading (nnlab.open). Its meta.json is read again
    whenever the file changes, so `status`, `steps` and `metrics()` follow a run that is
    training; its config never changes and is read once."""

    def __init__(self, folder: folders.Run):
        self._folder = folder
        self._meta_read: tuple[tuple, Meta] | None = None  # (file key, Meta)
        self._config = None
        self._snapshots: record.Snapshots | None = None

    # -- facts

    @property
    def id(self) -> str:
        """The run's id."""
        return self._folder.id

    @property
    def path(self) -> Path:
        """The run's folder."""
        return self._folder.path

    @property
    def meta(self) -> Meta:
        """meta.json as a typed record (read again when the file has changed)."""
        path = self._folder.meta_file
        try:
            st = path.stat()
        except FileNotFoundError:
            raise RunDamaged(f"{path}: missing") from None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._meta_read is None or self._meta_read[0] != key:
            self._meta_read = (key, self._folder.meta())
        return self._meta_read[1]

    @property
    def status(self) -> Status:
        """finished, running, interrupted (running, but no process holds it), diverged,
        failed or pruned."""
        return self._folder.status(self.meta)

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags given with `nnlab runs tag` (RunDamaged when their file is damaged)."""
        return labels.read(self._folder).tags

    @property
    def note(self) -> str:
        """The note given with `nnlab runs note` ("" when none)."""
        return labels.read(self._folder).note

    @property
    def config(self):
        """The run's config as its family's dataclass (a run of your own code: OwnConfig,
        whose `settings` are the ones you gave)."""
        if self._config is None:
            self._config = self._folder.config(self.meta)
        return self._config

    @property
    def family(self):
        """The run's model family (nnlab.families)."""
        return families.of(self.config)

    def _ceilings(self) -> tuple[int, int]:
        return schema.size_ceilings(self.config, self.meta)

    # -- numbers

    def metrics(self) -> dict[str, list[dict]]:
        """metrics.jsonl's lines by kind: "step" (training loss over a log window) and
        "epoch" (train, validation and test numbers) always, "task" and "diverged" when
        the run has them. A line torn by a crash mid-write is left out."""
        path = self._folder.metrics
        schema.check_metrics(path, self.config, self.meta)
        out: dict[str, list[dict]] = {"step": [], "epoch": []}
        for line in metrics.read(path):
            out.setdefault(str(line.get("kind")), []).append(line)
        return out

    def metrics_frame(self) -> dict:
        """metrics() as pandas DataFrames, one per kind (pandas needed: the notebook extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise NnlabError(
                "metrics_frame needs pandas: pip install pandas (or nnlab[notebook]); "
                "metrics() gives the same lines as dicts"
            ) from None
        return {kind: pd.DataFrame(lines) for kind, lines in self.metrics().items()}

    def latent_metrics(self) -> dict:
        """The latent metrics `nnlab summary` shows (start, middle and end of the
        recording), from the run's cache while the recording is unchanged."""
        from nnlab.analysis import cache

        if not len(self.steps):
            raise NnlabError(f"run {self.id} has no latent recording yet")
        return cache.trend(self._folder, self.family.arrays, self._ceilings()[1])

    def layer_measures(self) -> dict:
        """Every measure of each layer --record_layers kept, at every measured snapshot
        (what `nnlab layers --json` prints: probe and nearest-class-mean accuracy, CKA
        between layers and to each layer's final state, neural collapse), cached."""
        from nnlab.analysis import cache

        return cache.layer_measures(self._folder, self.config, self.meta)

    # -- the recording

    def _recording(self) -> record.Snapshots:
        if self._snapshots is None:
            self._snapshots = record.Snapshots(
                self._folder.latents, self.family.arrays, self._ceilings()[1]
            )
        return self._snapshots

    @property
    def steps(self):
        """The training steps of the recorded snapshots, as flushed so far ((S,) int64)."""
        return self._recording().steps()

    @property
    def epochs(self):
        """The epochs done at each snapshot ((S,) float64, fractional within an epoch)."""
        return self._recording().epochs()

    def latents(self, step: int | None = None) -> Latents:
        """The snapshot at training step `step` (one of `steps`; None: the newest)."""
        rec = self._recording()
        if step is not None:
            if isinstance(step, bool) or not hasattr(step, "__index__"):
                raise NnlabError(f"latents: step={step!r}: give one of run.steps")
            step = operator.index(step)
        have = rec.steps()
        if not len(have):
            raise NnlabError(f"run {self.id} has no latent recording yet")
        try:
            at, epoch, arrays = rec.snapshot(step)
        except KeyError:
            shown = ", ".join(map(str, have[:6])) + (", ..." if len(have) > 6 else "")
            raise NnlabError(
                f"run {self.id} has no snapshot at step {step} (its steps: {shown})"
            ) from None
        probe = rec.probe()
        labels = probe["labels"].astype("int64")
        if "classes" in probe:
            classes = [str(c) for c in probe["classes"]]
        else:
            classes = self.family.class_names(self.config)
        return Latents(at, epoch, labels, classes, arrays)

    def probe_images(self):
        """The probe images, (N, C, H, W) uint8 in the recording's order (stored with the
        probe, or loaded from the run's dataset)."""
        import numpy as np

        from nnlab.render.sources import probe_images

        probe = self._recording().probe()
        n = len(probe["labels"])
        split = str(probe["split"]) if "split" in probe else "test"
        indices = probe["indices"].astype(np.int64) if "indices" in probe else np.arange(n)
        return probe_images(self._folder, self.config, split, indices, np.arange(n))

    def checkpoint(self, name: str = "latest") -> dict:
        """A checkpoint's contents (weights as tensors, loaded with weights_only=True):
        latest, final or epoch-N of a trained run; latest or step-N of your own."""
        from nnlab.helpers import files

        if not isinstance(name, str) or not folders.ID_RE.match(name) or "." in name:
            raise NnlabError(f"checkpoint: name={name!r}: give a name such as latest")
        if not self.family.rebuildable:
            from nnlab.library.writer import load_checkpoint

            return load_checkpoint(self.id, name, runs_dir=self._folder.root)
        from nnlab.training.loading import checkpoint_path

        if not (name in ("latest", "final") or name.startswith("epoch-")):
            raise NnlabError(f"checkpoint: name={name!r}: use latest, final or epoch-N")
        path = checkpoint_path(self._folder, name)
        return files.load_checkpoint(path, max_bytes=self._ceilings()[0])

    # -- pictures

    def figure(self, step: int | None = None, **options):
        """The matplotlib figure `nnlab animate` draws for the snapshot at `step` (None: the
        newest), on the animation's axes; options: kind, dpi."""
        from nnlab.render.animate import snapshot_figure

        return snapshot_figure(self.id, self._folder.root, step=step, **options)

    def animate(self, **options) -> Path:
        """Write the latent-space GIF as `nnlab animate` does (its options, declared once in
        nnlab.render.defaults.AnimateOptions) and return its path."""
        from nnlab.library.probe import UsageError
        from nnlab.render.animate import animate
        from nnlab.render.defaults import AnimateOptions

        known = [f.name for f in dataclasses.fields(AnimateOptions)]
        for name in options:
            if name not in known:
                raise UsageError(f"animate(): no option {name!r}{did_you_mean(name, known)}")
        paths = animate(self.id, self._folder.root, AnimateOptions(**options))
        return Path(paths[0])

    def show(self, **options):
        """Show the animation in a notebook (writes it as animate() does)."""
        from IPython.display import Image

        return Image(filename=str(self.animate(**options)))

    def _repr_html_(self) -> str:
        try:
            meta, status = self.meta, self.status
        except NnlabError as e:
            return f"<p><strong>{_e(self.id)}</strong>: {_e(e)}</p>"
        rows = [
            ("model", meta.model),
            ("dataset", meta.dataset),
            ("status", status),
            ("progress", f"{meta.epochs_done} epochs · {meta.steps_done} steps"),
            ("created", meta.created[:19].replace("T", " ")),
        ]
        if meta.settings:
            rows.append(("settings", meta.settings))
        try:
            given = labels.read(self._folder)
        except NnlabError as e:
            given = labels.Labels(note=str(e))  # the card says why, as text
        rows += [(k, v) for k, v in (("tags", " ".join(given.tags)), ("note", given.note)) if v]
        rows += [(k, _number(v)) for k, v in meta.final.items()]
        image = ""
        try:
            if len(self.steps):
                image = _figure_png(self.figure(dpi=60))
        except NnlabError as e:  # a card is still shown, saying what could not be drawn
            image = f"<p>{_e(e)}</p>"
        card = _html_table(("", ""), rows, header=False)
        return f"<div><strong>{_e(self.id)}</strong>{card}{image}</div>"

    def __repr__(self) -> str:
        return f"nnlab.Run({self.id!r}, path={str(self.path)!r})"


def open_run(run: str | os.PathLike, runs_dir=None) -> Run:
    """A run by id (or 'latest') in runs_dir, or by the path of its folder."""
    if isinstance(run, os.PathLike) or (isinstance(run, str) and os.sep in run):
        path = Path(run).expanduser().absolute()
        if runs_dir is not None:
            raise NnlabError("open: give a run's id with runs_dir, or its path alone")
        root, run = path.parent, path.name
    else:
        root = folders.runs_root(runs_dir)
    return Run(folders.open_run(run, root))


# ---------------------------------------------------------------- sweeps


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of a sweep (or trial of a search): its run, values, status and metric."""

    index: int
    run: str
    values: dict
    status: Status
    value: float | None


class Sweep:
    """A sweep or a search, opened for reading (nnlab.open_sweep)."""

    def __init__(self, sweep: sweeps.Sweep):
        self._sweep = sweep

    @property
    def id(self) -> str:
        """The sweep's id."""
        return self._sweep.id

    @property
    def path(self) -> Path:
        """The sweep's folder."""
        return self._sweep.path

    @property
    def record(self) -> dict:
        """sweep.json, checked (the grid or search plan, the points, how it stands)."""
        return self._sweep.record()

    @property
    def points(self) -> list[Point]:
        """Each point with its status as its run tells it."""
        rec = self.record
        return [
            Point(
                i,
                p["run"],
                dict(p["values"]),
                Status(self._sweep.point_status(rec, i)),
                p.get("value"),
            )
            for i, p in enumerate(rec["points"])
        ]

    def runs(self) -> list[Run]:
        """The runs of the points that have started, in point order."""
        root = self._sweep.root
        return [Run(folders.open_run(p.run, root)) for p in self.points if (root / p.run).is_dir()]

    def describe(self) -> dict:
        """What `nnlab summary SWEEP_ID --json` prints: points, metrics, best, groups."""
        from nnlab.analysis import comparison

        return comparison.describe(self.id, self._sweep.root)

    def _repr_html_(self) -> str:
        try:
            points = self.points
        except NnlabError as e:
            return f"<p><strong>{_e(self.id)}</strong>: {_e(e)}</p>"
        head = ("point", "run", "values", "status", "value")
        cells = [
            (
                p.index,
                p.run,
                " ".join(f"{k}={v}" for k, v in p.values.items()),
                p.status,
                _number(p.value),
            )
            for p in points
        ]
        return f"<div><strong>{_e(self.id)}</strong>{_html_table(head, cells)}</div>"

    def __repr__(self) -> str:
        return f"nnlab.Sweep({self.id!r}, path={str(self.path)!r})"


def open_sweep(sweep_id: str, runs_dir=None) -> Sweep:
    """A sweep or search of the store by id."""
    return Sweep(sweeps.open_sweep(sweep_id, runs_dir))


# ---------------------------------------------------------------- HTML


def _e(value) -> str:
    """Any stored text as HTML text (never markup)."""
    return html.escape(str(value), quote=True)


def _number(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else "-" if v is None else str(v)


def _html_table(head, cells, header: bool = True) -> str:
    """A small HTML table; every cell escaped."""
    top = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table>{top}{body}</table>"


def _figure_png(fig) -> str:
    """A figure as an inline <img> (PNG, base64), the figure then closed."""
    import base64
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="the newest snapshot" src="data:image/png;base64,{data}">'
