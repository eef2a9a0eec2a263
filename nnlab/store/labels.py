"""A run's or a sweep's labels: tags and a note a person gives it (`nnlab runs tag`,
`nnlab runs note`), kept in their own file beside meta.json, so that labelling a run never
races the process that trains it. Read with the runs table and by the Python API."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nnlab.helpers.errors import NnlabError, RunDamaged
from nnlab.helpers.files import Lock, read_json, write_json
from nnlab.store import folders

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}\Z")  # \Z: no newline at the end
MAX_TAGS = 64
MAX_NOTE = 10_000  # characters


@dataclass(frozen=True)
class Labels:
    """The tags (in the order given) and the note of a run or a sweep."""

    tags: tuple[str, ...] = ()
    note: str = ""


def check_tag(tag: str) -> str:
    """A tag as given, or a one-line refusal saying what a tag may hold."""
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        shown = repr(tag) if len(str(tag)) <= 70 else repr(str(tag)[:67] + "...")
        raise NnlabError(
            f"tag {shown}: use letters, digits and . _ : + - (at most 64, starting with a "
            "letter or digit)"
        )
    return tag


def check_note(note: str) -> str:
    """A note as given, or a one-line refusal (too long, or holding a NUL)."""
    if "\0" in note:
        raise NnlabError("note: it holds a NUL character")
    if len(note) > MAX_NOTE:
        raise NnlabError(f"note: {len(note):,} characters; at most {MAX_NOTE:,}")
    return note


def read(folder: folders.Folder) -> Labels:
    """The labels of a run or a sweep (none when it has no labels file); a damaged file
    raises RunDamaged naming it."""
    path = folder.file(folders.LABELS_FILE)
    if not path.exists():
        return Labels()
    obj = read_json(path)
    tags, note = obj.get("tags", []), obj.get("note", "")
    ok = isinstance(tags, list) and len(tags) <= MAX_TAGS and isinstance(note, str)
    if not ok or not all(isinstance(t, str) and TAG_RE.match(t) for t in tags):
        raise RunDamaged(f"{path}: damaged (tags must be a list of tags, note a text)")
    if len(note) > MAX_NOTE or "\0" in note:
        raise RunDamaged(f"{path}: damaged (a note of at most {MAX_NOTE:,} characters)")
    return Labels(tuple(tags), note)


def change(folder: folders.Folder, *, add=(), remove=(), note: str | None = None) -> Labels:
    """Add and remove tags, or set the note (an empty note clears it); one writer at a
    time (a lock of its own), the file replaced atomically. Returns the new labels."""
    add = [check_tag(t) for t in add]
    remove = [check_tag(t) for t in remove]
    if note is not None:
        check_note(note)
    lock = Lock(folder.file(folders.LABELS_LOCK), f"the labels of {folder.id}")
    lock.acquire(folders.holder_info(folder.id))
    try:
        old = read(folder)
        tags = [t for t in old.tags if t not in remove]
        tags += [t for t in dict.fromkeys(add) if t not in tags]
        if len(tags) > MAX_TAGS:
            raise NnlabError(f"{folder.id}: at most {MAX_TAGS} tags (it would have {len(tags)})")
        new = Labels(tuple(tags), old.note if note is None else note)
        write_json(folder.file(folders.LABELS_FILE), {"tags": list(new.tags), "note": new.note})
        return new
    finally:
        lock.release()
