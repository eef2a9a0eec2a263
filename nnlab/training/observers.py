"""What happens around the training loop's steps, each as an observer: the latent recording,
continual backprop, permuted tasks, unit health, a search's pruning reports and the live
TensorBoard. The loop (nnlab.training.trainer) calls every observer at the same moments,
in a fixed order; an observer keeps its own part of the checkpoint, the way Lightning's
callbacks carry their state.

The moments, in the order a run meets them:
- fit_start: training begins or resumes (before the first checkpoint of a new run);
- ready: the first checkpoint and any owed copies are written; the epochs begin;
- step_end(values): a step's update is done and counted (`values`: its losses);
- epoch_line(line): the epoch's evaluation line is being made: add keys to it;
- epoch_end(line, done): the line is logged; the epoch's checkpoint comes next;
- epoch_saved(line, done): that checkpoint is written;
- before_flush(final): a checkpoint is about to make the queued lines and snapshots durable;
- fit_end: training stops, however it stops.
"""

from __future__ import annotations

import os
import time

import torch

from nnlab import families
from nnlab.config import tasks
from nnlab.helpers import testhooks
from nnlab.helpers.console import warn
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders, layers, metrics, record
from nnlab.store.meta import Status
from nnlab.training import health, pruning, tensorboard
from nnlab.training.cbp import ContinualBackprop
from nnlab.training.snapshots import SnapshotWorker, capture_layers, encode_probe, head_of

FEW_SNAPSHOTS = 10  # fewer in a whole run: warned before training (the GIF would be a flicker)
LIVE_SECONDS = folders.PUBLISH_SECONDS  # how often a training publishes lines and snapshots
LAYERS_BUDGET_BYTES = 2 * 1024**3  # the most a run's recording of several layers may take


class Observer:
    """The hooks the loop calls (each does nothing unless an observer overrides it) and the
    observer's part of the checkpoint: state_dict() adds keys to it, load_state_dict()
    reads them back on resume."""

    def fit_start(self, trainer) -> None:
        """Training begins or resumes."""

    def ready(self, trainer) -> None:
        """The first checkpoint and owed copies are written; the epochs begin."""

    def step_end(self, trainer, values: dict[str, float]) -> None:
        """A step is done."""

    def epoch_line(self, trainer, line: dict) -> None:
        """Add this observer's numbers to the epoch's line."""

    def epoch_end(self, trainer, line: dict, done: bool) -> None:
        """The epoch's line is logged; its checkpoint comes next."""

    def epoch_saved(self, trainer, line: dict, done: bool) -> None:
        """The epoch's checkpoint is written."""

    def before_flush(self, trainer, final: bool) -> None:
        """A checkpoint is about to flush the queued metric lines and snapshots."""

    def fit_end(self, trainer) -> None:
        """Training stops (finished, interrupted, diverged, pruned or failed)."""

    def state_dict(self) -> dict:
        """This observer's keys of the checkpoint."""
        return {}

    def load_state_dict(self, ck: dict) -> None:
        """Restore from a checkpoint (a KeyError, ValueError or TypeError: it does not fit)."""

    def restart(self) -> None:
        """The run starts over (killed before its first checkpoint): drop what was kept."""


class Recording(Observer):
    """The latent recording: the probe encoded every `snapshot_every` steps, at step 0 and
    at the end, kept as chunks at each checkpoint (encoded on a thread beside training
    when that pays: SnapshotWorker)."""

    def __init__(self, trainer):
        cfg = trainer.cfg
        self.every = cfg.snapshot_every
        self.recorder = record.Recorder(
            trainer.run.latents, trainer.family.arrays, cfg.record_dtype
        )
        self.worker: SnapshotWorker | None = None  # exists only while fit() runs
        self.last_step = -1  # the step of the newest snapshot
        # the recording of several layers, when it takes this recording's snapshots in its
        # own pass (one forward pass for both: set by observers_of)
        self.joined: LayerRecording | None = None

    def snapshot(self, trainer) -> None:
        """Encode the probe set (one no-grad pass) and keep it for the next chunk."""
        epoch = trainer.epoch + trainer.batch / trainer.steps_per_epoch
        if self.joined is not None:
            self.joined.snapshot(trainer, latent=self.recorder)
        elif self.worker is not None:
            params = [p.detach().clone() for p in trainer.model.parameters()]
            self.worker.submit(trainer.step, epoch, params)
        else:
            probe = trainer.tasks.images(trainer.probe_x, tasks.at(epoch, trainer.tasks.every))
            a, b = encode_probe(trainer.model, trainer.cfg, probe)
            self.recorder.add(trainer.step, epoch, a, b)
        self.last_step = trainer.step

    def fit_start(self, trainer) -> None:
        # The worker encodes one fixed probe tensor; a permuted task's probe changes.
        cpus = os.cpu_count() or 1
        wanted = SnapshotWorker.wanted(trainer.cfg, trainer.device, cpus)
        if not trainer.tasks.every and wanted and self.joined is None:
            self.worker = SnapshotWorker(trainer.cfg, trainer.probe_x, self.recorder)
        if trainer.fresh and self.every:
            self.warn_if_sparse(trainer)
            self.snapshot(trainer)  # step 0, before anything is learnt

    def warn_if_sparse(self, trainer) -> None:
        """Say before training when the cadence leaves the animation a few frames (e.g. a
        preset's snapshot_every on a small dataset), and what to pass instead."""
        total = trainer.cfg.epochs * trainer.steps_per_epoch
        count = total // self.every + 1 + (total % self.every != 0)  # step 0 and the end too
        if count < FEW_SNAPSHOTS:
            better = max(1, total // 50)
            warn(
                trainer.console,
                f"warning: snapshot_every={self.every} over this run's {total} steps records "
                f"{count} snapshots, so its animation will have {count} frames: "
                f"--snapshot_every={better} records about {total // better + 1}",
            )

    def step_end(self, trainer, values) -> None:
        if self.every and trainer.step % self.every == 0:
            self.snapshot(trainer)

    def epoch_end(self, trainer, line, done) -> None:
        if done and self.every and self.last_step != trainer.step:
            self.snapshot(trainer)  # the final state, so the animation ends where training did

    def before_flush(self, trainer, final) -> None:
        if self.worker is not None:
            self.worker.drain()

    def flush(self) -> None:
        """Write the pending snapshots as the next chunk (a checkpoint does)."""
        self.recorder.flush()

    def fit_end(self, trainer) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def state_dict(self) -> dict:
        return {"last_snapshot_step": self.last_step, "latent_chunks": self.recorder.chunk_count()}

    def load_state_dict(self, ck) -> None:
        self.last_step = int(ck["last_snapshot_step"])
        self.recorder.truncate(int(ck["latent_chunks"]))

    def restart(self) -> None:
        """Drop every snapshot (a run started over)."""
        self.recorder.truncate(0)


class LayerRecording(Observer):
    """Several layers recorded at the latent recording's snapshots (--record_layers): one
    forward pass over the probe set keeps every named layer's activations, and the output
    layer's weights beside them. Refused before training when the whole recording would
    take more than LAYERS_BUDGET_BYTES; its size is said when training starts."""

    def __init__(self, trainer):
        cfg = trainer.cfg
        self.names = cfg.recorded_layers()
        self.every, self.reduction = cfg.snapshot_every, cfg.layer_reduction
        self.recorder = layers.LayerRecorder(trainer.run.layers, self.names, cfg.record_dtype)
        self.last_step = -1
        self.latent_tap = None  # taps -> the latent recording's points, when joined to it
        total = cfg.epochs * trainer.steps_per_epoch
        self.count = total // self.every + 2  # step 0, every `every` steps, the end
        width = sum(cfg.recorded_layer_widths().values())
        self.per_snapshot = len(trainer.probe_labels) * width * self.recorder.dtype.itemsize
        if self.per_snapshot * self.count > LAYERS_BUDGET_BYTES:
            raise NnlabError(
                f"--record_layers: {len(self.names)} layers ({width:,} values an image) would "
                f"take {self.per_snapshot * self.count / 1e9:.1f} GB over {self.count} "
                f"snapshots, above the {LAYERS_BUDGET_BYTES / 1e9:.1f} GB budget: record "
                "fewer layers, a smaller --probe_size, a larger --snapshot_every, or "
                "--layer_reduction=mean"
            )

    def snapshot(self, trainer, latent: record.Recorder | None = None) -> None:
        """Keep every recorded layer's activations on the probe set, and the output layer;
        with `latent`, the latent recording's snapshot too, from the same pass."""
        epoch = trainer.epoch + trainer.batch / trainer.steps_per_epoch
        probe = trainer.tasks.images(trainer.probe_x, tasks.at(epoch, trainer.tasks.every))
        also = self.latent_tap if latent is not None else None
        model, family = trainer.model, trainer.family
        run = lambda x: family.tap_pass(model, x)  # noqa: E731
        acts, points = capture_layers(model, self.names, probe, self.reduction, also, run)
        head = head_of(model) if family.collapse_layer(trainer.cfg) else None
        self.recorder.add(trainer.step, epoch, acts, head)
        if latent is not None:
            latent.add(trainer.step, epoch, points)
        self.last_step = trainer.step

    def fit_start(self, trainer) -> None:
        if trainer.fresh:
            mb = self.per_snapshot / 1e6
            warn(
                trainer.console,
                f"recording {len(self.names)} layers ({', '.join(self.names)}): {mb:.1f} MB a "
                f"snapshot, about {mb * self.count:.0f} MB over {self.count} snapshots",
            )
        # the latent recording (which runs first) takes the snapshots when it is joined
        if trainer.fresh and trainer.recording.joined is not self:
            self.snapshot(trainer)

    def step_end(self, trainer, values) -> None:
        if trainer.step % self.every == 0 and trainer.recording.joined is not self:
            self.snapshot(trainer)

    def epoch_end(self, trainer, line, done) -> None:
        joined = trainer.recording.joined is self
        if done and self.last_step != trainer.step and not joined:
            self.snapshot(trainer)

    def before_flush(self, trainer, final) -> None:
        self.recorder.flush()

    def state_dict(self) -> dict:
        return {"layer_snapshot_step": self.last_step, "layer_chunks": self.recorder.chunk_count()}

    def load_state_dict(self, ck) -> None:
        self.last_step = int(ck["layer_snapshot_step"])
        self.recorder.truncate(int(ck["layer_chunks"]))

    def restart(self) -> None:
        """Drop every snapshot (a run started over)."""
        self.recorder.truncate(0)


class PermutedTasks(Observer):
    """Permuted-MNIST tasks (permute_every epochs each): the pixel order each task shows
    the images in, the tasks file at the start, a task line at each task's end. With
    permute_every 0 it is the identity and observes nothing."""

    def __init__(self, cfg, device: torch.device):
        self.seed, self.device = cfg.seed, device
        self.every = families.of(cfg).tasks_every(cfg)  # epochs per task
        self.epochs = cfg.epochs
        self._orders: dict[int, torch.Tensor] = {}

    def order(self, task: int) -> torch.Tensor | None:
        """Task `task`'s pixel permutation on the device (None: the images as they are)."""
        if not task:
            return None
        if task not in self._orders:
            perm = torch.from_numpy(tasks.permutation(self.seed, task))
            self._orders = {task: perm.to(self.device)}  # one task at a time
        return self._orders[task]

    def images(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """x as task `task` shows it (its pixels permuted)."""
        order = self.order(task)
        return x if order is None else x[:, order]

    def fit_start(self, trainer) -> None:
        # (again on a resume: --epochs may have added tasks)
        tasks.write(trainer.run.tasks_file, self.seed, self.every, self.epochs)

    def epoch_end(self, trainer, line, done) -> None:
        if trainer.epoch % self.every == 0 or done:
            # the end of a task: its accuracy, on its own pixel order
            keys = ("train_acc", "val_acc", "test_acc", "train_loss", "test_loss")
            trainer.log.append(
                kind=metrics.TASK,
                task=line["task"],
                epoch=trainer.epoch,
                step=trainer.step,
                **{k: line[k] for k in keys if k in line},
            )


class UnitHealth(Observer):
    """The unit health of the hidden layers on the probe images, in every epoch line."""

    def epoch_line(self, trainer, line) -> None:
        task = tasks.training(trainer.epoch - 1, trainer.tasks.every)  # the epoch's task
        probe = trainer.tasks.images(trainer.probe_x, task)
        line.update(health.measure(trainer.model, trainer.cfg.activation, probe))


class Plasticity(Observer):
    """Continual backprop (cbp_rate > 0): after each update, replace the hidden units of
    lowest utility; the count replaced in every epoch line."""

    def __init__(self, trainer):
        # its own generator: replacements never move the RNGs training draws from
        self.cbp = ContinualBackprop(trainer.model, trainer.cfg, seed=trainer.cfg.seed + 2)
        trainer.model.keep_hidden = True

    def step_end(self, trainer, values) -> None:
        self.cbp.step(trainer.model.hidden, trainer.opt)

    def epoch_line(self, trainer, line) -> None:
        line["cbp_replaced"] = self.cbp.replaced

    def state_dict(self) -> dict:
        return {"cbp": self.cbp.state_dict()}

    def load_state_dict(self, ck) -> None:
        self.cbp.load_state_dict(ck["cbp"])


class PruningReports(Observer):
    """A search's point: its metric reported where a report is due (pruning.Reports); a
    pruned run stops at a checkpoint, marked pruned."""

    def __init__(self, reports: pruning.Reports):
        self.reports = reports

    def ready(self, trainer) -> None:
        if trainer.step and trainer.epoch < trainer.cfg.epochs:
            # resumed where a report was due: a kill may have come before it
            self.report(trainer, None)

    def step_end(self, trainer, values) -> None:
        if not trainer.signals.received:  # a stop asked for comes first: the loop stops
            self.report(trainer, None)

    def epoch_saved(self, trainer, line, done) -> None:
        if not done:
            self.report(trainer, line)

    def report(self, trainer, line: dict | None) -> None:
        """If a report is due at this position, the metric to the pruner; stop if pruned."""
        label = self.reports.label(
            trainer.epoch,
            trainer.batch,
            trainer.cfg.batch_size,
            trainer.n_train,
            trainer.steps_per_epoch,
        )
        if label is None:
            return
        if trainer.batch == 0 and line is None:  # an epoch's end, resumed: its line is logged
            line = metrics.last_epoch(trainer.run.metrics)
        value = self.measure(trainer, self.reports.metric, line)
        prune = self.reports.decide(label, value, lambda: bool(trainer.signals.received))
        if trainer.signals.received:
            trainer.interrupted()
        if prune:
            self.pruned(trainer, value)

    @staticmethod
    def measure(trainer, metric: str, line: dict | None) -> float:
        """The metric now: from the epoch line when it has it, else measured (an evaluation
        of the split, the epoch's running mean of a training term, or the latent metrics
        of the probe set encoded in one no-grad pass)."""
        if line and metric in line:
            return float(line[metric])
        split, _, term = metric.partition("_")
        if split in ("val", "test"):
            x, y, _ = trainer.splits.split(split)
            x = trainer.tasks.images(x, tasks.training(trainer.epoch, trainer.tasks.every))
            return float(trainer.evaluate(x, y)[term])
        if split == "train":
            return float(trainer.epoch_sums[term] / trainer.epoch_sums["_n"])
        return float(pruning.latent_now(trainer)[metric])

    def pruned(self, trainer, value: float) -> None:
        if trainer.batch:  # an epoch's end has just been checkpointed
            trainer.checkpoint()
        metric = self.reports.metric
        trainer.run.end(
            Status.PRUNED, pruned={"step": trainer.step, "metric": metric, "value": value}
        )
        raise pruning.Pruned(
            f"run {trainer.run.id} pruned at step {trainer.step} (epoch {trainer.epoch}, "
            f"{metric} {value:.6g}); its checkpoint and recording are kept"
        )


class LiveTensorBoard(Observer):
    """--tensorboard: what each checkpoint commits or a publish writes (metric lines,
    latent metrics of the snapshots) written to the run's event files (a resume purges
    what followed its checkpoint)."""

    def __init__(self):
        self.board: tensorboard.LiveBoard | None = None

    def fit_start(self, trainer) -> None:
        purge = trainer.step + 1 if trainer.step else None  # a resume rewrites what follows
        self.board = tensorboard.LiveBoard(trainer, purge_step=purge)

    def before_flush(self, trainer, final) -> None:
        if self.board is not None:
            self.board.write(trainer.log.pending, trainer.recording.recorder.pending, final)

    def fit_end(self, trainer) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None


class Publishing(Observer):
    """Every LIVE_SECONDS of training, the metric lines and snapshots queued so far are
    written as a checkpoint writes them, without the checkpoint: `nnlab serve` (and any
    reader) sees a training as it goes. A resume still starts from its checkpoint: its
    chunk count and metrics size drop what was published after it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last = time.monotonic()

    def step_end(self, trainer, values) -> None:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            trainer.publish()
            self.last = time.monotonic()  # the writing itself is not counted as training


def observers_of(trainer, reports: pruning.Reports | None) -> list[Observer]:
    """A run's observers, in the order the loop calls them: health and continual backprop
    first (the epoch line's keys in that order; units replaced before a snapshot sees the
    weights), then tasks, the recording, the pruning reports, TensorBoard (it writes what
    the recording has drained), and the publishing of what they all queued."""
    cfg = trainer.cfg
    out: list[Observer] = [UnitHealth()]
    if trainer.family.replaces_units(cfg):
        out.append(Plasticity(trainer))
    if trainer.tasks.every:
        out.append(trainer.tasks)
    out.append(trainer.recording)
    if trainer.family.recorded_layers(cfg):
        layered = LayerRecording(trainer)
        # one pass for both recordings, where the latent's arithmetic is the layers' (a
        # bfloat16 latent recording keeps its own pass, beside training)
        tap = trainer.family.latent_tap(cfg)
        if cfg.record_precision == "float32" and tap is not None:
            trainer.recording.joined, layered.latent_tap = layered, tap
        out.append(layered)
    if reports is not None:
        out.append(PruningReports(reports))
    if cfg.tensorboard:
        out.append(LiveTensorBoard())
    if testhooks.publishing():
        out.append(Publishing(LIVE_SECONDS))  # last: what every other observer queued goes too
    return out
