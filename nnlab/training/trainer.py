"""The training loop: epochs of steps over in-memory tensors, with evaluation, latent
snapshots, checkpoints and progress.

Everything that decides what happens next (weights, optimizer, step, epoch, position in the
epoch's permutation, every RNG state, running sums) is in the checkpoint, so a resumed run
continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import math
import os

import torch
from rich.console import Console

from nnlab import families
from nnlab.config import tasks
from nnlab.families.family import Config
from nnlab.helpers import files, testhooks
from nnlab.helpers.console import stderr_console, warn
from nnlab.helpers.errors import NnlabError, RunError, TrainingStopped
from nnlab.helpers.progress import StopSignals, TrainProgress
from nnlab.store import folders, metrics, record, schema
from nnlab.store.meta import Status
from nnlab.training import data, health, pruning, tensorboard
from nnlab.training.cbp import ContinualBackprop
from nnlab.training.models import build_model, loss_terms, make_optimizer
from nnlab.training.snapshots import SnapshotWorker, choose_probe, encode_probe

# The VAE's evaluation samples use their own generator: evaluation never moves training RNG.
EVAL_SEED = 1234


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else CPU; anything else is checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NnlabError(f"--device={name}: CUDA is not available here (use --device=cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise NnlabError("--device=mps: MPS is not available here (use --device=cpu)")
    return torch.device(name)


def setup(cfg: Config) -> torch.device:
    """The run's device, with torch's determinism set as the config asks."""
    device = resolve_device(cfg.device)
    # Deterministic kernels make resume bit-exact; on CPU they cost nothing measurable here.
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    return device


def load_splits(cfg: Config, device, console: Console) -> data.Splits:
    """The run's dataset as tensors on `device` (warnings, e.g. a fallback, on the console)."""
    return data.load_for(cfg, device, warn=lambda m: warn(console, m))


@torch.no_grad()
def evaluate(model, cfg: Config, x: torch.Tensor, y: torch.Tensor, chunk: int = 0) -> dict:
    """Mean loss and accuracy (classifier) or reconstruction, KL, loss and ELBO (VAE) on x,
    in chunks of `chunk` images (default 10,000; 1,000 for convolutions, whose feature maps
    of 10,000 images would take gigabytes)."""
    chunk = chunk or (1000 if getattr(cfg, "arch", "mlp") == "conv" else 10000)
    was = model.training
    model.eval()
    n = len(x)
    sums: dict[str, float] = {}
    gen = torch.Generator(device=x.device).manual_seed(EVAL_SEED)
    for s in range(0, n, chunk):
        xb, yb = x[s : s + chunk], y[s : s + chunk]
        for k, v in loss_terms(model, cfg, xb, yb, gen).items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    model.train(was)
    return families.of(cfg).evaluation(cfg, {k: v / max(n, 1) for k, v in sums.items()})


class Trainer:
    """Runs (or continues) one run's training loop."""

    def __init__(
        self,
        run: folders.Run,
        cfg: Config,
        splits: data.Splits,
        device: torch.device,
        console: Console | None = None,
        reports: pruning.Reports | None = None,
    ):
        smoke = testhooks.smoke()  # the documentation test's short trainings
        if smoke:
            cfg = testhooks.smoke_config(cfg)
        self.run, self.cfg, self.splits, self.device = run, cfg, splits, device
        self.console = console or stderr_console()
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg).to(device)
        self.opt = make_optimizer(cfg, self.model.parameters())
        # bfloat16 autocast of the forward pass; weights, gradients and the optimiser's
        # state stay float32, and evaluation runs in float32 (the numbers logged are exact)
        self.bf16 = getattr(cfg, "precision", "float32") == "bfloat16"
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.n_train = len(splits.train_x)
        self.steps_per_epoch = math.ceil(self.n_train / cfg.batch_size)
        if smoke:
            self.steps_per_epoch = min(self.steps_per_epoch, testhooks.SMOKE_STEPS)
        px, py, _ = splits.split(cfg.probe_split)
        self.probe_x, self.probe_labels, self.probe_split_index = choose_probe(cfg, px, py)
        self.recorder = record.Recorder(run.latents, families.of(cfg).arrays, cfg.record_dtype)
        self.every = getattr(cfg, "permute_every", 0)  # epochs per task (classifier only)
        self._pixel_orders: dict[int, torch.Tensor] = {}
        self.cbp: ContinualBackprop | None = None
        if getattr(cfg, "cbp_rate", 0):
            # its own generator: replacements never move the RNGs training draws from
            self.cbp = ContinualBackprop(self.model, cfg, seed=cfg.seed + 2)
            self.model.keep_hidden = True
        self.log = metrics.MetricsLog(run.metrics)
        # loop position and running sums, all saved in checkpoints
        self.step = 0
        self.epoch = 0
        self.batch = 0
        self.perm: torch.Tensor | None = None
        self.window: dict[str, float] = {}
        self.epoch_sums: dict[str, float] = {}
        self.last_snapshot_step = -1
        self.signals = StopSignals()  # entered while fit() runs
        self.worker: SnapshotWorker | None = None  # exists only while fit() runs
        self.board: tensorboard.LiveBoard | None = None  # TensorBoard, while fit() runs with it on
        self.nan_at_step = testhooks.nan_at_step()  # divergence tests
        self.reports = reports  # a search's point: its metric reported to the pruner

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Everything needed to continue exactly from here (tensors and plain values)."""
        return {
            "format": folders.FORMAT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "perm": self.perm,
            "data_rng": self.data_gen.get_state(),
            "noise_rng": self.noise_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "window": dict(self.window),
            "epoch_sums": dict(self.epoch_sums),
            "last_snapshot_step": self.last_snapshot_step,
            "metrics_bytes": self.log.size(),
            "latent_chunks": self.recorder.chunk_count(),
            **({"cbp": self.cbp.state_dict()} if self.cbp is not None else {}),
        }

    def load_state_dict(self, ck: dict) -> None:
        """Restore a checkpoint and cut metrics and recording back to what it had seen."""
        where = self.run.checkpoint_file(folders.LATEST)
        schema.check_positions(ck, where, self.n_train, self.steps_per_epoch)
        if int(ck["latent_chunks"]) > self.recorder.chunk_count():
            raise RunError(f"{where}: does not fit this run (its latent chunks are missing)")
        try:
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            self.step, self.epoch, self.batch = int(ck["step"]), int(ck["epoch"]), int(ck["batch"])
            self.perm = ck["perm"]
            self.data_gen.set_state(ck["data_rng"])
            self.noise_gen.set_state(ck["noise_rng"])
            torch.set_rng_state(ck["torch_rng"])
            self.window = dict(ck["window"])
            self.epoch_sums = dict(ck["epoch_sums"])
            self.last_snapshot_step = int(ck["last_snapshot_step"])
            metrics_bytes, chunks = int(ck["metrics_bytes"]), int(ck["latent_chunks"])
            if self.cbp is not None:
                self.cbp.load_state_dict(ck["cbp"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise RunError(f"{where}: does not fit this run ({first})") from None
        self.log.truncate(metrics_bytes)
        self.recorder.truncate(chunks)

    def restart(self) -> None:
        """Start over in the same run (killed before its first checkpoint)."""
        self.recorder.truncate(0)
        self.log.remove()
        self.run.checkpoints.mkdir(exist_ok=True)

    # ------------------------------------------------------------ pieces

    def pixel_order(self, task: int) -> torch.Tensor | None:
        """Task `task`'s pixel permutation on the device (None: the images as they are)."""
        if not task:
            return None
        if task not in self._pixel_orders:
            perm = torch.from_numpy(tasks.permutation(self.cfg.seed, task))
            self._pixel_orders = {task: perm.to(self.device)}  # one task at a time
        return self._pixel_orders[task]

    def task_images(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """x as task `task` shows it (its pixels permuted)."""
        order = self.pixel_order(task)
        return x if order is None else x[:, order]

    def snapshot(self) -> None:
        """Encode the probe set (one no-grad pass) and keep it for the recording."""
        epoch = self.epoch + self.batch / self.steps_per_epoch
        if self.worker is not None:
            params = [p.detach().clone() for p in self.model.parameters()]
            self.worker.submit(self.step, epoch, params)
        else:
            probe = self.task_images(self.probe_x, tasks.at(epoch, self.every))
            a, b = encode_probe(self.model, self.cfg, probe)
            self.recorder.add(self.step, epoch, a, b)
        self.last_snapshot_step = self.step

    def checkpoint(self, *, final: bool = False, keep_epoch: bool = False) -> None:
        """Flush metrics and recording, then write latest.pt (and final/epoch copies)."""
        if self.worker is not None:
            self.worker.drain()
        if self.board is not None:  # what this checkpoint commits, and nothing after it
            self.board.write(self.log.pending, self.recorder.pending, final)
        self.log.flush()
        self.recorder.flush()
        state = self.state_dict()
        folder = self.run.checkpoints
        files.save_checkpoint(self.run.checkpoint_file(folders.LATEST), state)
        if keep_epoch:
            files.save_checkpoint(folder / f"epoch-{self.epoch:04d}.pt", state)
        if final:
            files.save_checkpoint(self.run.checkpoint_file(folders.FINAL), state)
        self.run.update_meta(
            steps_done=self.step,
            epochs_done=self.epoch,
            resumable_step=self.step,
            updated=folders.now_iso(),
            metrics_bytes=state["metrics_bytes"],
            metrics_sha256=self.log.digest(state["metrics_bytes"]),
            snapshots=self.recorder.saved(),
        )

    def write_owed_copies(self) -> None:
        """At an epoch's end, write the copies a kill may have cut short: latest.pt is
        written first, then epoch-N.pt and final.pt, so a resume from there owes them."""
        if self.batch or not self.epoch:
            return
        cfg, folder = self.cfg, self.run.checkpoints
        final = self.epoch >= cfg.epochs and not self.run.checkpoint_file(folders.FINAL).exists()
        keep = (
            bool(cfg.checkpoint_every)
            and self.epoch % cfg.checkpoint_every == 0
            and not (folder / f"epoch-{self.epoch:04d}.pt").exists()
        )
        if final or keep:
            self.checkpoint(final=final, keep_epoch=keep)

    def train_step(self, idx: torch.Tensor, order: torch.Tensor | None = None) -> dict:
        """One optimisation step on the rows `idx` of the train split (pixels in `order`
        for a permuted task); returns its losses."""
        x, y = self.splits.train_x[idx], self.splits.train_y[idx]
        if order is not None:
            x = x[:, order]
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            values = loss_terms(self.model, self.cfg, x, y, self.noise_gen)
        loss = values["loss"]
        if self.nan_at_step == self.step + 1:
            loss = values["loss"] = loss * float("nan")
        value = loss.item()  # the one read of the loss per step (a sync point on GPUs)
        if not math.isfinite(value):
            return {"loss": value}  # the caller stops before the weights are touched
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.cbp is not None:
            self.cbp.step(self.model.hidden, self.opt)
        return {k: float(v.detach()) for k, v in values.items()}

    # ------------------------------------------------------------ loop

    def fit(self) -> dict:
        """Train until cfg.epochs; return the last epoch's metrics."""
        # The worker encodes one fixed probe tensor; a permuted task's probe changes.
        if not self.every and SnapshotWorker.wanted(self.cfg, self.device, os.cpu_count() or 1):
            self.worker = SnapshotWorker(self.cfg, self.probe_x, self.recorder)
        if self.cfg.tensorboard:
            self.board = tensorboard.LiveBoard(
                self, purge_step=self.step + 1 if self.step else None
            )
        total = self.cfg.epochs * self.steps_per_epoch
        last: dict = {}
        try:
            with self.signals, TrainProgress(self.console, total, self.step) as bar:
                if self.every:  # (again on a resume: --epochs may have added tasks)
                    tasks.write(self.run.tasks_file, self.cfg.seed, self.every, self.cfg.epochs)
                if self.step == 0 and not self.run.checkpoint_file(folders.LATEST).exists():
                    if self.cfg.snapshot_every:
                        self.snapshot()
                    self.checkpoint()  # a run can always resume, even if killed at once
                self.write_owed_copies()
                if self.step and self.epoch < self.cfg.epochs:
                    # resumed where a report was due: a kill may have come before it
                    self.report(None)
                while self.epoch < self.cfg.epochs:
                    self.train_epoch(bar)
                    last = self.end_epoch(bar)
        finally:
            if self.worker is not None:
                self.worker.close()
                self.worker = None
            if self.board is not None:
                self.board.close()
                self.board = None
        # resumed a finished run without new epochs: its last epoch is in the log
        return last or metrics.last_epoch(self.run.metrics)

    def train_epoch(self, bar: TrainProgress) -> None:
        """The steps of the current epoch from where it stands (mid-epoch after a resume)."""
        cfg = self.cfg
        if self.perm is None:
            self.perm = torch.randperm(self.n_train, generator=self.data_gen)
        perm = self.perm.to(self.device)  # once per epoch, not per step
        for group in self.opt.param_groups:  # StepLR(step 1, gamma lr_decay), from the epoch
            group["lr"] = cfg.lr * cfg.lr_decay**self.epoch
        order = self.pixel_order(tasks.training(self.epoch, self.every))
        for b in range(self.batch, self.steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            values = self.train_step(idx, order)
            if not math.isfinite(values["loss"]):
                self._diverged(values["loss"])
            self.step += 1
            self.batch = b + 1
            self.accumulate(values, len(idx))
            if cfg.snapshot_every and self.step % cfg.snapshot_every == 0:
                self.snapshot()
            bar.advance(self.step, values["loss"])
            if self.signals.received:
                self._interrupted()
            if self.reports is not None:
                self.report(None)
            ces = cfg.checkpoint_every_steps
            if ces and self.step % ces == 0 and self.batch < self.steps_per_epoch:
                self.checkpoint()

    def accumulate(self, values: dict[str, float], n: int) -> None:
        """Add a step's losses to the log window and the epoch's sums; log a full window."""
        for k, v in values.items():
            self.window[k] = self.window.get(k, 0.0) + v
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v * n
        self.window["_n"] = self.window.get("_n", 0.0) + 1
        self.epoch_sums["_n"] = self.epoch_sums.get("_n", 0.0) + n
        if self.step % self.cfg.log_every == 0:
            k = self.window.pop("_n")
            self.log.append(
                kind="step",
                step=self.step,
                epoch=round(self.epoch + self.batch / self.steps_per_epoch, 6),
                **{k2: v / k for k2, v in self.window.items()},
            )
            self.window = {}

    def end_epoch(self, bar: TrainProgress) -> dict:
        """Evaluate, log the epoch line, snapshot the final state, checkpoint; the line."""
        cfg = self.cfg
        self.epoch += 1
        self.batch = 0
        self.perm = None
        line = self._epoch_line()
        self.log.append(**line)
        done = self.epoch >= cfg.epochs
        if self.every and (self.epoch % self.every == 0 or done):
            # the end of a task: its accuracy, on its own pixel order
            keys = ("train_acc", "val_acc", "test_acc", "train_loss", "test_loss")
            self.log.append(
                kind="task",
                task=line["task"],
                epoch=self.epoch,
                step=self.step,
                **{k: line[k] for k in keys if k in line},
            )
        if done and cfg.snapshot_every and self.last_snapshot_step != self.step:
            self.snapshot()  # the final state, so the animation ends where training did
        keep = bool(cfg.checkpoint_every) and self.epoch % cfg.checkpoint_every == 0
        self.checkpoint(final=done, keep_epoch=keep)
        bar.epoch(self.epoch, cfg.epochs, families.of(cfg).epoch_headline(line))
        if not done:
            self.report(line)
        return line

    def report(self, line: dict | None) -> None:
        """Where a report is due (pruning.Reports.label), the metric to the search's pruner;
        a pruned run stops here at a checkpoint, marked pruned."""
        if self.reports is None:
            return
        label = self.reports.label(
            self.epoch, self.batch, self.cfg.batch_size, self.n_train, self.steps_per_epoch
        )
        if label is None:
            return
        if self.batch == 0 and line is None:  # an epoch's end, resumed: its line is logged
            line = metrics.last_epoch(self.run.metrics)
        value = self.measure(self.reports.metric, line)
        prune = self.reports.decide(label, value, lambda: bool(self.signals.received))
        if self.signals.received:
            self._interrupted()
        if prune:
            self._pruned(value)

    def _epoch_line(self) -> dict:
        n = self.epoch_sums.pop("_n", 0.0) or 1.0
        task = tasks.training(self.epoch - 1, self.every)  # the task this epoch trained
        line = {"kind": "epoch", "epoch": self.epoch, "step": self.step}
        if self.every:
            line["task"] = task
        line.update({f"train_{k}": v / n for k, v in self.epoch_sums.items()})
        self.epoch_sums = {}
        for name in ("val", "test"):
            x, y, _ = self.splits.split(name)
            if name == "test" or len(x):  # no validation split with val_fraction=0
                terms = evaluate(self.model, self.cfg, self.task_images(x, task), y)
                line.update({f"{name}_{k}": v for k, v in terms.items()})
        # Unit health of the hidden layers on the probe images (as this task shows them).
        probe = self.task_images(self.probe_x, task)
        line.update(health.measure(self.model, self.cfg.activation, probe))
        if self.cbp is not None:
            line["cbp_replaced"] = self.cbp.replaced
        return line

    def _diverged(self, loss: float) -> None:
        self.log.append(kind=metrics.DIVERGED, step=self.step + 1, loss=str(loss))
        self.log.flush()
        self.run.end(Status.DIVERGED)
        raise TrainingStopped(
            f"run {self.run.id} diverged: loss {loss} at step {self.step + 1}; kept the last "
            f"finite checkpoint (step {self.run.resumable_step()}). Try a smaller --lr.",
            exit_code=1,
        )

    def measure(self, metric: str, line: dict | None) -> float:
        """A search's metric now: from the epoch line when it has it, else measured (an
        evaluation of the split, the epoch's running mean of a training term, or the latent
        metrics of the probe set encoded in one no-grad pass)."""
        if line and metric in line:
            return float(line[metric])
        split, _, term = metric.partition("_")
        if split in ("val", "test"):
            x, y, _ = self.splits.split(split)
            x = self.task_images(x, tasks.training(self.epoch, self.every))
            return float(evaluate(self.model, self.cfg, x, y)[term])
        if split == "train":
            return float(self.epoch_sums[term] / self.epoch_sums["_n"])
        return float(pruning.latent_now(self)[metric])

    def _pruned(self, value: float) -> None:
        if self.batch:  # an epoch's end has just been checkpointed
            self.checkpoint()
        self.run.end(
            Status.PRUNED,
            pruned={"step": self.step, "metric": self.reports.metric, "value": value},
        )
        raise pruning.Pruned(
            f"run {self.run.id} pruned at step {self.step} (epoch {self.epoch}, "
            f"{self.reports.metric} {value:.6g}); its checkpoint and recording are kept"
        )

    def _interrupted(self) -> None:
        self.checkpoint()
        self.run.end(Status.INTERRUPTED)
        raise TrainingStopped(
            f"interrupted ({self.signals.received}) at step {self.step}; checkpoint saved. "
            f"Resume with: nnlab train --resume {self.run.id}",
            exit_code=130,
        )
