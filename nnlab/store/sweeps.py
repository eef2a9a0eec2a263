"""Sweep folders in the run store: sweep.json (the record), logs/ and media/, beside the
sweep's points, which are ordinary runs named <sweep id>-p<k>; and a list of ids with each
sweep replaced by its points, for the commands that draw runs side by side."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnlab.helpers.errors import NnlabError, RunError, closest_ids
from nnlab.helpers.files import TMP_PREFIX, Lock, read_json, write_json
from nnlab.store import folders, meta, schema
from nnlab.store.meta import Status


@dataclass
class Sweep(folders.Folder):
    """A sweep directory inside a runs dir: sweep.json (the record), logs/, media/.

    Its points are ordinary runs beside it, named <sweep id>-p<k>. Only the process that
    holds the sweep's lock writes sweep.json.
    """

    lock: Lock | None = field(default=None, repr=False)

    def record(self) -> dict:
        """sweep.json, checked before any of its values is used."""
        rec = read_json(self.file(folders.SWEEP_FILE))
        schema.check_sweep(rec, self.file(folders.SWEEP_FILE))
        if rec["format"] > folders.FORMAT_VERSION:
            raise RunError(
                f"sweep {self.id} was written by a newer nnlab (format {rec['format']}): "
                "upgrade nnlab to read it"
            )
        return rec

    def write_record(self, rec: dict) -> None:
        """Replace sweep.json atomically."""
        write_json(self.file(folders.SWEEP_FILE), rec)

    def point_status(self, rec: dict, index: int) -> str:
        """Point `index`'s status as its run tells it (no run yet: pending)."""
        run = folders.Run(self.root, folders.validate_id(rec["points"][index]["run"]))
        if run.path.is_symlink():  # a link to a run elsewhere is none of this sweep's
            return Status.FAILED
        if not run.meta_file.exists():
            return Status.INTERRUPTED if run.path.exists() else Status.PENDING
        try:
            meta = run.meta()
        except NnlabError:
            return Status.FAILED
        if meta.sweep != {"id": self.id, "point": index}:
            return Status.FAILED  # a run that is not this point (a tampered sweep.json)
        status = run.status(meta)
        known = (
            Status.RUNNING,
            Status.FINISHED,
            Status.DIVERGED,
            Status.INTERRUPTED,
            Status.PRUNED,
        )
        return status if status in known else Status.FAILED

    def acquire(self) -> None:
        """Lock the sweep for running, or raise naming the holder; then remove what a write
        of sweep.json killed at its rename left (only the lock holder writes it)."""
        self.lock = Lock(self.lock_file, f"sweep {self.id}")
        self.lock.acquire(folders.holder_info(self.id))
        for p in self.path.glob(f"{TMP_PREFIX}{folders.SWEEP_FILE}.*"):
            p.unlink(missing_ok=True)

    def release(self) -> None:
        """Release the sweep's lock."""
        if self.lock:
            self.lock.release()
        self.lock = None


# A search's points report their metric to the coordinator through files in the sweep
# (every executor's workers see the sweep's folder: Ray's check that they do is
# executors.check_storage): p<k>.report.json is the point's latest report, written by its
# worker, and p<k>.decisions.json the coordinator's answers, by label. Answers are kept, so
# a point resumed before a report it made earlier gets the same answer again.
REPORTS = "reports"
ENDED = meta.ENDED  # how a point can end


def _mail(sweep: Sweep, index: int, kind: str) -> Path:
    folder = sweep.file(REPORTS)
    folder.mkdir(exist_ok=True)
    return folder / f"p{int(index)}.{kind}.json"


def _read_mail(path: Path) -> dict | None:
    import json

    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet (each write is atomic: never half a file)
    return obj if isinstance(obj, dict) else None


def post_report(sweep: Sweep, index: int, label: int, value: float) -> None:
    """A point's report: its metric `value` at `label` (training images seen)."""
    import math

    finite = isinstance(value, (int, float)) and math.isfinite(value)
    write_json(_mail(sweep, index, "report"), {"label": label, "value": value if finite else None})


def pending_report(sweep: Sweep, index: int) -> tuple[int, float] | None:
    """Point index's report that has no answer yet, as (label, value; NaN if not finite)."""
    report = _read_mail(_mail(sweep, index, "report"))
    if report is None or not isinstance(report.get("label"), int):
        return None
    if answer(sweep, index, report["label"]) is not None:
        return None
    value = report.get("value")
    return report["label"], float(value) if isinstance(value, (int, float)) else float("nan")


def answer(sweep: Sweep, index: int, label: int) -> bool | None:
    """The coordinator's answer to point index's report at label: prune it, or None yet."""
    answers = _read_mail(_mail(sweep, index, "decisions")) or {}
    value = answers.get(str(label))
    return value if isinstance(value, bool) else None


def post_answer(sweep: Sweep, index: int, label: int, prune: bool) -> None:
    """The coordinator's answer to point index's report at label, kept beside the others."""
    path = _mail(sweep, index, "decisions")
    answers = _read_mail(path) or {}
    answers[str(label)] = bool(prune)
    write_json(path, answers)


def point_run_id(sweep_id: str, index: int, total: int) -> str:
    """The run id of point `index` of a sweep of `total` points: <sweep id>-p<k>, k padded
    to the width of the largest index so that the ids sort in grid order."""
    width = len(str(max(total - 1, 0)))
    return folders.validate_id(f"{sweep_id}-p{index:0{width}d}")


def sweep_id_base(model: str, name: str = "") -> str:
    """The id a sweep started now would get (before any clash suffix)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"sweep-{model}-{stamp}" + (f"-{name}" if name else "")


def create_sweep(runs_dir: str | Path | None, base: str) -> Sweep:
    """Make a new, locked sweep directory named base (or base-2, base-3... on a clash)."""
    root = folders.runs_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        sweep_id = folders.validate_id(base if attempt == 1 else f"{base}-{attempt}")
        try:
            os.mkdir(root / sweep_id)
        except FileExistsError:
            continue
        sweep = Sweep(root, sweep_id)
        try:
            sweep.acquire()
        except BaseException:
            shutil.rmtree(root / sweep_id, ignore_errors=True)
            raise
        return sweep
    raise NnlabError(f"could not find a free sweep id for {base} in {root}")


def is_sweep(item_id: Any, runs_dir: str | Path | None = None) -> bool:
    """Whether item_id names a sweep (not a run) in runs_dir."""
    if not isinstance(item_id, str) or not folders.ID_RE.match(item_id) or item_id == "latest":
        return False
    path = folders.runs_root(runs_dir) / item_id
    return not path.is_symlink() and (path / folders.SWEEP_FILE).is_file()


def open_sweep(sweep_id: Any, runs_dir: str | Path | None = None) -> Sweep:
    """The existing sweep `sweep_id`, validated to lie inside runs_dir."""
    root = folders.runs_root(runs_dir)
    sweep_id = folders.validate_id(sweep_id)
    path = root / sweep_id
    if path.is_symlink() or (path.exists() and path.resolve().parent != root.resolve()):
        raise NnlabError(f"refusing sweep {sweep_id}: its directory points outside {root}")
    if not (path / folders.SWEEP_FILE).is_file():
        ids = list_sweep_ids(root)
        hint = closest_ids(sweep_id, ids, "nnlab summary") if ids else ""
        raise NnlabError(f"no sweep '{sweep_id}' in {root}{hint}")
    folders.check_tree(path)
    return Sweep(root, sweep_id)


def list_sweep_ids(runs_dir: str | Path | None = None) -> list[str]:
    """Ids of the sweep directories in runs_dir."""
    return folders.ids_holding(runs_dir, folders.SWEEP_FILE)


def ranked(rec: dict) -> list[dict]:
    """A sweep's points in the order commands show them side by side: a grid's in grid
    order; a search's best first (ranked_points)."""
    plan = rec.get("search")
    return ranked_points(rec["points"], plan["direction"]) if plan else list(rec["points"])


def ranked_points(points: list[dict], direction: str) -> list[dict]:
    """A search's points best first: finished ones by their metric (max or min is better),
    then pruned ones by their last report, then the rest; equals keep their order."""
    sign = -1 if direction == "max" else 1

    def key(p):
        group = {Status.FINISHED: 0, Status.PRUNED: 1}.get(p["status"], 2)
        value = p.get("value")
        return (group, value is None, sign * value if value is not None else 0.0)

    return sorted(points, key=key)


MAX_SIDE_BY_SIDE = 16  # runs drawn side by side in one GIF (animate's panels)
MAX_ON_A_PAGE = 64  # runs side by side on a report's or a served page (canvases, not a figure)


@dataclass
class Expansion:
    """folders.Run ids with each sweep replaced by its usable points."""

    runs: list[str]  # at most the cap asked for
    first_sweep: Sweep | None  # the sweep the first id names, if it names one
    partial: list[tuple[Sweep, int, int]]  # (sweep, usable points, points) where some are not
    before_cap: int  # how many runs there were before the cap


def expand_sweeps(ids: list[str], runs_dir, usable, cap: int = MAX_SIDE_BY_SIDE) -> Expansion:
    """Each sweep id among ids replaced by its points whose folder `usable(path)` accepts;
    other ids kept as they are (opening them checks them); the first `cap` of them."""
    out, first, partial = [], None, []
    for k, item in enumerate(ids):
        if not is_sweep(item, runs_dir):
            out.append(item)
            continue
        sweep = open_sweep(item, runs_dir)
        first = sweep if k == 0 else first
        points = [p["run"] for p in ranked(sweep.record())]
        kept = [r for r in points if usable(sweep.root / r)]
        if len(kept) < len(points):
            partial.append((sweep, len(kept), len(points)))
        out.extend(kept)
    return Expansion(out[:cap], first, partial, len(out))
