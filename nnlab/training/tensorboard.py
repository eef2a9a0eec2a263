"""TensorBoard event files: the scalars of a run under one set of tag names, written while
training (`--tensorboard=true`) or from the store (`nnlab export`).

Tags: `train/<key>` for each training-loss line of metrics.jsonl (and `train/lr`),
`epoch/<key>` for each epoch line, `latent/<key>` for the latent metrics of a snapshot
(vectors as `latent/<key>/z<d>`). TensorBoard is an optional extra; nothing here imports
it until a writer is made.
"""

from __future__ import annotations

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


class Writer:
    """Scalars of one run into a TensorBoard log folder.

    purge_step: on a resumed run, the first step after its checkpoint; TensorBoard's
    readers then drop what an earlier process wrote from that step on (written before it
    was stopped or killed, and written again now), so no step is shown twice.
    """

    def __init__(self, logdir: Path, purge_step: int | None = None):
        summary_writer = require()
        self.writer = summary_writer(log_dir=str(logdir), purge_step=purge_step, flush_secs=3600)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Write each {tag: value} at step."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

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
