"""What changed in the run store, told cheaply: a fingerprint of a run (or of the whole
store's listing) from file sizes and modification times alone, so that a page following a
training is told of a new snapshot, metric line or status within the poll interval, and a
page of the runs of a new run or a removed one. Correct for writers in other processes and
on other machines sharing the store: nothing is remembered but what the files say now."""

from __future__ import annotations

import os
from pathlib import Path

from nnlab.helpers.files import file_key
from nnlab.store import folders


def run_print(root: Path, run_id: str) -> tuple:
    """A run's fingerprint: its meta.json, metrics, labels and the recording's files (a new
    chunk, a rewritten probe) as sizes and times; a different value means something new."""
    run = folders.Run(root, run_id)
    parts = [
        file_key(run.meta_file),
        file_key(run.metrics),
        file_key(run.file(folders.LABELS_FILE)),
    ]
    try:
        parts += sorted((e.name, *file_key(e.path)) for e in os.scandir(run.latents))
    except OSError:
        pass
    return tuple(parts)


def store_print(root: Path) -> tuple:
    """The store's fingerprint: each run or sweep folder and its meta.json, sweep.json and
    labels (a new run, a removed one, a status that changed, a tag)."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return ()
    out = []
    for e in entries:
        if folders.ID_RE.match(e.name) and e.is_dir(follow_symlinks=False):
            path = Path(e.path)
            marks = (folders.META_FILE, folders.SWEEP_FILE, folders.LABELS_FILE)
            out.append((e.name, *(file_key(path / m) for m in marks)))
    return tuple(out)


def item_print(root: Path, item_id: str) -> tuple:
    """A run's fingerprint, or a sweep's: its sweep.json and each of its points' runs."""
    if not (root / item_id / folders.SWEEP_FILE).is_file():
        return run_print(root, item_id)
    points = sorted(i for i in folders.list_run_ids(root) if i.startswith(f"{item_id}-p"))
    return (file_key(root / item_id / folders.SWEEP_FILE), *(run_print(root, p) for p in points))
