"""TensorBoard event files: the scalars of a run under one set of tag names, written while
training (`--tensorboard=true`) or from the store (`nnlab export`).

Tags: `train/<key>` for each training-loss line of metrics.jsonl (and `train/lr`),
`epoch/<key>` for each epoch line, `latent/<key>` for the latent metrics of a snapshot
(vectors as `latent/<key>/z<d>`). TensorBoard is an optional extra; nothing here imports
it until a writer is made.
"""

from __future__ import annotations

import time
from pathlib import Path

from nnlab.helpers.errors import NnlabError

INSTALL_HINT = 'pip install -e ".[tensorboard]" (or pip install tensorboard)'
SKIP = ("kind", "step", "epoch")  # a metrics line's bookkeeping, not a scalar


def require():
    """torch's SummaryWriter, or a one-line error saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NnlabError(f"TensorBoard is not installed: {INSTALL_HINT}") from None
    return SummaryWriter


def available() -> bool:
    """Whether TensorBoard can be written (checked before a run or an export starts)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def check_available(what: str) -> None:
    """Refuse `what` at once (exit 2) when TensorBoard is not installed."""
    if not available():
        raise NnlabError(f"{what} needs TensorBoard, which is not installed: {INSTALL_HINT}")


def line_scalars(line: dict) -> tuple[int, dict[str, float]]:
    """(step, {tag: value}) of one metrics.jsonl line (step and epoch lines only)."""
    kind = line.get("kind")
    prefix = {"step": "train", "epoch": "epoch"}.get(kind)
    if prefix is None:
        return int(line.get("step", 0)), {}
    values = {
        f"{prefix}/{k}": float(v)
        for k, v in line.items()
        if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return int(line["step"]), values


def latent_scalars(metrics: dict) -> dict[str, float]:
    """{tag: value} of one snapshot's latent metrics (analysis.snapshot_metrics)."""
    out = {}
    for k, v in metrics.items():
        if k in SKIP:
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"latent/{k}"] = float(v)
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v):
            out.update({f"latent/{k}/z{d + 1}": float(x) for d, x in enumerate(v)})
    return out


FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max


EVENTS_PREFIX = "events.out.tfevents."  # then the whole second the file was made, host, pid
WAIT_AT_MOST_S = 1.5  # a newest file from a clock far ahead is not waited for


def _after_the_newest(logdir: Path) -> None:
    """Wait until the clock's whole second is past that of the newest event file in logdir.
    TensorBoard reads a folder's files in name order, and a name starts with that second:
    a resume within the second its killed run began would be read first, and the earlier
    file's steps after the purge shown again (seen in a test resuming in-process)."""
    seconds = [
        int(part)
        for p in (logdir.glob(EVENTS_PREFIX + "*") if logdir.is_dir() else [])
        if (part := p.name[len(EVENTS_PREFIX) :].split(".", 1)[0]).isdigit()
    ]
    deadline = time.monotonic() + WAIT_AT_MOST_S
    while seconds and int(time.time()) <= max(seconds) and time.monotonic() < deadline:
        time.sleep(0.02)


class Writer:
    """Scalars of one run into a TensorBoard log folder.

    purge_step: on a resumed run, the first step after its checkpoint; TensorBoard's
    readers then drop what an earlier process wrote from that step on (written before it
    was stopped or killed, and written again now), so no step is shown twice.
    """

    def __init__(self, logdir: Path, purge_step: int | None = None):
        summary_writer = require()
        _after_the_newest(Path(logdir))
        self.writer = summary_writer(log_dir=str(logdir), purge_step=purge_step, flush_secs=3600)
        self.left_out: list[tuple[str, int, float]] = []  # (tag, step, value) beyond float32

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Write each {tag: value} at step; a value beyond float32's range (TensorBoard
        stores scalars as float32, where it would become infinite) is left out and kept in
        left_out, for the caller to say so."""
        for tag, value in values.items():
            if abs(value) > FLOAT32_MAX:
                self.left_out.append((tag, step, value))
                continue
            self.writer.add_scalar(tag, value, step)

    def left_out_text(self) -> str:
        """One line saying which values were left out, or ''."""
        if not self.left_out:
            return ""
        tag, step, value = self.left_out[0]
        return (
            f"{len(self.left_out)} value(s) beyond float32's range left out of TensorBoard "
            f"(it stores float32), e.g. {tag} = {value:.3g} at step {step}"
        )

    def line(self, line: dict, lr: float | None = None) -> None:
        """One metrics.jsonl line (and the learning rate with each epoch line)."""
        step, values = line_scalars(line)
        if lr is not None and line.get("kind") == "epoch":
            values["train/lr"] = float(lr)
        self.scalars(step, values)

    def flush(self) -> None:
        """Make what was written durable (at each checkpoint)."""
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class LiveBoard:
    """TensorBoard scalars written while a run trains (cfg.tensorboard): at each checkpoint,
    the metrics lines and snapshots it commits, so the event files hold what the run holds.

    The latent metrics of a snapshot (~20 ms for 10,000 probe images) are computed for as
    many snapshots as fit in LATENT_BUDGET of the training time, and always for the last;
    `nnlab export` writes them for every snapshot.
    """

    LATENT_BUDGET = 0.03

    def __init__(self, trainer, purge_step: int | None):
        self.trainer = trainer  # a training.trainer.Trainer (its run, config and probe)
        self.writer = Writer(trainer.run.file("tensorboard"), purge_step=purge_step)
        self.t0 = time.perf_counter()
        self.spent = 0.0

    def write(self, lines: list[str], snapshots: list, final: bool) -> None:
        """Write the queued metrics lines and latent metrics of the queued snapshots."""
        import json

        from nnlab.analysis import latent

        for text in lines:
            self.writer.line(json.loads(text), lr=self.trainer.cfg.lr)
        for k, (step, epoch, a, b) in enumerate(snapshots):
            last = final and k == len(snapshots) - 1
            if not last and self.spent > self.LATENT_BUDGET * (time.perf_counter() - self.t0):
                continue
            t = time.perf_counter()
            rec = self._recording(step, epoch, a, b)
            numbers = latent.snapshot_metrics(rec, 0)
            self.writer.scalars(step, latent_scalars(numbers))
            self.spent += time.perf_counter() - t
        self.writer.flush()

    def _recording(self, step, epoch, a, b):
        """One snapshot as the recording will read it back (stored dtype, then float32)."""
        import numpy as np

        from nnlab.store import record

        tr = self.trainer
        return record.Recording(
            steps=np.array([step]),
            epochs=np.array([epoch]),
            labels=np.asarray(tr.probe_labels, dtype=np.int64),
            indices=np.asarray(tr.probe_split_index, dtype=np.int64),
            split=tr.cfg.probe_split,
            points=np.asarray(a, dtype=np.float32)[None],
            sd=None if b is None else np.asarray(b, dtype=np.float32)[None],
        )

    def close(self) -> None:
        """Close the event file (and say on stderr what was left out of it)."""
        self.writer.close()
        if self.writer.left_out:
            from nnlab.helpers.console import stderr_console, warn

            warn(stderr_console(), f"run {self.trainer.run.id}: {self.writer.left_out_text()}")
