"""A sweep's point trained in a worker: its config rebuilt from sweep.json, its run started
or resumed, its outcome reported; and the local worker process that trains point after
point (`python -m nnlab.commands.worker`), stopping when its coordinator dies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from nnlab.commands import executors
from nnlab.config import config
from nnlab.helpers import files
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError, RunError, TrainingStopped
from nnlab.store import folders, sweeps
from nnlab.store.meta import Status
from nnlab.training.pruning import Pruned


def point_config(rec: dict, index: int, where: str = folders.SWEEP_FILE) -> config.Config:
    """The config of point `index`: the recorded base with the point's values, validated."""
    base = config.from_yaml(rec["base"], f"{where} (base)")
    cls = type(base)
    values = config.coerce(cls, dict(rec["points"][index]["values"]), f"{where} point {index}")
    if "name" in values or "model" in values:
        raise RunError(f"{where}: damaged (point {index} sets name or model)")
    return config.make(cls, {**dataclasses.asdict(base), **values})


def run_point(sweep: sweeps.Sweep, rec: dict, index: int, threads: int, console=None) -> str:
    """Train point `index` of a sweep (rec: its sweep.json) to its end: start its run, or
    resume it from its checkpoint when an earlier worker was stopped or killed. Returns
    the run id."""
    import torch

    from nnlab.commands import train

    console = console or stderr_console()
    point = rec["points"][index]
    run_id = folders.validate_id(point["run"])
    cfg = point_config(rec, index, str(sweep.file(folders.SWEEP_FILE)))
    path = sweep.root / run_id
    own = {"id": sweep.id, "point": index}
    if path.is_dir() and (path / folders.META_FILE).exists():
        run = folders.open_run(run_id, sweep.root)
        meta = run.meta()
        if meta.sweep != own:
            raise RunError(
                f"run {run_id} is not point {index} of sweep {sweep.id} (its meta.json says "
                f"{meta.sweep or 'it belongs to no sweep'}); nnlab leaves it alone"
            )
        status = meta.status
        if status in (Status.FINISHED, Status.PRUNED):  # a pruned point is done: the search said so
            return run_id
        if status == Status.DIVERGED:
            raise TrainingStopped(f"run {run_id} diverged earlier; not retried", exit_code=1)
        torch.set_num_threads(max(1, int(threads)))  # the worker's share of the cores
        return train.resume(
            run_id, sweep.root, console=console, reports=_reports(sweep, rec, index)
        )
    if path.exists() or path.is_symlink():
        # killed between making the directory and writing meta.json: nothing to resume,
        # and removed only when its marker proves that this sweep made it for this point
        _remove_unstarted_point(sweep, path, own)
    torch.set_num_threads(max(1, int(threads)))
    return train.start(
        cfg,
        sweep.root,
        console,
        run_id=run_id,
        sweep={"id": sweep.id, "point": index},
        reports=_reports(sweep, rec, index),
    )


def _reports(sweep: sweeps.Sweep, rec: dict, index: int):
    """A search's point with a pruner reports its metric (training.pruning.Reports) and
    waits for the coordinator's answer; None for a grid's point or a search without one."""
    search = rec.get("search")
    if not search or search.get("prune", "none") == "none":
        return None
    from nnlab.training.pruning import Reports

    def decide(label: int, value: float, stopping) -> bool:
        sweeps.post_report(sweep, index, label, value)
        if _WAKE is not None:  # a local worker: wake its coordinator's loop now
            try:
                _WAKE.write(json.dumps({"reported": index}) + "\n")
            except OSError:
                pass  # the coordinator is gone: stopping() will say so
        delay = 0.002
        while True:
            prune = sweeps.answer(sweep, index, label)
            if prune is not None:
                return prune
            if stopping():  # Ctrl-C, or the coordinator died (SIGTERM): stop, not prune
                return False
            time.sleep(delay)
            delay = min(2 * delay, 0.05)

    return Reports(search["metric"], float(search.get("prune_every") or 0), decide)


def _remove_unstarted_point(sweep: sweeps.Sweep, path: Path, own: dict) -> None:
    """Remove a point's folder that a killed worker left before its run began, after
    checking that it is one: a plain folder holding this point's marker and no sweep.json,
    or one killed before the marker was whole (folders.holds_only_a_start)."""
    marker = path / folders.POINT_FILE
    ours = False
    if path.is_dir() and not path.is_symlink() and not (path / folders.SWEEP_FILE).exists():
        if not marker.exists():  # killed before the marker was whole
            ours = folders.holds_only_a_start(path)
        else:
            try:
                ours = files.read_json(marker) == own
            except NnlabError:
                ours = False
    if not ours:
        raise RunError(
            f"{path} is in the way of point {own['point']} of sweep {sweep.id} and nnlab did "
            "not make it for that point; nnlab leaves it alone (move it away to run the point)"
        )
    if folders.Run(sweep.root, path.name).is_running():
        raise RunError(f"run {path.name} is being set up by another process")
    shutil.rmtree(path)


def run_point_task(runs_dir: str, sweep_id: str, index: int, threads: int) -> dict:
    """run_point with its output appended to the point's log in the sweep, and the outcome
    returned as {"status", "error"}: a local worker's and a Ray task's unit of work (a
    killed worker is the pool's, or Ray's, to retry)."""
    sweep = sweeps.open_sweep(sweep_id, runs_dir)
    rec = sweep.record()  # read once a point: the worker may live through many points
    log = executors.log_path(sweep, rec["points"][index]["run"])
    with open(log, "a", encoding="utf-8") as f:
        console = Console(file=f, width=100, soft_wrap=True)
        try:
            run_point(sweep, rec, index, threads, console)
            status = sweep.point_status(rec, index)  # finished, or pruned earlier
            return {
                "status": Status.PRUNED if status == Status.PRUNED else Status.FINISHED,
                "error": None,
            }
        except Pruned as e:
            console.print(f"nnlab: {e}")
            return {"status": Status.PRUNED, "error": None}
        except TrainingStopped as e:
            console.print(f"nnlab: {e}")
            if e.exit_code == 130:
                return {"status": Status.INTERRUPTED, "error": None}
            status = sweep.point_status(rec, index)
            return {
                "status": Status.DIVERGED if status == Status.DIVERGED else Status.FAILED,
                "error": str(e),
            }
        except NnlabError as e:
            console.print(f"nnlab: error: {e}")
            return {"status": Status.FAILED, "error": str(e)}
        except OSError as e:  # e.g. a full disk while setting the run up
            console.print(f"nnlab: error: {e}")
            return {
                "status": Status.FAILED,
                "error": f"{e.filename or ''} {e.strerror or e}".strip(),
            }


_WAKE = None  # a local worker's line to its coordinator, once main() has set it up


def main(argv: list[str] | None = None) -> None:
    """A local worker: `python -m nnlab.commands.worker RUNS_DIR SWEEP_ID THREADS` reads point
    indices from stdin, one per line, trains each (run_point_task) and writes its outcome as one
    JSON line on stdout; it ends at the end of stdin, or after a point was interrupted.

    One worker trains many points, so torch's start-up (seconds) is paid once per worker,
    not once per point.
    """
    global _WAKE

    runs_dir, sweep_id, threads = (argv if argv is not None else sys.argv[1:])[:3]
    _stop_with_coordinator()
    # only the outcomes go to the coordinator: anything else printed goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _WAKE = out
    try:
        for line in sys.stdin:
            index = int(line)
            outcome = run_point_task(runs_dir, sweep_id, index, int(threads))
            out.write(json.dumps({"index": index, **outcome}) + "\n")
            if outcome["status"] == Status.INTERRUPTED:
                sys.exit(130)
    except KeyboardInterrupt:  # stopped between points (or while starting)
        sys.exit(130)
    except BrokenPipeError:  # the coordinator is gone: the point's run says how it ended
        sys.exit(130)


def _stop_with_coordinator() -> None:
    """Have the kernel send this worker SIGTERM when its coordinator dies (Linux's
    PR_SET_PDEATHSIG), so that a killed `nnlab sweep` leaves no worker training: the
    trainer stops after its step, checkpoints and marks the run interrupted, and the next
    --resume goes on from there. Elsewhere the worker still ends at the end of its stdin."""
    import ctypes
    import ctypes.util
    import signal

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # 1: PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError, TypeError):
        return
    expected = os.environ.get(executors.COORDINATOR_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):  # it died before prctl
        sys.exit(130)


if __name__ == "__main__":
    main()
