"""The training loop: epochs of steps over in-memory tensors, with evaluation,
checkpoints and progress; what happens around the steps (the latent recording, continual
backprop, permuted tasks, unit health, pruning reports, TensorBoard) are observers
(nnlab.training.observers) that the loop calls at fixed moments.

Everything that decides what happens next (weights, optimizer, step, epoch, position in the
epoch's permutation, every RNG state, running sums, each observer's state) is in the
checkpoint, so a resumed run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import math

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
from nnlab.training import data, pruning
from nnlab.training.models import build_model, loss_terms, make_optimizer
from nnlab.training.observers import PermutedTasks, Recording, observers_of
from nnlab.training.snapshots import choose_probe

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


def learning_rate(cfg: Config, epoch: int) -> float:
    """The learning rate of epoch `epoch` (0 first): lr times lr_decay per epoch done, and
    divided by 10 at each of lr_milestones reached."""
    passed = sum(1 for m in cfg.lr_milestones if epoch >= m)
    return cfg.lr * cfg.lr_decay**epoch * 0.1**passed


@torch.no_grad()
def evaluate(model, cfg: Config, x: torch.Tensor, y: torch.Tensor, chunk: int = 0) -> dict:
    """Mean loss and accuracy (classifier) or reconstruction, KL, loss and ELBO (VAE) on x,
    in chunks of `chunk` images (default 10,000; 1,000 for convolutions, whose feature maps
    of 10,000 images would take gigabytes)."""
    chunk = chunk or (1000 if cfg.arch == "conv" else 10000)
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
        self.bf16 = cfg.precision == "bfloat16"
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.n_train = len(splits.train_x)
        self.steps_per_epoch = math.ceil(self.n_train / cfg.batch_size)
        if smoke:
            self.steps_per_epoch = min(self.steps_per_epoch, testhooks.SMOKE_STEPS)
        px, py, _ = splits.split(cfg.probe_split)
        self.probe_x, self.probe_labels, self.probe_split_index = choose_probe(cfg, px, py)
        self.family = families.of(cfg)
        self.log = metrics.MetricsLog(run.metrics)
        # loop position and running sums, all saved in checkpoints
        self.step = 0
        self.epoch = 0
        self.batch = 0
        self.perm: torch.Tensor | None = None
        self.window: dict[str, float] = {}
        self.epoch_sums: dict[str, float] = {}
        self.fresh = False  # while fit() runs: a new run, not yet checkpointed
        self.signals = StopSignals()  # entered while fit() runs
        self.nan_at_step = testhooks.nan_at_step()  # divergence tests
        self.tasks = PermutedTasks(cfg, device)  # the pixel order of each task, if permuted
        self.recording = Recording(self)
        self.observers = observers_of(self, reports)

    @property
    def recorder(self) -> record.Recorder:
        """The latent recording's writer."""
        return self.recording.recorder

    def _each(self, hook: str, *args) -> None:
        """Call one hook of every observer, in order."""
        for observer in self.observers:
            getattr(observer, hook)(self, *args)

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
            "metrics_bytes": self.log.size(),
            **{k: v for o in self.observers for k, v in o.state_dict().items()},
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
            metrics_bytes = int(ck["metrics_bytes"])
            for observer in self.observers:
                observer.load_state_dict(ck)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise RunError(f"{where}: does not fit this run ({first})") from None
        self.log.truncate(metrics_bytes)

    def restart(self) -> None:
        """Start over in the same run (killed before its first checkpoint)."""
        for observer in self.observers:
            observer.restart()
        self.log.remove()
        self.run.checkpoints.mkdir(exist_ok=True)

    # ------------------------------------------------------------ pieces

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """The family's evaluation numbers of the model on x, y (see evaluate)."""
        return evaluate(self.model, self.cfg, x, y)

    def publish(self) -> None:
        """Write the queued metric lines and snapshots, without a checkpoint (a reader sees
        them at once; a resume from the last checkpoint drops them)."""
        self._each("before_flush", False)
        self.log.flush()
        self.recording.flush()

    def checkpoint(self, *, final: bool = False, keep_epoch: bool = False) -> None:
        """Flush metrics and recording, then write latest.pt (and final/epoch copies)."""
        self._each("before_flush", final)
        self.log.flush()
        self.recording.flush()
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
        return {k: float(v.detach()) for k, v in values.items()}

    # ------------------------------------------------------------ loop

    def fit(self) -> dict:
        """Train until cfg.epochs; return the last epoch's metrics."""
        total = self.cfg.epochs * self.steps_per_epoch
        self.fresh = self.step == 0 and not self.run.checkpoint_file(folders.LATEST).exists()
        last: dict = {}
        try:
            with self.signals, TrainProgress(self.console, total, self.step) as bar:
                self._each("fit_start")
                if self.fresh:
                    self.checkpoint()  # a run can always resume, even if killed at once
                    self.fresh = False
                self.write_owed_copies()
                self._each("ready")
                while self.epoch < self.cfg.epochs:
                    self.train_epoch(bar)
                    last = self.end_epoch(bar)
        finally:
            self._each("fit_end")
        # resumed a finished run without new epochs: its last epoch is in the log
        return last or metrics.last_epoch(self.run.metrics)

    def train_epoch(self, bar: TrainProgress) -> None:
        """The steps of the current epoch from where it stands (mid-epoch after a resume)."""
        cfg = self.cfg
        if self.perm is None:
            self.perm = torch.randperm(self.n_train, generator=self.data_gen)
        perm = self.perm.to(self.device)  # once per epoch, not per step
        for group in self.opt.param_groups:  # StepLR(step 1, gamma lr_decay), from the epoch
            group["lr"] = learning_rate(cfg, self.epoch)
        order = self.tasks.order(tasks.training(self.epoch, self.tasks.every))
        for b in range(self.batch, self.steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            values = self.train_step(idx, order)
            if not math.isfinite(values["loss"]):
                self._diverged(values["loss"])
            self.step += 1
            self.batch = b + 1
            self.accumulate(values, len(idx))
            self._each("step_end", values)
            bar.advance(self.step, values["loss"])
            if self.signals.received:
                self.interrupted()
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
                kind=metrics.STEP,
                step=self.step,
                epoch=round(self.epoch + self.batch / self.steps_per_epoch, 6),
                **{k2: v / k for k2, v in self.window.items()},
            )
            self.window = {}

    def end_epoch(self, bar: TrainProgress) -> dict:
        """Evaluate, log the epoch line, checkpoint; the line."""
        cfg = self.cfg
        self.epoch += 1
        self.batch = 0
        self.perm = None
        line = self._epoch_line()
        self.log.append(**line)
        done = self.epoch >= cfg.epochs
        self._each("epoch_end", line, done)
        keep = bool(cfg.checkpoint_every) and self.epoch % cfg.checkpoint_every == 0
        self.checkpoint(final=done, keep_epoch=keep)
        bar.epoch(self.epoch, cfg.epochs, self.family.epoch_headline(line))
        self._each("epoch_saved", line, done)
        return line

    def _epoch_line(self) -> dict:
        """The epoch's numbers: training means, the evaluation of each split (as the
        epoch's task shows it), then what the observers add."""
        n = self.epoch_sums.pop("_n", 0.0) or 1.0
        task = tasks.training(self.epoch - 1, self.tasks.every)  # the task this epoch trained
        line = {"kind": metrics.EPOCH, "epoch": self.epoch, "step": self.step}
        if self.tasks.every:
            line["task"] = task
        line.update({f"train_{k}": v / n for k, v in self.epoch_sums.items()})
        self.epoch_sums = {}
        for name in ("val", "test"):
            x, y, _ = self.splits.split(name)
            if name == "test" or len(x):  # no validation split with val_fraction=0
                terms = self.evaluate(self.tasks.images(x, task), y)
                line.update({f"{name}_{k}": v for k, v in terms.items()})
        self._each("epoch_line", line)
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

    def interrupted(self) -> None:
        """Stop at a checkpoint, marked interrupted (Ctrl-C, SIGTERM)."""
        self.checkpoint()
        self.run.end(Status.INTERRUPTED)
        raise TrainingStopped(
            f"interrupted ({self.signals.received}) at step {self.step}; checkpoint saved. "
            f"Resume with: nnlab train --resume {self.run.id}",
            exit_code=130,
        )
