"""Removed runs and sweeps: `nnlab runs rm` moves them into the store's trash folder (one
rename each: nothing is copied, nothing deleted), `nnlab runs restore` moves them back, and
`nnlab runs empty-trash` deletes them for good.

Only what nnlab made is moved (a folder holding meta.json or sweep.json), never a run that
trains (its lock is taken for the move) nor one point of a sweep alone (the sweep is
removed with all its points, and restored with them).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nnlab.helpers.errors import NnlabError, RunError, closest_ids
from nnlab.helpers.files import Lock
from nnlab.store import folders


def trash_dir(runs_dir) -> Path:
    """The store's trash folder (not created)."""
    return folders.runs_root(runs_dir) / folders.TRASH


def _sweep_of(path: Path) -> str | None:
    """The sweep a run folder is a point of (its point.json says so), or None."""
    try:
        point = json.loads((path / folders.POINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    sweep = point.get("id") if isinstance(point, dict) else None
    return sweep if isinstance(sweep, str) and folders.ID_RE.match(sweep) else None


def _kind(path: Path) -> str | None:
    """ "run", "sweep", or None for a folder nnlab did not make (or a link)."""
    if path.is_symlink() or not path.is_dir():
        return None
    if (path / folders.META_FILE).is_file():
        return "run"
    if (path / folders.SWEEP_FILE).is_file():
        return "sweep"
    return None


def _points(where: Path, sweep_id: str) -> list[str]:
    """The run folders in `where` that are points of the sweep."""
    if not where.is_dir():
        return []
    return sorted(
        p.name
        for p in where.iterdir()
        if p.name.startswith(f"{sweep_id}-p") and _kind(p) == "run" and _sweep_of(p) == sweep_id
    )


def _lock_all(root: Path, ids: list[str]) -> list[Lock]:
    """Take the lock of each run or sweep, or release them all and raise naming the one in
    use (a training, a running sweep)."""
    taken: list[Lock] = []
    try:
        for item in ids:
            lock = Lock(root / item / folders.LOCK_FILE, f"{_kind(root / item)} {item}")
            lock.acquire(folders.holder_info(item))
            taken.append(lock)
    except RunError as e:
        for lock in taken:
            lock.release()
        raise RunError(f"{e}: stop it first; nothing removed") from None
    return taken


def _move(source: Path, target: Path, ids: list[str], clash: str) -> None:
    """Rename each id from source to target, after checking that none is there already."""
    target.mkdir(parents=True, exist_ok=True)
    for item in ids:
        if os.path.lexists(target / item):
            raise NnlabError(clash.format(id=item))
    for item in ids:
        os.rename(source / item, target / item)


def _resolve(item_id, root: Path) -> str:
    """A run or sweep id of the store ('latest' for the newest run), validated."""
    if item_id == "latest":
        return folders.open_run("latest", root).id
    return folders.validate_id(item_id)


def remove(item_id, runs_dir=None) -> list[str]:
    """Move a run, or a sweep with all its points, into the trash; return the ids moved."""
    root = folders.runs_root(runs_dir)
    item = _resolve(item_id, root)
    kind = _kind(root / item)
    if kind is None:
        if not os.path.lexists(root / item):
            known = folders.list_run_ids(root) + folders.ids_holding(root, folders.SWEEP_FILE)
            hint = closest_ids(item, known, "nnlab summary") if known else ""
            raise NnlabError(f"no run or sweep '{item}' in {root}{hint}")
        raise NnlabError(f"{root / item}: not a run or a sweep nnlab made; left as it is")
    sweep = _sweep_of(root / item) if kind == "run" else None
    if sweep is not None and _kind(root / sweep) == "sweep":
        raise NnlabError(
            f"run {item} is a point of sweep {sweep}: remove the sweep with its points "
            f"(nnlab runs rm {sweep})"
        )
    ids = [item, *(_points(root, item) if kind == "sweep" else [])]
    locks = _lock_all(root, ids)
    try:
        clash = "{id} is in the trash already: restore or empty it first (nothing removed)"
        _move(root, root / folders.TRASH, ids, clash)
    finally:
        for lock in locks:
            lock.release()
    return ids


def restore(item_id, runs_dir=None) -> list[str]:
    """Move a run, or a sweep with its points, back from the trash; return the ids."""
    root = folders.runs_root(runs_dir)
    trash = root / folders.TRASH
    item = folders.validate_id(item_id)
    kind = _kind(trash / item)
    if kind is None:
        there = trashed(runs_dir)
        hint = closest_ids(item, there, "nnlab runs trash") if there else ""
        raise NnlabError(f"no run or sweep '{item}' in the trash of {root}{hint}")
    sweep = _sweep_of(trash / item) if kind == "run" else None
    if sweep is not None and _kind(trash / sweep) == "sweep":
        raise NnlabError(f"run {item} is a point of sweep {sweep}: restore the sweep")
    ids = [item, *(_points(trash, item) if kind == "sweep" else [])]
    _move(trash, root, ids, "{id} exists in the store already: nothing restored")
    return ids


def trashed(runs_dir=None) -> list[str]:
    """The ids of the runs and sweeps in the trash."""
    trash = trash_dir(runs_dir)
    if not trash.is_dir():
        return []
    return sorted(p.name for p in trash.iterdir() if folders.ID_RE.match(p.name))


def empty(runs_dir=None) -> list[str]:
    """Delete everything in the trash for good; return the ids deleted."""
    trash = trash_dir(runs_dir)
    if not trash.is_dir() or trash.is_symlink():
        return []
    gone = []
    for p in sorted(trash.iterdir()):
        if p.is_symlink() or not p.is_dir():
            p.unlink()  # a link is removed, never followed
        else:
            shutil.rmtree(p)
        gone.append(p.name)
    return gone
