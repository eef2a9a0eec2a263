"""The runs table: one typed row per run of a store, read from meta.json alone (no numpy,
no torch), as `nnlab summary` lists them and `nnlab.runs()` returns them."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from nnlab import families
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.files import file_key
from nnlab.store import folders, labels
from nnlab.store.meta import Status


@dataclass(frozen=True)
class RunRow:
    """One run as the runs table shows it. A run whose files cannot be read has status
    damaged, `problem` saying why, and nothing else known (damaged labels alone: the run
    as it is, without tags, `problem` saying why)."""

    id: str
    path: Path
    status: Status
    model: str = ""
    dataset: str = ""
    epochs: int = 0  # epochs done
    steps: int = 0  # steps done
    snapshots: int = 0  # snapshots on disk, as meta.json last counted them
    headline: str = ""  # the name of the run's headline number (its family's)
    value: float | None = None  # that number at the end, when it has one
    created: str = ""
    settings: str = ""  # how its config differs from its model's defaults
    sweep: str | None = None  # the sweep it is a point of
    tags: tuple[str, ...] = ()  # given with nnlab runs tag (nnlab.store.labels)
    note: str = ""
    problem: str = ""

    def __str__(self) -> str:
        return f"{self.id} · {self.model or '-'} · {self.status}"


def rows(runs_dir=None, cache: dict | None = None) -> list[RunRow]:
    """Every run of the store, oldest first (by creation time, then id). cache: a dict kept
    by a long-lived reader (nnlab serve), each run's row by the sizes and times of its
    meta.json and labels: only a run whose files changed is read again (a running run's
    lock is looked at each time: it can be killed without a word)."""
    root = folders.runs_root(runs_dir)
    out = []
    base = str(root)
    for run_id in folders.list_run_ids(root):
        # the keys from plain strings: pathlib's joins cost more than the stats themselves
        folder = os.path.join(base, run_id)
        key = (
            file_key(os.path.join(folder, folders.META_FILE)),
            file_key(os.path.join(folder, folders.LABELS_FILE)),
        )
        hit = cache.get(run_id) if cache is not None else None
        if hit is not None and hit[0] == key:
            row, written = hit[1], hit[2]
            if written == Status.RUNNING:  # its process may have gone since
                alive = folders.Run(root, run_id).is_running()
                row = replace(row, status=Status.RUNNING if alive else Status.INTERRUPTED)
            out.append(row)
            continue
        row, written = _row(folders.Run(root, run_id))
        if cache is not None:
            cache[run_id] = (key, row, written)
        out.append(row)
    if cache is not None:  # runs removed since: forgotten
        for gone in set(cache) - {r.id for r in out}:
            del cache[gone]
    out.sort(key=lambda r: (r.created, r.id))
    return out


def _row(run: folders.Run) -> tuple[RunRow, Status | None]:
    """A run's row, read from its files, and the status meta.json says."""
    try:
        folders.check_tree(run.path)  # one odd run is listed as damaged, not a hang
        meta = run.meta()
    except NnlabError as e:
        return RunRow(run.id, run.path, Status.DAMAGED, problem=str(e)), None
    try:
        given, problem = labels.read(run), ""
    except NnlabError as e:  # damaged labels: the run is still listed, the reason with it
        given, problem = labels.Labels(), str(e)
    family = families.FAMILIES.get(meta.model)
    name, value = family.headline(meta.final) if family else ("headline", None)
    row = RunRow(
        id=run.id,
        path=run.path,
        status=run.status(meta),
        model=meta.model,
        dataset=meta.dataset,
        epochs=meta.epochs_done,
        steps=meta.steps_done,
        snapshots=meta.snapshots,
        headline=name,
        value=value,
        created=meta.created,
        settings=meta.settings,
        sweep=(meta.sweep or {}).get("id"),
        tags=given.tags,
        note=given.note,
        problem=problem,
    )
    return row, meta.status
