"""`nnlab sweep`: a grid of configs trained as ordinary runs, and the sweep's own record.

A sweep directory (beside the runs, `sweep-<model>-<stamp>[-name]`) holds sweep.json (the
command line, the base config, the grid, each point's run id and status), logs/ (each
point's progress and errors) and media/. Each point is a run named `<sweep id>-p<k>`,
complete and resumable on its own. This process (the coordinator) is the only writer of
sweep.json; workers (local processes, or Ray tasks: nnlab.commands.executors) train the points
through run_point, which starts a point's run or resumes it from its checkpoint, so a
sweep that was stopped, or a worker that was killed, goes on where it was.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from nnlab.commands import executors
from nnlab.config import config, grid
from nnlab.helpers import files, options
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError, RunError, TrainingStopped, did_you_mean
from nnlab.store import folders, sweeps
from nnlab.training import tensorboard

EXECUTORS = ("local", "ray")
DONE = ("finished", "diverged")  # a resume skips these: a diverged run would diverge again


@dataclasses.dataclass
class Settings:
    """How the points are run: the executor, its workers and their torch threads."""

    executor: str = "local"
    jobs: int = 1
    threads: int = 1
    address: str = "auto"
    retries: int = 2  # a killed worker's point is resumed this many times before it fails

    def as_record(self) -> dict:
        """The settings as sweep.json records them."""
        return dataclasses.asdict(self)


def command(
    model: str | None,
    opt_list: list[tuple[str, str]],
    fields: list[tuple[str, str]],
    argv: list[str] | None,
) -> str:
    """`nnlab sweep MODEL --KEY=v1,v2 ...` or `--resume SWEEP_ID`: the command's own options
    and the config fields, each as typed and in order; returns the sweep id (or, with
    --dry_run, the plan)."""
    opts = dict(opt_list)
    for key in opts:
        if sum(k == key for k, _ in opt_list) > 1:
            raise NnlabError(f"--{key} is given twice")
    runs_dir = opts.get("runs_dir")
    if "resume" in opts:
        sweep_id = opts["resume"]
        if sweep_id in ("", "true"):
            raise NnlabError("--resume needs a sweep id: nnlab sweep --resume SWEEP_ID")
        extra = [k for k, _ in fields] + [k for k in ("preset", "config", "dry_run") if k in opts]
        if model is not None or extra:
            shown = extra[0] if extra else "MODEL"
            raise NnlabError(
                f"--resume takes only --jobs, --executor, --address and --retries, not "
                f"{shown}: a sweep keeps its grid"
            )
        return resume(sweep_id, runs_dir, opts)
    return start(model, opts, fields, argv)


def start(model: str | None, opts: dict, fields: list[tuple[str, str]], argv) -> str:
    """A new sweep: the grid built and every point validated before anything is written,
    then run (or, with --dry_run, only its plan)."""
    runs_dir = opts.get("runs_dir")
    dry_run = options.parse_bool(opts.get("dry_run", False), "dry_run")
    the_grid = grid.build(model, fields, preset=opts.get("preset"), config_file=opts.get("config"))
    total = len(the_grid)
    if total > grid.MAX_POINTS and not options.parse_bool(opts.get("yes", False), "yes"):
        raise NnlabError(
            f"the grid has {total:,} points, more than {grid.MAX_POINTS:,}: check the values, "
            "or add --yes to run them all"
        )
    configs = the_grid.configs()  # every point validated before anything is written
    if any(c.tensorboard for c in configs):
        tensorboard.check_available("--tensorboard=true")
    settings = _settings(opts, None)
    base_id = sweeps.sweep_id_base(configs[0].model, the_grid.name)
    if dry_run:
        ids = [sweeps.point_run_id(base_id, i, total) for i in range(total)]
        stderr_console().print(
            f"dry run: {total:,} points of {configs[0].model} "
            f"({' × '.join(f'{len(v)} {k}' for k, v in the_grid.axes.items())}), "
            f"{settings.executor} executor; nothing written"
        )
        return grid.plan_table(the_grid, ids)
    with executors.session(settings) as session:  # before anything is written: fail fast
        sweep = sweeps.create_sweep(runs_dir, base_id)
        try:
            rec = _new_record(sweep, the_grid, configs[0], opts, settings, argv)
            sweep.write_record(rec)
            if session is not None:
                executors.check_storage(sweep, session)
        except BaseException:
            sweep.release()
            shutil.rmtree(sweep.path, ignore_errors=True)
            raise
        try:
            return _run(sweep, rec, settings, session, stderr_console())
        finally:
            sweep.release()


def resume(sweep_id: str, runs_dir=None, opts: dict | None = None) -> str:
    """Go on with a sweep: finished points are skipped, interrupted ones resumed from
    their checkpoints, the rest started."""
    sweep = sweeps.open_sweep(sweep_id, runs_dir)
    rec = sweep.record()
    settings = _settings(opts or {}, rec.get("settings"))
    with executors.session(settings) as session:
        return _resume(sweep, rec, settings, session)


def _resume(sweep: sweeps.Sweep, rec: dict, settings: Settings, session) -> str:
    sweep.acquire()
    try:
        if session is not None:
            executors.check_storage(sweep, session)
        console = stderr_console()
        for i in range(len(rec["points"])):
            rec["points"][i]["status"] = sweep.point_status(rec, i)
        todo = [i for i, p in enumerate(rec["points"]) if p["status"] not in DONE]
        skipped = [p["run"] for p in rec["points"] if p["status"] == "diverged"]
        if skipped:
            console.print(
                f"skipping {len(skipped)} diverged point(s), which would diverge again: "
                f"{', '.join(skipped)}",
                soft_wrap=True,
            )
        console.print(f"resuming sweep {sweep.id}: {len(todo)} of {len(rec['points'])} to run")
        rec["settings"] = settings.as_record()
        return _run(sweep, rec, settings, session, console)
    finally:
        sweep.release()


def _settings(opts: dict, recorded: dict | None) -> Settings:
    """The executor settings from the options typed (a resume keeps the recorded ones for
    what is not typed, so its runs use the same thread counts and stay bit-exact)."""
    base = Settings(**recorded) if recorded else None
    executor = str(opts.get("executor", base.executor if base else "local"))
    if executor not in EXECUTORS:
        hint = did_you_mean(executor, EXECUTORS)
        raise NnlabError(f"--executor: unknown value '{executor}'{hint}")
    cores = os.cpu_count() or 1
    if "jobs" in opts:
        jobs = options.positive_int(opts["jobs"], "jobs")
    else:
        jobs = base.jobs if base else cores
    if executor == "local" and jobs > 256:
        raise NnlabError(f"--jobs={jobs}: at most 256 local workers")
    retries = base.retries if base else 2
    if "retries" in opts:
        try:
            retries = int(opts["retries"])
        except ValueError:
            retries = -1
        if not 0 <= retries <= 100:
            raise NnlabError(f"--retries={opts['retries']}: expected a whole number from 0 to 100")
    # each worker its share of the cores: oversubscribed torch threads cost 10-30x here
    threads = max(1, cores // jobs) if executor == "local" else 1
    if base and "jobs" not in opts and executor == base.executor:
        threads = base.threads
    address = str(opts.get("address", base.address if base else "auto"))
    return Settings(executor, jobs, threads, address, retries)


def _new_record(sweep, the_grid: grid.Grid, first: config.Config, opts, settings, argv) -> dict:
    """sweep.json of a new sweep: every point pending."""
    now = folders.now_iso()
    total = len(the_grid)
    base = dataclasses.replace(first, name="")
    source = {"preset": opts["preset"]} if opts.get("preset") else {}
    if opts.get("config"):
        source = {"config": str(Path(opts["config"]).absolute())}
    return {
        "format": folders.FORMAT_VERSION,
        "kind": "sweep",
        "id": sweep.id,
        "model": first.model,
        "name": the_grid.name,
        "command": shlex.join(["nnlab", "sweep", *(argv or [])]),
        "created": now,
        "updated": now,
        "ended": None,
        "status": "running",
        "source": source,
        "settings": settings.as_record(),
        "base": config.to_yaml(base),
        "grid": {k: list(v) for k, v in the_grid.axes.items()},
        "points": [
            {
                "run": sweeps.point_run_id(sweep.id, i, total),
                "values": point,
                "status": "pending",
                "attempts": 0,
                "error": None,
            }
            for i, point in enumerate(the_grid.points())
        ],
    }


def point_config(rec: dict, index: int, where: str = "sweep.json") -> config.Config:
    """The config of point `index`: the recorded base with the point's values, validated."""
    base = config.from_yaml(rec["base"], f"{where} (base)")
    cls = type(base)
    values = config.coerce(cls, dict(rec["points"][index]["values"]), f"{where} point {index}")
    if "name" in values or "model" in values:
        raise RunError(f"{where}: damaged (point {index} sets name or model)")
    return config.make(cls, {**dataclasses.asdict(base), **values})


def _run(sweep: sweeps.Sweep, rec: dict, settings: Settings, session, console: Console) -> str:
    """Run the points not yet done, keep sweep.json up to date, and say how it ended."""
    todo = [i for i, p in enumerate(rec["points"]) if p["status"] not in DONE]
    rec.update(status="running", ended=None, updated=folders.now_iso())
    sweep.write_record(rec)
    t0 = time.perf_counter()
    console.print(
        f"sweep {sweep.id}: {len(todo)} point(s) on {_executor_words(settings)} · "
        f"logs in {sweep.file('logs')}",
        soft_wrap=True,
    )
    last_write = 0.0

    def on_event(index: int, status: str, error: str | None = None, attempt: bool = False):
        nonlocal last_write
        point = rec["points"][index]
        point["status"] = status
        if attempt:
            point["attempts"] = int(point.get("attempts") or 0) + 1
        if error is not None or status == "finished":
            point["error"] = error
        rec["updated"] = folders.now_iso()
        # a point's end is always written; starts at most every second (1,000 small points)
        if status != "running" or time.monotonic() - last_write > 1.0:
            sweep.write_record(rec)
            last_write = time.monotonic()

    stopped = False
    try:
        executors.run(sweep, todo, settings, session, on_event, console, run_point_task)
    except TrainingStopped:
        stopped = True
    except KeyboardInterrupt:
        stopped = True
    finally:
        for i in todo:  # whatever the executor could not report is what its run says
            if rec["points"][i]["status"] in ("running", "pending"):
                rec["points"][i]["status"] = sweep.point_status(rec, i)
        statuses = [p["status"] for p in rec["points"]]
        if all(s == "finished" for s in statuses):
            rec["status"] = "finished"
        elif stopped or any(s in ("interrupted", "pending", "running") for s in statuses):
            rec["status"] = "interrupted"
        else:
            rec["status"] = "failed"
        rec["updated"] = folders.now_iso()
        rec["ended"] = rec["updated"] if rec["status"] != "interrupted" else None
        sweep.write_record(rec)
    return _outcome(sweep, rec, time.perf_counter() - t0, console)


def _executor_words(settings: Settings) -> str:
    if settings.executor == "ray":
        return f"Ray ({settings.address})"
    return f"{settings.jobs} local worker(s) × {settings.threads} torch thread(s)"


def _outcome(sweep: sweeps.Sweep, rec: dict, seconds: float, console: Console) -> str:
    """The sweep id when every point finished; else TrainingStopped naming what did not."""
    points = rec["points"]
    finished = sum(p["status"] == "finished" for p in points)
    clock = f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    if rec["status"] == "finished":
        console.print(f"sweep {sweep.id}: {finished} of {len(points)} points finished in {clock}")
        return sweep.id
    if rec["status"] == "interrupted":
        err = TrainingStopped(
            f"sweep {sweep.id} interrupted: {finished} of {len(points)} points finished; "
            f"go on with: nnlab sweep --resume {sweep.id}",
            exit_code=130,
        )
    else:
        bad = [p for p in points if p["status"] in ("failed", "diverged")]
        named = "; ".join(
            f"{p['run']} {p['status']}" + (f" ({p['error']})" if p.get("error") else "")
            for p in bad[:5]
        )
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        err = TrainingStopped(
            f"sweep {sweep.id}: {len(bad)} of {len(points)} points did not finish: {named}{more}",
            exit_code=1,
        )
    err.run_id = sweep.id
    raise err


# ---------------------------------------------------------------- one point (in a worker)


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
    if path.is_dir() and (path / "meta.json").exists():
        run = folders.open_run(run_id, sweep.root)
        meta = run.meta()
        if meta.get("sweep") != own:
            raise RunError(
                f"run {run_id} is not point {index} of sweep {sweep.id} (its meta.json says "
                f"{meta.get('sweep') or 'it belongs to no sweep'}); nnlab leaves it alone"
            )
        status = meta.get("status")
        if status == "finished":
            return run_id
        if status == "diverged":
            raise TrainingStopped(f"run {run_id} diverged earlier; not retried", exit_code=1)
        torch.set_num_threads(max(1, int(threads)))  # the worker's share of the cores
        return train.resume(run_id, sweep.root, console=console)
    if path.exists() or path.is_symlink():
        # killed between making the directory and writing meta.json: nothing to resume,
        # and removed only when its marker proves that this sweep made it for this point
        _remove_unstarted_point(sweep, path, own)
    torch.set_num_threads(max(1, int(threads)))
    return train.start(
        cfg, sweep.root, console, run_id=run_id, sweep={"id": sweep.id, "point": index}
    )


def _remove_unstarted_point(sweep: sweeps.Sweep, path: Path, own: dict) -> None:
    """Remove a point's folder that a killed worker left before its run began, after
    checking that it is one: a plain folder holding this point's marker, no sweep.json."""
    marker = path / folders.POINT_FILE
    ours = False
    if path.is_dir() and not path.is_symlink() and not (path / folders.SWEEP_FILE).exists():
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
            return {"status": "finished", "error": None}
        except TrainingStopped as e:
            console.print(f"nnlab: {e}")
            if e.exit_code == 130:
                return {"status": "interrupted", "error": None}
            status = sweep.point_status(rec, index)
            return {"status": "diverged" if status == "diverged" else "failed", "error": str(e)}
        except NnlabError as e:
            console.print(f"nnlab: error: {e}")
            return {"status": "failed", "error": str(e)}
        except OSError as e:  # e.g. a full disk while setting the run up
            console.print(f"nnlab: error: {e}")
            return {"status": "failed", "error": f"{e.filename or ''} {e.strerror or e}".strip()}


def main(argv: list[str] | None = None) -> None:
    """A local worker: `python -m nnlab.commands.sweep RUNS_DIR SWEEP_ID THREADS` reads point
    indices from stdin, one per line, trains each (run_point_task) and writes its outcome as one
    JSON line on stdout; it ends at the end of stdin, or after a point was interrupted.

    One worker trains many points, so torch's start-up (seconds) is paid once per worker,
    not once per point.
    """
    import json

    runs_dir, sweep_id, threads = (argv if argv is not None else sys.argv[1:])[:3]
    _stop_with_coordinator()
    # only the outcomes go to the coordinator: anything else printed goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        for line in sys.stdin:
            index = int(line)
            outcome = run_point_task(runs_dir, sweep_id, index, int(threads))
            out.write(json.dumps({"index": index, **outcome}) + "\n")
            if outcome["status"] == "interrupted":
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
