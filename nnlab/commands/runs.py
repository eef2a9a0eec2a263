"""`nnlab runs ACTION ...`: label runs and sweeps (tags, a note), and move them into the
store's trash and back. Each action is one function of nnlab.store.labels or
nnlab.store.trash; this module reads the words typed and says what was done."""

from __future__ import annotations

from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError, did_you_mean
from nnlab.store import folders, labels, trash

# each action: its usage, and the fewest and most words after it (None: any number)
USAGE = {
    "tag": ("tag ID TAG [TAG ...]", 2, None),
    "untag": ("untag ID TAG [TAG ...]", 2, None),
    "note": ('note ID TEXT (note ID "" clears it)', 2, None),
    "rm": ("rm ID [ID ...]", 1, None),
    "restore": ("restore ID [ID ...]", 1, None),
    "trash": ("trash", 0, 0),
    "empty-trash": ("empty-trash", 0, 0),
}


def _labelled(item_id, runs_dir) -> folders.Folder:
    """The run or sweep to label, made by nnlab and inside the store."""
    root = folders.runs_root(runs_dir)
    if item_id == "latest" or not (root / str(item_id) / folders.SWEEP_FILE).is_file():
        return folders.open_run(item_id, root)  # one line for an unknown or hostile id
    from nnlab.store import sweeps

    return sweeps.open_sweep(item_id, root)


def _tags(item_id, words: list[str], runs_dir, remove: bool) -> str:
    folder = _labelled(item_id, runs_dir)
    new = labels.change(folder, **({"remove": words} if remove else {"add": words}))
    return f"{folder.id}\t{' '.join(new.tags)}"


def _note(item_id, words: list[str], runs_dir) -> str:
    folder = _labelled(item_id, runs_dir)
    labels.change(folder, note=" ".join(words))
    return folder.id


def _move(move, ids: list[str], runs_dir, where: str) -> str:
    """Move each id (trash.remove or trash.restore); the ids moved on stdout, even when a
    later one is refused (said before the error), and how many on stderr."""
    moved = []
    try:
        for item in ids:
            moved += move(item, runs_dir)
    except NnlabError:
        if moved:
            print("\n".join(moved), flush=True)
        raise
    if moved:
        stderr_console().print(f"{len(moved)} moved {where}")
    return "\n".join(moved)


def _empty(runs_dir) -> str:
    gone = trash.empty(runs_dir)
    stderr_console().print(f"{len(gone)} deleted for good from the trash")
    return "\n".join(gone)


def command(words: list[str], runs_dir) -> str:
    """Do the action `words` name (its arguments after it); return what stdout shows."""
    if not words:
        raise NnlabError(f"give an action: nnlab runs {' | '.join(USAGE)} (see nnlab runs --help)")
    action, args = words[0], words[1:]
    if action not in USAGE:
        raise NnlabError(f"unknown action '{action}'{did_you_mean(action, list(USAGE))}")
    usage, least, most = USAGE[action]
    if len(args) < least or (most is not None and len(args) > most):
        raise NnlabError(f"usage: nnlab runs {usage}")
    if action in ("tag", "untag"):
        return _tags(args[0], args[1:], runs_dir, remove=action == "untag")
    if action == "note":
        return _note(args[0], args[1:], runs_dir)
    if action == "rm":
        return _move(
            trash.remove, args, runs_dir, "into the trash (nnlab runs restore ID moves one back)"
        )
    if action == "restore":
        return _move(trash.restore, args, runs_dir, "back into the store")
    if action == "trash":
        return "\n".join(trash.trashed(runs_dir))
    return _empty(runs_dir)
