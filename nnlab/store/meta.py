"""A run's facts as one typed record: `Meta`, what meta.json holds, read and checked once
(nnlab.store.schema.check_meta) and written by one function (Meta.to_json); and `Status`,
every status a run or a sweep's point can have, the only place their words are spelled."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """How a run (or a sweep's point) stands. A str: it compares, prints and serialises as
    its word, so meta.json and sweep.json hold the same text as before the enum existed."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # stopped (Ctrl-C, a kill, a lost machine): resumable
    DIVERGED = "diverged"  # its loss became NaN or inf
    FAILED = "failed"  # an error ended it
    PRUNED = "pruned"  # a search stopped it early
    PENDING = "pending"  # a sweep's point that has not started
    DAMAGED = "damaged"  # shown for a run whose files cannot be read as written

    # f-strings and str() give the word, on every Python version
    __str__ = str.__str__
    __format__ = str.__format__


# What a run's meta.json may say (a run is never pending or damaged on disk).
RUN_STATUSES = tuple(
    s for s in Status if s not in (Status.PENDING, Status.DAMAGED)
)  # running, finished, interrupted, diverged, failed, pruned
# What a sweep's point may be (sweep.json).
POINT_STATUSES = (Status.PENDING, *RUN_STATUSES)
# A point or a run that will not change any more without being asked to.
ENDED = (Status.FINISHED, Status.DIVERGED, Status.FAILED, Status.PRUNED)


@dataclass(frozen=True)
class Meta:
    """meta.json of a run, typed. Field order is the file's key order; a key a run written
    by an older nnlab lacks reads as its field's default."""

    format: int
    id: str = ""
    model: str = ""
    status: Status = Status.RUNNING
    created: str = ""
    updated: str = ""
    ended: str | None = None
    nnlab_version: str = ""
    torch_version: str = ""
    python: str = ""
    device: str = ""
    dataset: str = ""
    dataset_requested: str = ""
    data_source: str = ""
    train_size: int = 0
    val_size: int = 0
    test_size: int = 0
    steps_per_epoch: int = 0
    steps_done: int = 0
    epochs_done: int = 0
    resumable_step: int = 0
    train_seconds: float = 0.0
    parameters: list = field(default_factory=list)  # rows {name, shape, count}
    parameter_count: int = 0
    probe: dict = field(default_factory=dict)  # {split, size, seed, ...}
    snapshots: int = 0
    final: dict = field(default_factory=dict)  # the last epoch's numbers
    config_sha256: str = ""
    settings: str = ""  # the config's differences from its model's defaults
    # written only once they are known (absent from meta.json until then)
    metrics_bytes: int | None = None
    metrics_sha256: str | None = None
    sweep: dict | None = None  # {"id", "point"} of a sweep's point
    pruned: dict | None = None  # {"step", "metric", "value"} of a pruned run
    extra: dict = field(default_factory=dict, repr=False)  # keys this nnlab does not know

    @classmethod
    def from_json(cls, obj: dict) -> Meta:
        """The record of a meta.json object already checked by schema.check_meta."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in obj.items() if k in known}
        extra = {k: v for k, v in obj.items() if k not in known and k != "checksum"}
        if "status" in values:
            values["status"] = Status(values["status"])
        return cls(**values, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """meta.json's object (without its checksum): every field, less the optional ones
        not yet known, then the unknown keys as they were read."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.default is None and f.name != "ended" and value is None):
                continue
            out[f.name] = value.value if isinstance(value, Status) else value
        return {**out, **self.extra}

    def changed(self, **changes) -> Meta:
        """A copy with some fields changed (status words become Status)."""
        if "status" in changes:
            changes["status"] = Status(changes["status"])
        return dataclasses.replace(self, **changes)
