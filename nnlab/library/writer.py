"""nnlab from the user's own training loop: a run in the store that their code writes
(settings, numbers at steps and epochs, latent snapshots of a probe set, checkpoints of
their state dicts), read by every nnlab command as if nnlab had trained it.

Files are written as nnlab's trainer writes them: metrics.jsonl appended and fsynced,
chunks and checkpoints atomically, meta.json sealed after each flush. A process killed at
any point leaves a run that reads as interrupted, whole up to its last flush.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnlab import families
from nnlab.config import config
from nnlab.families.family import NAME_RE
from nnlab.families.own import CHUNK_SNAPSHOTS, OwnConfig
from nnlab.helpers import files
from nnlab.helpers.version import VERSION
from nnlab.library.probe import (
    Encoded,
    Encoder,
    SnapshotThread,
    UsageError,
    as_array,
    check_labels,
    display_images,
)
from nnlab.store import folders, metrics, record, schema
from nnlab.store import layers as layer_store  # watch() takes a `layers` argument
from nnlab.store.meta import Status

FLUSH_SECONDS = folders.PUBLISH_SECONDS  # the most a kill can lose of what was logged or recorded
MAX_PENDING_LINES = 10_000
RESERVED = ("kind", "step", "epoch")  # position keys of a metrics line, not values
CHECKPOINT_RE = re.compile(r"^(latest|step-\d{8,})$")  # the names checkpoint() writes


def start(
    name: str = "",
    *,
    settings: dict | None = None,
    dataset: str = "",
    runs_dir: str | Path | None = None,
) -> RunWriter:
    """Create a run in the store for your own training loop and return its writer.

    name: a tag in the run id (`own-<date>-<time>-<name>`); settings: your own config,
    any JSON-able dict, saved as the run's config; dataset: what your images are, in
    words; runs_dir: the store ($NNLAB_RUNS or ./runs when None, as for the CLI).
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"name={name!r}: use up to 64 letters, digits, '.', '-' or '_' (it ends the run id)"
        )
    if not isinstance(dataset, str):
        raise UsageError(f"dataset={dataset!r}: describe your images in text")
    root = folders.runs_root(runs_dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"runs_dir={str(root)!r}: not a folder (the run store is a folder)")
    cfg = OwnConfig(name=name, dataset=dataset, settings=_json_settings(settings))
    text = config.to_yaml(cfg)
    if config.from_yaml(text, "settings") != cfg:  # what summary will read back
        raise UsageError("settings: do not survive a round trip through YAML")
    run = folders.create_run(runs_dir, cfg.model, name)
    try:
        files.write_text(run.config_file, text)
        meta = schema.new_meta(
            run.id,
            cfg.model,
            versions=_versions(),
            device="",
            data={
                "dataset": dataset or "own",
                "dataset_requested": dataset or "own",
                "data_source": "your own code",
                "train_size": 0,
                "val_size": 0,
                "test_size": 0,
            },
            steps_per_epoch=0,
            parameters=[],
            probe={},
            config_sha256=files.sha256_text(text),
            now=folders.now_iso(),
            settings=families.of(cfg).differences(cfg),
        )
        run.write_meta(meta)
        run.checkpoints.mkdir()
    except BaseException:  # leave no half-written run
        run.release()
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    return RunWriter(run, cfg)


def _layer_recorder(run: folders.Run, names: list[str]):
    """The writer of watch(layers=...)'s recording, None without layers."""
    return layer_store.LayerRecorder(run.layers, names) if names else None


def _json_settings(settings) -> dict:
    """The user's settings as plain JSON values (tuples become lists), or UsageError."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise UsageError(f"settings: expected a dict, got {type(settings).__name__}")
    try:
        text = json.dumps(settings, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UsageError(f"settings: not JSON-able ({e})") from None
    except RecursionError:
        raise UsageError("settings: nested too deep to save") from None
    if _depth(settings) > MAX_SETTINGS_DEPTH:  # YAML and the runs table read them back
        raise UsageError(f"settings: nested deeper than {MAX_SETTINGS_DEPTH} levels")
    return json.loads(text)


MAX_SETTINGS_DEPTH = 20


def _depth(value, level: int = 0) -> int:
    """How deep dicts and lists nest in value (stops counting past MAX_SETTINGS_DEPTH)."""
    if level > MAX_SETTINGS_DEPTH or not isinstance(value, (dict, list, tuple)):
        return level
    items = value.values() if isinstance(value, dict) else value
    return max((_depth(v, level + 1) for v in items), default=level + 1)


def _versions() -> dict:
    import torch

    return {"nnlab": VERSION, "torch": torch.__version__, "python": sys.version.split()[0]}


class RunWriter:
    """Your loop's handle on its run: log numbers, record the latent space, checkpoint,
    finish. Use it as a context manager so an exception marks the run failed (Ctrl-C:
    interrupted) and is raised on."""

    def __init__(self, run: folders.Run, cfg: OwnConfig):
        self.run, self.cfg = run, cfg
        self.log_file = metrics.MetricsLog(run.metrics)
        self.recorder = record.Recorder(run.latents, ("mu", "sd"), "float16")
        self.layer_recorder: layer_store.LayerRecorder | None = None  # watch(layers=...)
        self.layer_widths: dict[str, int] | None = None
        self.encoder: Encoder | None = None
        self.thread: SnapshotThread | None = None  # bfloat16 snapshots beside training
        self._unflushed = 0  # snapshots taken since the last flush (a chunk holds them)
        self.width: int | None = None  # set by the first snapshot: later ones must match
        self.spread: bool | None = None
        self.last_step = -1  # the highest step seen by log, log_epoch or snapshot
        self.last_snapshot = -1
        self.epochs = 0
        self.last_epoch_line: dict = {}
        self.last_step_line: dict = {}
        self.finished: str | None = None
        self._flushed = time.monotonic()
        self._started = time.perf_counter()

    # ------------------------------------------------------------ facts

    @property
    def id(self) -> str:
        """The run id (give it to nnlab animate, summary, report, export)."""
        return self.run.id

    @property
    def path(self) -> Path:
        """The run's folder."""
        return self.run.path

    # ------------------------------------------------------------ recording

    def watch(
        self,
        images: Any,
        labels: Any,
        *,
        classes: Sequence[str] | None = None,
        module=None,
        encode: Callable | None = None,
        layer: str | None = None,
        batch_size: int = 4096,
        image_shape: Sequence[int] | None = None,
        precision: str = "float32",
        prepare: Callable | None = None,
        layers: Sequence[str] | None = None,
    ) -> None:
        """Choose what snapshot() records: probe images (N×H×W or N×C×H×W, floats in
        [0, 1] or uint8, as your network takes them) with integer labels and optional class
        names, and either encode (a function from a batch of images to latents, or to a
        (mean, sd) pair: then the density pictures and mixture overlaps apply) or layer
        (the name of a submodule of module whose output is recorded, through a forward
        hook; on a module without a forward() of its own, as Lightning's LitAutoEncoder,
        that part runs on the probe). module is put in eval mode for each snapshot and
        back after; summary lists its parameters. image_shape: how to draw images your
        network takes flat (N×D), e.g. (28, 28). precision="bfloat16": bfloat16 snapshots
        (relative error ~0.5%), on a thread beside training on a CPU of two cores or more,
        as `nnlab train --record_precision=bfloat16` (an error comes at the next flush).
        prepare: shapes a batch as the network takes it (e.g. lambda x: x.flatten(1));
        without it, images a first Linear takes flat are tried flat. layers: two or more
        submodules recorded too, in the same pass (feature maps: their channels' means),
        for `nnlab layers`. Call once, before the first snapshot."""
        self._open("watch")
        if self.encoder is not None:
            raise UsageError(f"watch: run {self.id} has its probe already (call watch once)")
        shown = display_images(as_array(images, "images"), image_shape)
        labels = as_array(labels, "labels")
        names = check_labels(labels, len(shown), classes)
        encoder = Encoder(
            images,
            module=module,
            encode=encode,
            layer=layer,
            batch_size=batch_size,
            precision=precision,
            prepare=prepare,
            layers=layers,
        )
        # the copy a snapshot thread encodes with: refused now, before anything is written
        twin = encoder.twin() if encoder.wants_thread() else None
        self.recorder.write_probe(
            labels.astype(np.int64),
            np.arange(len(labels)),
            "probe",
            images=shown,
            classes=names,
        )
        self.run.update_meta(**_watched(len(labels), shown.shape[1:], module))
        self.encoder = encoder
        self.layer_recorder = _layer_recorder(self.run, encoder.layers)
        if twin is not None:
            self.thread = SnapshotThread(module, twin, self._accept)

    def snapshot(self, step: int, *, epoch: float | None = None) -> None:
        """Record the probe's latents at this step (one no-grad pass in eval mode). Steps
        rise from snapshot to snapshot; epoch (fractional allowed) labels the frame."""
        self._open("snapshot")
        if self.encoder is None:
            raise UsageError("snapshot: call watch(images, labels, ...) first")
        step = _step(step, "snapshot")
        if step <= self.last_snapshot:
            raise UsageError(
                f"snapshot: step {step} goes backwards (the last snapshot was at step "
                f"{self.last_snapshot}); steps must rise"
            )
        epoch = self._epoch_at(step) if epoch is None else float(_number(epoch, "epoch"))
        if self.thread is not None:
            self.thread.submit(step, epoch)
        else:
            self._accept(step, epoch, self.encoder())
        self.last_snapshot = step
        self.last_step = max(self.last_step, step)
        self._unflushed += 1
        if self._unflushed >= CHUNK_SNAPSHOTS:
            self.flush()
        else:
            self._maybe_flush()

    def _epoch_at(self, step: int) -> float:
        """A snapshot's epoch when not given: its step over the steps per epoch of the
        epochs logged so far (fractional), or the epochs done before the first one ends."""
        line = self.last_epoch_line
        if self.epochs and line.get("step", 0) > 0:
            return round(step * self.epochs / line["step"], 4)
        return float(self.epochs)

    def _accept(self, step: int, epoch: float, enc: Encoded) -> None:
        """Check a snapshot's latents and keep them for the next chunk, or refuse them."""
        bad = int((~np.isfinite(enc.points)).sum())
        if enc.sd is not None:
            bad += int((~np.isfinite(enc.sd)).sum())
            if bad == 0 and (enc.sd <= 0).any():
                raise UsageError(
                    "snapshot: the sd your encoder returned has values of 0 or below (a spread "
                    "is positive: exp(0.5 * log_var), or softplus)"
                )
        if bad:
            raise UsageError(
                f"snapshot at step {step}: {bad} latent values are NaN or infinite; refused, "
                "nothing recorded (has training diverged?)"
            )
        width, spread = enc.points.shape[1], enc.sd is not None
        first = self.width is None
        if first and width == 0:
            raise UsageError("snapshot: the latents have no dimensions")
        if not first and (width, spread) != (self.width, self.spread):
            was = f"{self.width} dimensions" + (" with sd" if self.spread else "")
            now = f"{width} dimensions" + (" with sd" if spread else "")
            raise UsageError(
                f"snapshot at step {step}: latents of {now}, earlier snapshots {was}; a "
                "recording keeps one shape"
            )
        try:  # the recorder refuses what its dtype cannot store, before keeping anything
            self.recorder.add(step, epoch, enc.points, enc.sd)
        except record.BeyondRange as e:
            raise UsageError(
                f"snapshot at step {step}: {e.count} latent values are beyond what the "
                f"recording stores ({self.recorder.dtype}: ±{self.recorder.largest:g}); refused, "
                "nothing recorded (has training diverged?)"
            ) from None
        if enc.layers is not None and self.layer_recorder is not None:
            self._accept_layers(step, epoch, enc.layers)
        if first:  # the chunk files' size ceiling needs the width before the first chunk
            widest = max(self.layer_widths.values()) if self.layer_widths else None
            extra = {"layers_width": widest} if widest else {}
            self.run.update_meta(probe=dict(self.run.meta().probe, width=width, **extra))
            self.width, self.spread = width, spread

    def _accept_layers(self, step: int, epoch: float, kept: dict) -> None:
        """Check a snapshot's watched layers (finite, each its first width) and keep them."""
        widths = {name: a.shape[1] for name, a in kept.items()}
        if self.layer_widths is not None and widths != self.layer_widths:
            raise UsageError(
                f"snapshot at step {step}: layers of widths {widths}, earlier snapshots "
                f"{self.layer_widths}; a recording keeps one shape"
            )
        for name, a in kept.items():
            if not np.isfinite(a).all():
                raise UsageError(
                    f"snapshot at step {step}: layer '{name}' has NaN or infinite values; "
                    "refused, nothing recorded (has training diverged?)"
                )
        names = self.layer_recorder.names
        try:
            self.layer_recorder.add(step, epoch, [kept[n] for n in names], None)
        except record.BeyondRange as e:
            raise UsageError(f"{e}; refused, nothing recorded") from None
        self.layer_widths = widths

    # ------------------------------------------------------------ numbers

    def log(self, step: int, *, epoch: float | None = None, **values: float) -> None:
        """Log numbers at a training step (any keys: loss, kl, ...): `summary --plot`,
        the report and TensorBoard export draw them. Steps never go backwards."""
        self._open("log")
        step = _step(step, "log")
        if step < self.last_step:
            raise UsageError(
                f"log: step {step} goes backwards (step {self.last_step} was logged already)"
            )
        line: dict = {"kind": "step", "step": step}
        if epoch is not None:
            line["epoch"] = _number(epoch, "epoch")
        line.update(_values(values, "log"))
        self.log_file.append(**line)
        self.last_step_line = line
        self.last_step = step
        self._maybe_flush()

    def note_skipped(self, step: int, what: str, why: str) -> None:
        """A line of kind "skipped" in metrics.jsonl: what a recording skipped at a step and
        why (the Lightning callback's writes that failed without stopping the fit)."""
        self._open("note_skipped")
        self.log_file.append(kind=metrics.SKIPPED, step=int(step), what=str(what), why=str(why))
        self._maybe_flush()

    def log_epoch(self, epoch: int, *, step: int | None = None, **values: float) -> None:
        """Log an epoch's numbers (train_loss, test_loss, test_acc, ...: `summary` shows
        the last epoch's as the run's final metrics) and flush. epoch counts from 1; step
        defaults to the highest step seen."""
        self._open("log_epoch")
        if not (isinstance(epoch, int) and not isinstance(epoch, bool)) or epoch <= self.epochs:
            raise UsageError(
                f"log_epoch: epoch {epoch!r} must be a whole number above {self.epochs} "
                "(the last epoch logged)"
            )
        step = max(self.last_step, 0) if step is None else _step(step, "log_epoch")
        if step < self.last_step:
            raise UsageError(f"log_epoch: step {step} goes backwards (step {self.last_step} seen)")
        line = {"kind": "epoch", "epoch": epoch, "step": step, **_values(values, "log_epoch")}
        self.log_file.append(**line)
        self.last_epoch_line, self.epochs, self.last_step = line, epoch, step
        self.flush()

    # ------------------------------------------------------------ durability

    def checkpoint(self, step: int, *, keep: bool = False, **state: Any) -> Path:
        """Save your state dicts (model=model.state_dict(), optimizer=...) as
        checkpoints/latest.pt (and step-N.pt with keep=True), atomically, after flushing
        the log and the recording; nnlab.load_checkpoint reads it back (weights only)."""
        self._open("checkpoint")
        step = _step(step, "checkpoint")
        if not state:
            raise UsageError("checkpoint: give your state dicts, e.g. model=model.state_dict()")
        for key, value in state.items():
            _check_saveable(value, key)
        self.flush()
        obj = {"step": step, **state}
        path = self.run.checkpoint_file(folders.LATEST)
        files.save_checkpoint(path, obj)
        if keep:
            path = self.run.checkpoints / f"step-{step:08d}.pt"
            files.save_checkpoint(path, obj)
        self.run.update_meta(resumable_step=step, updated=folders.now_iso())
        return path

    def flush(self) -> None:
        """Write what was logged and recorded to disk now (also done every few seconds,
        at each epoch line and checkpoint, and at finish)."""
        if self.thread is not None:
            try:
                self.thread.drain()  # every queued snapshot in the recorder first
            finally:
                self._unflushed = len(self.recorder.pending)
        self.recorder.flush()
        if self.layer_recorder is not None:
            self.layer_recorder.flush()
        self._unflushed = 0
        self.log_file.flush()
        size = self.log_file.size()
        self.run.update_meta(
            steps_done=max(self.last_step, 0),
            epochs_done=self.epochs,
            snapshots=self.recorder.saved(),
            metrics_bytes=size,
            metrics_sha256=self.log_file.digest(size),
            updated=folders.now_iso(),
            train_seconds=round(time.perf_counter() - self._started, 3),
        )
        self._flushed = time.monotonic()

    def finish(self, status: str = Status.FINISHED) -> None:
        """Flush and mark the run finished (or "interrupted", "failed"); release it."""
        if self.finished is not None:
            return
        if status not in (Status.FINISHED, Status.INTERRUPTED, Status.FAILED):
            raise UsageError(f"finish: status '{status}': use finished, interrupted or failed")
        try:
            self.flush()
            final = self.last_epoch_line or self.last_step_line
            final = {k: v for k, v in final.items() if k not in RESERVED}
            # a loop of the user's cannot be resumed by nnlab: an interrupted one ends too
            self.run.end(status, ended=folders.now_iso(), final=final)
        finally:
            self.finished = status
            if self.thread is not None:
                self.thread.close()
                self.thread = None
            self.run.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if kind is None:
            self.finish(Status.FINISHED)
        else:
            try:
                self.finish(
                    Status.INTERRUPTED if issubclass(kind, KeyboardInterrupt) else Status.FAILED
                )
            except Exception:  # the user's exception is the one to see
                pass
        return False

    # ------------------------------------------------------------ internals

    def _open(self, what: str) -> None:
        if self.finished is not None:
            raise UsageError(f"{what}: run {self.id} is {self.finished} already (start a new one)")

    def _maybe_flush(self) -> None:
        if (
            time.monotonic() - self._flushed > FLUSH_SECONDS
            or len(self.log_file.pending) >= MAX_PENDING_LINES
        ):
            self.flush()


def _watched(size: int, shape, module) -> dict:
    """meta.json's facts of what watch() records: the probe, and the watched module's
    parameters and device when there is one."""
    facts: dict = {"probe": {"split": "probe", "size": size, "shape": [*shape]}}
    if module is not None:
        from nnlab.training.models import parameter_table

        table = parameter_table(module)
        facts.update(parameters=table, parameter_count=sum(p["count"] for p in table))
        facts["device"] = str(next(module.parameters()).device) if table else ""
    return facts


def load_checkpoint(
    run_id: str, name: str = "latest", *, runs_dir: str | Path | None = None, map_location="cpu"
) -> dict:
    """A checkpoint saved by RunWriter.checkpoint: "latest" or "step-N", loaded with
    torch.load(weights_only=True) (nothing in it is unpickled as code)."""
    run = folders.open_run(run_id, runs_dir)
    if not isinstance(name, str) or not CHECKPOINT_RE.match(name):  # a name, never a path
        raise UsageError(
            f"load_checkpoint: name={name!r}: use latest or step-N (e.g. step-00000060)"
        )
    path = run.checkpoints / f"{name}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in run.checkpoints.glob("*.pt"))
        raise UsageError(
            f"run {run.id} has no checkpoint '{name}'"
            + (f" (it has: {', '.join(have)})" if have else "")
        )
    return files.load_checkpoint(path, map_location=map_location, required=("step",))


def _step(step, what: str) -> int:
    """A step: a whole number from 0 (a 0-d integer tensor or numpy integer is one)."""
    if hasattr(step, "item") and not isinstance(step, (bool, np.bool_)):
        step = step.item()
    if not (isinstance(step, (int, np.integer)) and not isinstance(step, bool)) or step < 0:
        raise UsageError(f"{what}: step {step!r} must be a whole number from 0")
    if step >= 2**53:  # meta.json holds whole numbers that a float64 holds exactly
        raise UsageError(f"{what}: step {step!r} is too large (steps stay below 2**53)")
    return int(step)


def _number(value, what: str) -> float:
    """A finite number (a 0-d tensor's value is one)."""
    if hasattr(value, "item"):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            raise UsageError(f"{what}: expected one number, got an array") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what}: expected a number, got {type(value).__name__}")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an int beyond any float: 10**400
        finite = False
    if not finite:
        shown = f"{value:.3g}" if isinstance(value, float) else "an integer beyond any float"
        raise UsageError(f"{what}={shown}: not finite (metrics hold finite numbers)")
    return float(value) if isinstance(value, float) else int(value)


def _values(values: dict, what: str) -> dict:
    """Numbers to log, checked: no position keys, finite numbers only."""
    if not values:
        raise UsageError(f"{what}: give at least one number, e.g. {what}(step, loss=0.5)")
    clash = [k for k in values if k in RESERVED]
    if clash:
        raise UsageError(f"{what}: '{clash[0]}' is a position, not a value to log")
    return {k: _number(v, f"{what}: {k}") for k, v in values.items()}


def _check_saveable(value, where: str) -> None:
    """Refuse what torch.load(weights_only=True) could not read back (objects, modules)."""
    import torch

    if isinstance(value, torch.nn.Module):
        raise UsageError(f"checkpoint: {where} is a module; save {where}.state_dict()")
    if isinstance(value, (torch.Tensor, int, float, str, bool, type(None), torch.Size)):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_saveable(k, where)
            _check_saveable(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_saveable(v, f"{where}[{i}]")
        return
    raise UsageError(
        f"checkpoint: {where} is a {type(value).__name__}; only tensors, numbers, text and "
        "dicts or lists of them load back safely"
    )
