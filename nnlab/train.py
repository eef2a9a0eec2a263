"""Training: epochs of steps over in-memory tensors, with evaluation, latent recording,
checkpoints, progress, and exact resume.

Everything that decides what happens next (weights, optimizer, step, epoch, position in the
epoch's permutation, every RNG state, running sums) is in the checkpoint, so a resumed run
continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time

import torch
from rich.console import Console

from nnlab import __version__, data, record, store
from nnlab.config import Config, VAEConfig, to_yaml
from nnlab.errors import NnlabError, RunError, TrainingStopped
from nnlab.models import build_model, classifier_loss, encode_latents, parameter_table, vae_loss

EVAL_SEED = (
    1234  # the VAE's evaluation samples use their own generator: eval never moves training RNG
)
FAULT_NAN_ENV = "NNLAB_FAULT_NAN_AT_STEP"  # test hook: make the loss NaN at this step


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else CPU; anything else is checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NnlabError(f"--device={name}: CUDA is not available here (use --device=cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise NnlabError("--device=mps: MPS is not available here (use --device=cpu)")
    return torch.device(name)


def make_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    """The optimizer named by cfg (fused Adam/AdamW where torch supports it)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        # Fused kernels cut a small model's step time by about a fifth on CPU.
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def stderr_console() -> Console:
    """The console for progress and messages: stderr, so stdout carries only results."""
    return Console(stderr=True)


@torch.no_grad()
def evaluate(model, cfg: Config, x: torch.Tensor, y: torch.Tensor, chunk: int = 10000) -> dict:
    """Mean loss and accuracy (classifier) or reconstruction, KL and ELBO (VAE) on x."""
    was = model.training
    model.eval()
    n = len(x)
    sums: dict[str, float] = {}
    gen = torch.Generator(device=x.device).manual_seed(EVAL_SEED)
    for s in range(0, n, chunk):
        xb, yb = x[s : s + chunk], y[s : s + chunk]
        if isinstance(cfg, VAEConfig):
            logits, mu, std = model(xb, gen)
            terms = vae_loss(xb, logits, mu, std, cfg.beta, cfg.recon)
            parts = {cfg.recon: terms["recon"], "kl": terms["kl"], "loss": terms["loss"]}
        else:
            out = model(xb)
            parts = {
                "loss": classifier_loss(out, yb, cfg.loss),
                "acc": (out.argmax(1) == yb).float().mean(),
            }
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    model.train(was)
    out = {k: v / max(n, 1) for k, v in sums.items()}
    if isinstance(cfg, VAEConfig):
        out["elbo"] = -(out[cfg.recon] + out["kl"])  # the true ELBO (beta = 1), per image
    return out


def encode_probe(model, cfg: Config, probe_x: torch.Tensor):
    """The recorded latents of the probe set as float32 (bf16 arithmetic if configured)."""
    bf16 = cfg.record_precision == "bfloat16"
    with torch.autocast(probe_x.device.type, dtype=torch.bfloat16, enabled=bf16):
        a, b = encode_latents(model, cfg, probe_x)
    return a.float(), (None if b is None else b.float())


class SnapshotWorker:
    """Encodes snapshots in a background thread from copies of the weights at their step,
    so the recording is the same as a synchronous one, only computed beside training."""

    def __init__(self, cfg: Config, probe_x: torch.Tensor, recorder: record.Recorder):
        import queue
        import threading

        self.cfg, self.probe_x, self.recorder = cfg, probe_x, recorder
        self.model = build_model(cfg).to(probe_x.device).eval()
        self.queue: queue.Queue = queue.Queue(maxsize=4)  # bounded: at most 4 weight copies
        self.error: BaseException | None = None
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one core trains, the other encodes
        self.thread = threading.Thread(target=self._work, name="nnlab-snapshots", daemon=True)
        self.thread.start()

    def submit(self, step: int, epoch: float, params: list[torch.Tensor]) -> None:
        """Queue a snapshot (blocks while 4 are waiting)."""
        self.queue.put((step, epoch, params))

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                step, epoch, params = item
                with torch.no_grad():
                    for dst, src in zip(self.model.parameters(), params, strict=True):
                        dst.copy_(src)
                a, b = encode_probe(self.model, self.cfg, self.probe_x)
                self.recorder.add(step, epoch, a, b)
            except BaseException as e:  # re-raised in the training thread by drain()
                self.error = e
            finally:
                self.queue.task_done()

    def drain(self) -> None:
        """Wait until every queued snapshot is in the recorder."""
        self.queue.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop the thread and give torch its threads back."""
        self.queue.put(None)
        self.thread.join()
        torch.set_num_threads(self.threads)


class Trainer:
    """Runs (or continues) one run's training loop."""

    def __init__(
        self,
        run: store.Run,
        cfg: Config,
        splits: data.Splits,
        device: torch.device,
        console: Console | None = None,
    ):
        self.run, self.cfg, self.splits, self.device = run, cfg, splits, device
        self.console = console or stderr_console()
        self.is_vae = isinstance(cfg, VAEConfig)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg).to(device)
        self.opt = make_optimizer(cfg, self.model.parameters())
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.n_train = len(splits.train_x)
        self.steps_per_epoch = math.ceil(self.n_train / cfg.batch_size)
        px, py, pidx = splits.split(cfg.probe_split)
        chosen = record.probe_indices(py.cpu().numpy(), cfg.probe_size, cfg.seed)
        self.probe_x = px[torch.from_numpy(chosen).to(px.device)]
        self.probe_labels = py.cpu().numpy()[chosen]
        self.probe_split_index = chosen
        kind = "vae" if self.is_vae else "classifier"
        self.recorder = record.Recorder(run.latents, kind, cfg.record_dtype)
        # loop position and running sums, all saved in checkpoints
        self.step = 0
        self.epoch = 0
        self.batch = 0
        self.perm: torch.Tensor | None = None
        self.window: dict[str, float] = {}
        self.epoch_sums: dict[str, float] = {}
        self.last_snapshot_step = -1
        self.metric_lines: list[str] = []
        self.stop_signal: str | None = None
        self.worker: SnapshotWorker | None = None  # exists only while fit() runs
        fault = os.environ.get(FAULT_NAN_ENV, "")
        self.nan_at_step = int(fault) if fault.isdigit() else -1

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Everything needed to continue exactly from here (tensors and plain values)."""
        return {
            "format": store.FORMAT_VERSION,
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
            "metrics_bytes": self._metrics_size(),
            "latent_chunks": self.recorder.chunk_count(),
        }

    def load_state_dict(self, ck: dict) -> None:
        """Restore a checkpoint and cut metrics and recording back to what it had seen."""
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
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            where = self.run.checkpoints / "latest.pt"
            raise RunError(f"{where}: does not fit this run ({e})") from None
        metrics = self.run.file("metrics.jsonl")
        if metrics.exists() and metrics.stat().st_size > metrics_bytes:
            with open(metrics, "r+b") as f:
                f.truncate(metrics_bytes)
                os.fsync(f.fileno())
        self.recorder.truncate(chunks)

    def _metrics_size(self) -> int:
        p = self.run.file("metrics.jsonl")
        return p.stat().st_size if p.exists() else 0

    # ------------------------------------------------------------ pieces

    def log(self, **line) -> None:
        """Queue one metrics.jsonl line (written at the next checkpoint)."""
        self.metric_lines.append(json.dumps(line))

    def flush_metrics(self) -> None:
        """Append queued metric lines to metrics.jsonl and make them durable."""
        if not self.metric_lines:
            return
        with open(self.run.file("metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write("\n".join(self.metric_lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.metric_lines.clear()

    def snapshot(self) -> None:
        """Encode the probe set (one no-grad pass) and keep it for the recording."""
        epoch = self.epoch + self.batch / self.steps_per_epoch
        if self.worker is not None:
            params = [p.detach().clone() for p in self.model.parameters()]
            self.worker.submit(self.step, epoch, params)
        else:
            a, b = encode_probe(self.model, self.cfg, self.probe_x)
            self.recorder.add(self.step, epoch, a, b)
        self.last_snapshot_step = self.step

    def checkpoint(self, *, final: bool = False, keep_epoch: bool = False) -> None:
        """Flush metrics and recording, then write latest.pt (and final/epoch copies)."""
        self.flush_metrics()
        if self.worker is not None:
            self.worker.drain()
        self.recorder.flush()
        state = self.state_dict()
        folder = self.run.checkpoints
        store.save_checkpoint(folder / "latest.pt", state)
        if keep_epoch:
            store.save_checkpoint(folder / f"epoch-{self.epoch:04d}.pt", state)
        if final:
            store.save_checkpoint(folder / "final.pt", state)
        self.run.update_meta(
            steps_done=self.step,
            epochs_done=self.epoch,
            resumable_step=self.step,
            updated=store.now_iso(),
            metrics_bytes=state["metrics_bytes"],
            snapshots=self.recorder.saved(),
        )

    def train_step(self, idx: torch.Tensor) -> dict[str, float]:
        """One optimisation step on the rows `idx` of the train split; returns its losses."""
        x = self.splits.train_x[idx]
        if self.is_vae:
            logits, mu, std = self.model(x, self.noise_gen)
            terms = vae_loss(x, logits, mu, std, self.cfg.beta, self.cfg.recon)
            loss = terms["loss"]
            values = {"loss": loss, self.cfg.recon: terms["recon"], "kl": terms["kl"]}
        else:
            y = self.splits.train_y[idx]
            out = self.model(x)
            loss = classifier_loss(out, y, self.cfg.loss)
            values = {"loss": loss, "acc": (out.argmax(1) == y).float().mean()}
        if self.nan_at_step == self.step + 1:
            loss = loss * float("nan")
            values["loss"] = loss
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
        cfg = self.cfg
        # bf16 snapshots are cheap enough to keep up on a core of their own: training then
        # runs single-threaded on one core while a worker encodes on the other.
        if (
            cfg.snapshot_every
            and cfg.record_precision == "bfloat16"
            and self.device.type == "cpu"
            and (os.cpu_count() or 1) >= 2
        ):
            self.worker = SnapshotWorker(cfg, self.probe_x, self.recorder)
        try:
            return self._fit()
        finally:
            if self.worker is not None:
                self.worker.close()
                self.worker = None

    def _fit(self) -> dict:
        cfg = self.cfg
        snap = cfg.snapshot_every
        total = cfg.epochs * self.steps_per_epoch
        last_epoch_line: dict = {}
        with _StopSignals(self), _progress(self.console, total, self.step) as bar:
            if self.step == 0 and not (self.run.checkpoints / "latest.pt").exists():
                if snap:
                    self.snapshot()
                self.checkpoint()  # a run can always resume, even if killed at once
            while self.epoch < cfg.epochs:
                if self.perm is None:
                    self.perm = torch.randperm(self.n_train, generator=self.data_gen)
                perm = self.perm.to(self.device)  # once per epoch, not per step
                for b in range(self.batch, self.steps_per_epoch):
                    idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    values = self.train_step(idx)
                    if not math.isfinite(values["loss"]):
                        self._diverged(values["loss"])
                    self.step += 1
                    self.batch = b + 1
                    n = len(idx)
                    for k, v in values.items():
                        self.window[k] = self.window.get(k, 0.0) + v
                        self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v * n
                    self.window["_n"] = self.window.get("_n", 0.0) + 1
                    self.epoch_sums["_n"] = self.epoch_sums.get("_n", 0.0) + n
                    if self.step % cfg.log_every == 0:
                        k = self.window.pop("_n")
                        self.log(
                            kind="step",
                            step=self.step,
                            epoch=round(self.epoch + self.batch / self.steps_per_epoch, 6),
                            **{k2: v / k for k2, v in self.window.items()},
                        )
                        self.window = {}
                    if snap and self.step % snap == 0:
                        self.snapshot()
                    bar.advance(self.step, values["loss"])
                    if self.stop_signal:
                        self._interrupted()
                    ces = cfg.checkpoint_every_steps
                    if ces and self.step % ces == 0 and self.batch < self.steps_per_epoch:
                        self.checkpoint()
                # end of epoch: evaluate, log, checkpoint
                self.epoch += 1
                self.batch = 0
                self.perm = None
                last_epoch_line = self._epoch_line()
                self.log(**last_epoch_line)
                done = self.epoch >= cfg.epochs
                if done and snap and self.last_snapshot_step != self.step:
                    self.snapshot()  # the final state, so the animation ends where training did
                keep = bool(cfg.checkpoint_every) and self.epoch % cfg.checkpoint_every == 0
                self.checkpoint(final=done, keep_epoch=keep)
                bar.epoch(self.epoch, cfg.epochs, _headline(cfg, last_epoch_line))
            if not last_epoch_line:  # resumed a finished run without new epochs
                last_epoch_line = self._last_epoch_from_file()
        return last_epoch_line

    def _epoch_line(self) -> dict:
        n = self.epoch_sums.pop("_n", 0.0) or 1.0
        line = {"kind": "epoch", "epoch": self.epoch, "step": self.step}
        line.update({f"train_{k}": v / n for k, v in self.epoch_sums.items()})
        self.epoch_sums = {}
        s = self.splits
        if len(s.val_x):
            line.update(
                {f"val_{k}": v for k, v in evaluate(self.model, self.cfg, s.val_x, s.val_y).items()}
            )
        line.update(
            {f"test_{k}": v for k, v in evaluate(self.model, self.cfg, s.test_x, s.test_y).items()}
        )
        return line

    def _last_epoch_from_file(self) -> dict:
        from nnlab.summary import read_metrics

        lines = read_metrics(self.run.file("metrics.jsonl"))
        epochs = [m for m in lines if m.get("kind") == "epoch"]
        return epochs[-1] if epochs else {}

    def _diverged(self, loss: float) -> None:
        self.log(kind="diverged", step=self.step + 1, loss=str(loss))
        self.flush_metrics()
        self.run.update_meta(status="diverged", updated=store.now_iso(), ended=store.now_iso())
        raise TrainingStopped(
            f"run {self.run.id} diverged: loss {loss} at step {self.step + 1}; kept the last "
            f"finite checkpoint (step {_ckpt_step(self.run)}). Try a smaller --lr.",
            exit_code=1,
        )

    def _interrupted(self) -> None:
        self.checkpoint()
        self.run.update_meta(status="interrupted", updated=store.now_iso())
        raise TrainingStopped(
            f"interrupted ({self.stop_signal}) at step {self.step}; checkpoint saved. "
            f"Resume with: nnlab train --resume {self.run.id}",
            exit_code=130,
        )


def _ckpt_step(run: store.Run) -> int:
    try:
        return int(run.meta().get("resumable_step", 0))
    except NnlabError:
        return 0


def _headline(cfg: Config, line: dict) -> str:
    if not line:
        return ""
    if isinstance(cfg, VAEConfig):
        return (
            f"test ELBO {line['test_elbo']:.2f} ({cfg.recon} {line[f'test_{cfg.recon}']:.2f}, "
            f"KL {line['test_kl']:.2f})"
        )
    return f"test accuracy {100 * line['test_acc']:.2f}% (loss {line['test_loss']:.4f})"


class _StopSignals:
    """Turn the first SIGINT/SIGTERM into a flag checked between steps (the run then saves
    a checkpoint and stops cleanly); a second SIGINT interrupts at once."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.old: dict = {}

    def __enter__(self):
        def handler(signum, frame):
            if self.trainer.stop_signal and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.trainer.stop_signal = signal.Signals(signum).name

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        return False


class _progress:
    """A rich progress bar on stderr (steps/s, loss, ETA), refreshed a few times a second."""

    def __init__(self, console: Console, total: int, start: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task(
            "train", total=total, completed=start, rate="-", loss="-"
        )
        self.t_last = time.perf_counter()
        self.s_last = self.done = start

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.update(self.task, completed=self.done)
        self.progress.stop()
        return False

    def advance(self, step: int, loss: float) -> None:
        """Report progress at `step` (cheap: real updates at most ten times a second)."""
        self.done = step
        now = time.perf_counter()
        if now - self.t_last < 0.1:
            return
        rate = (step - self.s_last) / (now - self.t_last)
        self.progress.update(self.task, completed=step, rate=f"{rate:,.0f}", loss=f"{loss:.4g}")
        self.t_last, self.s_last = now, step

    def epoch(self, epoch: int, epochs: int, headline: str) -> None:
        """Print an end-of-epoch line above the bar."""
        self.progress.update(self.task, description=f"epoch {min(epoch + 1, epochs)}/{epochs}")
        if headline:
            self.progress.console.print(f"epoch {epoch}/{epochs}: {headline}")


# ---------------------------------------------------------------- entry points


def _load_splits(cfg: Config, device, console: Console) -> data.Splits:
    return data.load(
        cfg.dataset,
        cfg.data_dir or None,
        cfg.val_fraction,
        cfg.seed,
        device,
        warn=lambda m: console.print(f"[yellow]{m}[/]", soft_wrap=True),
    )


def _setup(cfg: Config) -> torch.device:
    device = resolve_device(cfg.device)
    # Deterministic kernels make resume bit-exact; on CPU they cost nothing measurable here.
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    return device


def start(cfg: Config, runs_dir=None, console: Console | None = None, name_lock=None) -> str:
    """Create a run for cfg, train it, and return its id (name_lock: from store.lock_name)."""
    console = console or stderr_console()
    if cfg.name and name_lock is None:
        name_lock = store.lock_name(runs_dir, cfg.model, cfg.name)
    device = _setup(cfg)
    splits = _load_splits(cfg, device, console)  # before any directory exists: no half runs
    requested = cfg.dataset
    if splits.name != cfg.dataset:
        cfg = dataclasses.replace(cfg, dataset=splits.name)
    run = store.create_run(runs_dir, cfg.model, cfg.name, name_lock)
    try:
        trainer = Trainer(run, cfg, splits, device, console)
        config_text = to_yaml(cfg)
        store.write_text(run.file("config.yaml"), config_text)
        params = parameter_table(trainer.model)
        run.write_meta(
            {
                "format": store.FORMAT_VERSION,
                "id": run.id,
                "model": cfg.model,
                "status": "running",
                "created": store.now_iso(),
                "updated": store.now_iso(),
                "ended": None,
                "nnlab_version": __version__,
                "torch_version": torch.__version__,
                "python": sys.version.split()[0],
                "device": str(device),
                "dataset": splits.name,
                "dataset_requested": requested,
                "data_source": splits.source,
                "train_size": len(splits.train_x),
                "val_size": len(splits.val_x),
                "test_size": len(splits.test_x),
                "steps_per_epoch": trainer.steps_per_epoch,
                "steps_done": 0,
                "epochs_done": 0,
                "resumable_step": 0,
                "train_seconds": 0.0,
                "parameters": params,
                "parameter_count": sum(p["count"] for p in params),
                "probe": {"split": cfg.probe_split, "size": len(trainer.probe_labels)},
                "snapshots": 0,
                "final": {},
            }
        )
        run.checkpoints.mkdir()
        trainer.recorder.write_probe(
            trainer.probe_labels, trainer.probe_split_index, cfg.probe_split
        )
        return _run(trainer, console)
    finally:
        run.release()


def resume(
    run_id: str, runs_dir=None, epochs: int | None = None, console: Console | None = None
) -> str:
    """Continue run_id from its latest checkpoint (optionally to a new epoch count)."""
    console = console or stderr_console()
    run = store.open_run(run_id, runs_dir)
    meta = run.meta()
    cfg = run.config()
    if epochs is not None:
        if int(epochs) < 1:
            raise NnlabError(f"--epochs={epochs}: must be at least 1")
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    run.acquire()
    try:
        if run.clean_temp_files():
            console.print("removed temp files left by an interrupted write")
        device = _setup(cfg)
        splits = _load_splits(cfg, device, console)
        if len(splits.train_x) != meta.get("train_size"):
            raise RunError(f"run {run.id}: dataset {cfg.dataset} now has a different size")
        trainer = Trainer(run, cfg, splits, device, console)
        latest = run.checkpoints / "latest.pt"
        if latest.exists():
            trainer.load_state_dict(store.load_checkpoint(latest, map_location=device))
        else:  # killed before its first checkpoint: start over in the same run
            trainer.recorder.truncate(0)
            run.file("metrics.jsonl").unlink(missing_ok=True)
            run.checkpoints.mkdir(exist_ok=True)
        if epochs is not None:
            text = to_yaml(cfg)
            store.write_text(run.file("config.yaml"), text)
            run.update_meta(config_sha256=store.sha256_text(text))
        run.update_meta(status="running", ended=None, updated=store.now_iso())
        console.print(f"resuming {run.id} from step {trainer.step} (epoch {trainer.epoch})")
        return _run(trainer, console)
    finally:
        run.release()


def _run(trainer: Trainer, console: Console) -> str:
    run = trainer.run
    t0 = time.perf_counter()
    try:
        final = trainer.fit()
    except TrainingStopped as e:
        e.run_id = run.id
        _add_seconds(run, time.perf_counter() - t0)
        raise
    except OSError as e:
        # A failed write (disk full, permissions) leaves the previous files whole: say what
        # failed and how to go on, not a traceback.
        where = e.filename or "a file of the run"
        try:
            run.update_meta(status="interrupted", updated=store.now_iso())
        except OSError:
            pass
        err = TrainingStopped(
            f"could not write {where}: {e.strerror or e}. The run keeps its last complete "
            f"checkpoint (step {_ckpt_step(run)}); free space, then: nnlab train --resume {run.id}",
            exit_code=1,
        )
        err.run_id = run.id
        raise err from None
    except BaseException:
        # An unexpected failure (or a second Ctrl-C): the run can resume from its latest
        # checkpoint; say so in meta.json rather than leaving it "running".
        try:
            run.update_meta(status="interrupted", updated=store.now_iso())
        except Exception:
            pass
        raise
    seconds = _add_seconds(run, time.perf_counter() - t0)
    run.update_meta(status="finished", ended=store.now_iso(), final=final)
    console.print(
        f"finished {run.id}: {_headline(trainer.cfg, final)} · {trainer.step} steps, "
        f"{seconds:.1f} s · {run.path}",
        soft_wrap=True,
    )
    return run.id


def _add_seconds(run: store.Run, seconds: float) -> float:
    meta = run.meta()
    total = float(meta.get("train_seconds", 0.0)) + seconds
    run.update_meta(train_seconds=round(total, 3))
    return total
