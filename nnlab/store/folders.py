"""The run store: run ids, run directories, their locks, and the meta.json schema.

A run directory holds config.yaml, meta.json, metrics.jsonl, checkpoints/, latents/,
media/ and embeddings/. Every file in it is written and read through nnlab.helpers.files
(atomic replacement, safe loading).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnlab.helpers.errors import NnlabError, RunDamaged, RunError, closest_ids
from nnlab.helpers.files import (
    TMP_PREFIX,
    Lock,
    is_locked,
    read_json,
    read_text,
    sha256_text,
    write_json,
)
from nnlab.store import schema
from nnlab.store.meta import RUN_STATUSES, Meta, Status

FORMAT_VERSION = schema.FORMAT_VERSION
# The names inside a run's (or a sweep's) folder, here alone: every other module asks a
# Run or a Sweep for its paths.
META_FILE = "meta.json"  # a run's facts (nnlab.store.meta); the mark of a run's folder
CONFIG_FILE = "config.yaml"  # the run's config, saved verbatim
METRICS_FILE = "metrics.jsonl"  # nnlab.store.metrics
LOCK_FILE = "lock"  # held while a run trains or a sweep runs
CHECKPOINTS = "checkpoints"  # latest.pt, final.pt, epoch-N.pt (yours: step-N.pt)
LATEST, FINAL = "latest", "final"  # the checkpoints every trained run has, by name
LATENTS = "latents"  # the recording: probe.npz and chunk-NNNNNN.npz (nnlab.store.record)
PROBE_FILE = "probe.npz"
LAYERS = "layers"  # several layers' recording: chunk-NNNNNN.npz (nnlab.store.layers)
LAYERS_CACHE_FILE = "layer-metrics.json"  # their measures, cached (nnlab.analysis.cache)
MEDIA = "media"  # the pictures the commands write
EMBEDDINGS = "embeddings"  # nnlab embed's files
PROJECTIONS = "projections"  # nnlab project's kept 2-D frames
CACHE_FILE = "latent-metrics.json"  # the latent metrics, cached (nnlab.analysis.cache)
TASKS_FILE = "tasks.npz"  # a permuted run's pixel orders (nnlab.config.tasks)
SWEEP_FILE = "sweep.json"  # a sweep's folder holds it (nnlab.store.sweeps), a run's never
POINT_FILE = "point.json"  # a sweep point's run holds it from its first moment: whose it is
JOURNAL_FILE = "study.journal"  # a search's Optuna journal, in its sweep's folder
LABELS_FILE = "labels.json"  # tags and a note a person gave (nnlab.store.labels)
LABELS_LOCK = "labels.lock"  # held while they change
TRASH = ".trash"  # removed runs and sweeps, in the store (nnlab.store.trash); never an id
# How often a training writes what it has logged and recorded so far, between checkpoints
# (nnlab train and nnlab.start alike): what `nnlab serve` shows is at most this old.
PUBLISH_SECONDS = 2.0
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: "$" would let a newline end it


def default_runs_dir() -> Path:
    """$NNLAB_RUNS, or ./runs."""
    return Path(os.environ.get("NNLAB_RUNS") or "runs")


def runs_root(runs_dir: str | Path | None) -> Path:
    """The runs directory as an absolute path (not created)."""
    return Path(runs_dir if runs_dir else default_runs_dir()).expanduser().absolute()


def now_iso() -> str:
    """The current local time, ISO 8601 with offset, to the millisecond (orders runs)."""
    return dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- ids and locks


def validate_id(run_id: Any) -> str:
    """Return run_id as text if it is a safe run id, else raise NnlabError."""
    if not isinstance(run_id, str):
        raise NnlabError(f"invalid run id {run_id!r}: run ids are text like vae-20260101-120000")
    if not ID_RE.match(run_id) or run_id.isdigit():
        shown = run_id if len(run_id) <= 80 else run_id[:77] + "..."
        raise NnlabError(
            f"invalid run id {shown!r}: use letters, digits, '.', '-' and '_' "
            "(at most 128, not only digits)"
        )
    return run_id


def holder_info(run_id: str) -> dict:
    """What a lock file records about its holder."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "run": run_id, "since": now_iso()}


# ---------------------------------------------------------------- runs


@dataclass
class Folder:
    """A run's or a sweep's directory inside a runs dir."""

    root: Path  # the runs dir
    id: str

    @property
    def path(self) -> Path:
        """The directory."""
        return self.root / self.id

    def file(self, *parts: str) -> Path:
        """A path inside the directory."""
        return self.path.joinpath(*parts)

    @property
    def media(self) -> Path:
        """The folder of the pictures the commands write."""
        return self.file(MEDIA)

    @property
    def lock_file(self) -> Path:
        """The lock held while it trains (a run) or runs (a sweep)."""
        return self.file(LOCK_FILE)


@dataclass
class Run(Folder):
    """A run directory inside a runs dir."""

    lock: Lock | None = field(default=None, repr=False)
    name_lock: Lock | None = field(default=None, repr=False)

    @property
    def meta_file(self) -> Path:
        """meta.json (read it with meta())."""
        return self.file(META_FILE)

    @property
    def config_file(self) -> Path:
        """config.yaml (read it with config())."""
        return self.file(CONFIG_FILE)

    @property
    def checkpoints(self) -> Path:
        """The checkpoints folder."""
        return self.file(CHECKPOINTS)

    def checkpoint_file(self, name: str) -> Path:
        """A checkpoint's file by name: latest, final, epoch-0003, step-00000060."""
        return self.checkpoints / f"{name}.pt"

    @property
    def latents(self) -> Path:
        """The latent recording folder."""
        return self.file(LATENTS)

    @property
    def layers(self) -> Path:
        """The recording of several layers (--record_layers), beside the latents' probe."""
        return self.file(LAYERS)

    @property
    def layers_cache_file(self) -> Path:
        """The per-layer measures' cache."""
        return self.file(LAYERS_CACHE_FILE)

    @property
    def metrics(self) -> Path:
        """The metrics log (see nnlab.store.metrics)."""
        return self.file(METRICS_FILE)

    @property
    def embeddings(self) -> Path:
        """nnlab embed's folder."""
        return self.file(EMBEDDINGS)

    @property
    def projections(self) -> Path:
        """nnlab project's folder of kept 2-D frames."""
        return self.file(PROJECTIONS)

    @property
    def cache_file(self) -> Path:
        """The latent-metrics cache."""
        return self.file(CACHE_FILE)

    @property
    def tasks_file(self) -> Path:
        """A permuted run's pixel orders."""
        return self.file(TASKS_FILE)

    def meta(self) -> Meta:
        """meta.json, checked for a format this nnlab can read and against its seal."""
        meta = read_json(self.meta_file)
        fmt = meta.get("format")
        if not isinstance(fmt, int):
            raise RunDamaged(f"{self.file('meta.json')}: damaged (no format version)")
        if fmt > FORMAT_VERSION:
            raise RunError(
                f"run {self.id} was written by a newer nnlab (format {fmt}; this nnlab reads "
                f"format {FORMAT_VERSION}): upgrade nnlab to read it"
            )
        schema.check_meta(meta, self.meta_file)
        if "checksum" in meta:  # runs written before checksums existed have none
            sealed = {k: v for k, v in meta.items() if k != "checksum"}
            if meta["checksum"] != schema.meta_checksum(sealed):
                raise RunDamaged(f"{self.file('meta.json')}: damaged (its checksum differs)")
        return Meta.from_json(meta)

    def write_meta(self, meta: Meta | dict) -> None:
        """Replace meta.json atomically, sealed with a checksum of its other values (a dict
        is written as it is: the tests plant odd values so)."""
        obj = meta.to_json() if isinstance(meta, Meta) else meta
        obj = {k: v for k, v in obj.items() if k != "checksum"}
        write_json(self.meta_file, {**obj, "checksum": schema.meta_checksum(obj)})

    def update_meta(self, **changes) -> Meta:
        """Read, change and rewrite meta.json (its status changes through begin and end)."""
        if "status" in changes:
            raise ValueError("a run's status changes through Run.begin() and Run.end()")
        return self._rewrite(changes)

    def begin(self) -> Meta:
        """Mark the run running: a new training, or a resume (which has no end yet)."""
        return self._rewrite({"status": Status.RUNNING, "ended": None, "updated": now_iso()})

    def end(self, status: Status | str, *, ended: str | None = None, **facts) -> Meta:
        """Mark how the run stopped, with the facts that come with it (final, pruned): the
        only place, with begin, where a run's status changes. Interrupted keeps no end
        time unless given (a training can resume); every other status ends now."""
        status = Status(status)
        if status not in RUN_STATUSES or status == Status.RUNNING:
            raise ValueError(
                f"a run ends finished, interrupted, diverged, failed or pruned, not {status}"
            )
        now = now_iso()
        if ended is None and status != Status.INTERRUPTED:
            ended = now
        changes = {"status": status, "updated": now, **facts}
        return self._rewrite(changes if ended is None else {**changes, "ended": ended})

    def _rewrite(self, changes: dict) -> Meta:
        meta = self.meta().changed(**changes)
        self.write_meta(meta)
        return meta

    def config(self, meta: dict | None = None):
        """The run's saved config, rebuilt as its dataclass (checked against meta.json's
        digest: `meta` when the caller has read it already)."""
        from nnlab.config.config import from_yaml

        path = self.config_file
        try:
            text = read_text(path)
        except FileNotFoundError:
            raise RunDamaged(f"{path}: missing") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RunDamaged(f"{path}: damaged ({e})") from None
        expected = (self.meta() if meta is None else meta).config_sha256
        if expected and sha256_text(text) != expected:
            raise RunDamaged(f"{path}: damaged or edited (its checksum differs from meta.json's)")
        try:
            return from_yaml(text, str(path))
        except NnlabError as e:
            raise RunError(str(e)) from None

    def status(self, meta: Meta) -> Status:
        """meta.json's status, except that a 'running' run no process holds is
        'interrupted' (killed, or its machine stopped)."""
        if meta.status == Status.RUNNING and not self.is_running():
            return Status.INTERRUPTED
        return meta.status

    def resumable_step(self) -> int:
        """The step of the latest complete checkpoint, as meta.json records it (0 if unread)."""
        try:
            return self.meta().resumable_step
        except NnlabError:
            return 0

    def is_running(self) -> bool:
        """True when a training process holds this run's lock."""
        return is_locked(self.lock_file)

    def acquire(self) -> None:
        """Lock the run for training, or raise naming the holder."""
        self.lock = Lock(self.lock_file, f"run {self.id}")
        self.lock.acquire(holder_info(self.id))

    def release(self) -> None:
        """Release the training lock (and the name lock, if this process took one)."""
        for lock in (self.lock, self.name_lock):
            if lock:
                lock.release()
        self.lock = self.name_lock = None

    def clean_temp_files(self) -> int:
        """Delete temp files left by an interrupted write; returns how many."""
        n = 0
        for p in self.path.rglob(TMP_PREFIX + "*"):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
        return n


def open_run(run_id: Any, runs_dir: str | Path | None = None) -> Run:
    """The existing run `run_id` ('latest' for the newest), validated to lie inside runs_dir."""
    root = runs_root(runs_dir)
    if run_id == "latest":
        ids = list_run_ids(root)
        if not ids:
            raise RunError(f"no runs in {root}")
        run_id = max(ids, key=lambda i: (_created(root / i), i))
    run_id = validate_id(run_id)
    path = root / run_id
    if path.is_symlink() or (path.exists() and path.resolve().parent != root.resolve()):
        raise NnlabError(f"refusing run {run_id}: its directory points outside {root}")
    if (path / SWEEP_FILE).is_file() and not (path / META_FILE).exists():
        raise NnlabError(
            f"'{run_id}' is a sweep, not a run: give one of its runs, e.g. {run_id}-p0 "
            f"(nnlab summary {run_id} lists them)"
        )
    if not path.is_dir():
        hint = ""
        ids = list_run_ids(root)
        if ids:
            hint = closest_ids(run_id, ids, "nnlab summary")
        raise NnlabError(f"no run '{run_id}' in {root}{hint}")
    check_tree(path)
    return Run(root, run_id)


@dataclass
class Opened:
    """A run opened for reading: its folder, meta.json and config, each read and checked
    once (commands pass this along instead of reading the files again)."""

    run: Run
    meta: Meta
    cfg: Any  # the run's config dataclass (nnlab.families)

    @property
    def id(self) -> str:
        """The run's id."""
        return self.run.id

    def require_rebuildable(self, command: str) -> None:
        """Refuse, in one line, a command that rebuilds the network of a run nnlab cannot
        rebuild (one written by the user's own code)."""
        from nnlab import families

        if not families.of(self.cfg).rebuildable:
            raise NnlabError(
                f"{command} rebuilds the network from the run's config, and run {self.id} was "
                "written by your own code, whose network nnlab cannot rebuild (summary, "
                "animate, report and export read its recording)"
            )


def read_run(run: Any, runs_dir: str | Path | None = None) -> Opened:
    """Open a run (an id, 'latest', or a Run) and read its meta.json and config."""
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    meta = run.meta()
    return Opened(run, meta, run.config(meta))


def check_tree(path: Path) -> None:
    """Refuse a run directory that holds anything but plain files and folders.

    Every command opens its run through this check, so nothing nnlab reads, writes,
    truncates or deletes inside a run can be redirected: a symbolic link (to a file or a
    folder, at any depth) would send it outside the store, and a special file (a FIFO, a
    socket, a device) would hang a reader or never end. Raises RunError naming the first.
    """
    # os.scandir's entries know their type from the directory listing itself (no stat
    # call per file on Linux): `nnlab summary` checks every run of a store this way.
    folders = [os.fspath(path)]
    while folders:
        with os.scandir(folders.pop()) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if e.is_symlink():
                raise RunError(
                    f"{e.path}: a symbolic link inside a run; nnlab never follows links in a "
                    "run (replace it with the file itself)"
                )
            if e.is_dir(follow_symlinks=False):
                folders.append(e.path)
            elif not e.is_file(follow_symlinks=False):
                raise RunDamaged(
                    f"{e.path}: not a regular file (a FIFO, socket or device); refused"
                )


def _created(path: Path) -> str:
    try:
        check_tree(path)
        return str(json.loads((path / META_FILE).read_text()).get("created", ""))
    except (OSError, ValueError, RunError, AttributeError):
        return ""


def list_run_ids(runs_dir: str | Path | None = None) -> list[str]:
    """Ids of the run directories in runs_dir (symlinks and odd names skipped)."""
    return ids_holding(runs_dir, META_FILE)


def ids_holding(runs_dir: str | Path | None, marker: str) -> list[str]:
    """Names of the folders in runs_dir that hold `marker` (symlinks, odd names skipped)."""
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    # scandir's entries know whether they are folders (and not links) without a stat each:
    # a store of 10,000 runs is listed in a third of the time pathlib took
    with os.scandir(root) as entries:
        return sorted(
            e.name
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and ID_RE.match(e.name)
            and os.path.exists(os.path.join(e.path, marker))
        )


def lock_name(runs_dir: str | Path | None, model: str, name: str) -> Lock | None:
    """Take the lock on a run name (--name, whatever the model), or raise RunError naming
    its holder.

    Taken before the data is loaded, so a second training of the same name fails at once.
    """
    if not name:
        return None
    locks = runs_root(runs_dir) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # the name alone: a training named X is refused beside any running X (a VAE, a
    # classifier, your own loop's), as the run-store page says
    lock = Lock(locks / f"name-{name}.lock", f"run name '{name}'")
    lock.acquire(holder_info(f"{model}-*-{name}"))
    return lock


def holds_only_a_start(path: Path) -> bool:
    """True when a folder holds nothing but what a kill can leave before a point's marker
    is whole: nothing, the marker's temp file, or a lock (an older nnlab took the lock
    before it wrote the marker). Nothing in it can be lost."""
    try:
        names = [p.name for p in path.iterdir()]
    except OSError:
        return False
    partial = f"{TMP_PREFIX}{POINT_FILE}"
    return all(n == LOCK_FILE or n.startswith(partial) for n in names)


def create_run(
    runs_dir: str | Path | None,
    model: str,
    name: str = "",
    name_lock: Lock | None = None,
    run_id: str | None = None,
    point: dict | None = None,
) -> Run:
    """Make a new, locked run directory `<model>-<yyyymmdd-hhmmss>[-<name>]`, or exactly
    `run_id` when given (a sweep names its points; `point`, {"id", "point"}, is written
    into it at once as POINT_FILE, the proof a sweep made it).

    With a name, a second training of the same model and name started while the first
    runs is refused (the name lock); without, a clashing id gets a -2, -3... suffix.
    """
    root = runs_root(runs_dir)
    if root.exists() and not root.is_dir():
        raise NnlabError(f"{root}: not a folder (the run store is a folder)")
    root.mkdir(parents=True, exist_ok=True)
    if name and name_lock is None:
        name_lock = lock_name(root, model, name)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{model}-{stamp}" + (f"-{name}" if name else "")
    for attempt in range(1, 100):
        if run_id is not None:
            chosen = validate_id(run_id)
        else:
            chosen = validate_id(base if attempt == 1 else f"{base}-{attempt}")
        try:
            os.mkdir(root / chosen)
        except FileExistsError:
            if run_id is not None:
                raise RunError(f"run {run_id} exists already in {root}") from None
            continue
        run = Run(root, chosen)
        try:
            if point is not None:  # first: a kill after it leaves a folder provably the sweep's
                write_json(run.file(POINT_FILE), point)
            run.acquire()
        except BaseException:  # e.g. a full disk at the lock write: leave no empty run
            shutil.rmtree(root / chosen, ignore_errors=True)
            raise
        run.name_lock = name_lock  # held until training ends
        return run
    raise NnlabError(f"could not find a free run id for {base} in {root}")
