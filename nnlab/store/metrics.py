"""The metrics log, metrics.jsonl: one JSON object per line, appended by the trainer.

`MetricsLog` is the writer (lines queued between checkpoints, appended and fsynced at each
one, cut back to a checkpoint's size on resume); the functions below it are the readers
(parse, best values), kept beside the writer as `record.py` keeps `Recorder`
beside `load_recording`. Line kinds: "step" (mean training loss over `log_every` steps),
"epoch" (train, validation and test metrics, and the unit health of the hidden layers),
"task" (the end of a task of a permuted run: its accuracies) and "diverged".
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

# The kinds of line, as their "kind" key says.
STEP, EPOCH, TASK, DIVERGED = "step", "epoch", "task", "diverged"
SKIPPED = "skipped"  # what a recording left out, and why (the Lightning callback's)
# The non-metric keys of an epoch line.
POSITION_KEYS = ("kind", "epoch", "step", "seconds")


class MetricsLog:
    """Queues lines and appends them durably to one run's metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.pending: list[str] = []
        self._hashed = None  # (bytes hashed, the hash so far): a digest reads only what is new

    def append(self, **line) -> None:
        """Queue one line (written at the next flush, i.e. the next checkpoint)."""
        self.pending.append(json.dumps(line))

    def flush(self) -> None:
        """Append the queued lines and make them durable."""
        if not self.pending:
            return
        # never through a link (O_NOFOLLOW): the log is only ever the run's own file
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write("\n".join(self.pending) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.pending.clear()

    def size(self) -> int:
        """Bytes on disk (what a checkpoint records, to cut back to on resume)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        """Drop queued lines and cut the file back to `size` bytes (a checkpoint's view)."""
        self.pending.clear()
        self._hashed = None
        if self.path.exists() and self.path.stat().st_size > size:
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)

    def digest(self, size: int) -> str:
        """SHA-256 of the first `size` bytes (what a checkpoint has seen), for meta.json;
        carried on from the last digest, since only this writer appends (a training that
        publishes every few seconds never hashes its whole log again)."""
        import hashlib

        done, h = self._hashed or (0, hashlib.sha256())
        if done > size:
            done, h = 0, hashlib.sha256()
        h = h.copy()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return h.hexdigest()
        with os.fdopen(fd, "rb") as f:
            f.seek(done)
            while done < size:
                block = f.read(min(1 << 20, size - done))
                if not block:
                    break
                h.update(block)
                done += len(block)
        self._hashed = (done, h.copy())
        return h.hexdigest()

    def remove(self) -> None:
        """Delete the log (a run restarted from nothing)."""
        self._hashed = None
        self.pending.clear()
        self.path.unlink(missing_ok=True)


def prefix_digest(path: Path, size: int) -> str:
    """SHA-256 of a file's first `size` bytes (of the whole file when it is shorter)."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            h.update(f.read(size))
    except FileNotFoundError:
        pass
    return h.hexdigest()


def parse(path: Path) -> tuple[list[dict], int]:
    """The lines as dicts, and how many could not be read (a torn last line after a crash
    while appending, or damage)."""
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    out, bad = [], 0
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            out.append(obj)
        else:
            bad += 1
    return out, bad


def read(path: Path) -> list[dict]:
    """The lines as dicts, unreadable lines skipped."""
    return parse(path)[0]


def of_kind(lines: list[dict], kind: str) -> list[dict]:
    """The lines of one kind ("step", "epoch" or "diverged")."""
    return [m for m in lines if m.get("kind") == kind]


def last_epoch(path: Path) -> dict:
    """The last epoch line of a log, or {}."""
    epochs = of_kind(read(path), "epoch")
    return epochs[-1] if epochs else {}


# Unit health numbers of a hidden layer in an epoch line (nnlab.training.health): h1_dead,
# enc2_effective_rank... They describe the units, not how well the run did: no "best".
HEALTH_NUMBERS = ("dead", "saturated", "weight_norm", "sparsity", "effective_rank")
HEALTH_RE = re.compile(r"^((?:h|enc|dec)\d+)_(" + "|".join(HEALTH_NUMBERS) + r")$")
NOT_RANKED = ("task", "cbp_replaced")  # positions and counts, not results


def health_of(line: dict) -> dict[str, dict[str, float]]:
    """The unit health numbers of an epoch line, by layer: {"h1": {"dead": 0.1, ...}}."""
    out: dict[str, dict[str, float]] = {}
    for k, v in line.items():
        m = HEALTH_RE.match(k)
        if m and isinstance(v, (int, float)):
            out.setdefault(m.group(1), {})[m.group(2)] = float(v)
    return out


def best_values(epoch_lines: list[dict]) -> dict:
    """For each evaluation metric, its best value over epochs and the epoch it came at."""
    best: dict[str, dict] = {}
    for line in epoch_lines:
        for k, v in line.items():
            if k in POSITION_KEYS or not isinstance(v, (int, float)):
                continue
            if k in NOT_RANKED or HEALTH_RE.match(k):
                continue
            higher = k.endswith("_acc") or k.endswith("_elbo")
            cur = best.get(k)
            if cur is None or (v > cur["value"] if higher else v < cur["value"]):
                best[k] = {"value": v, "epoch": line.get("epoch"), "step": line.get("step")}
    return best
