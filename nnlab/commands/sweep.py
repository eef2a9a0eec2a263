"""`nnlab sweep`: a grid of configs trained as ordinary runs, and the sweep's own record.

A sweep directory (beside the runs, `sweep-<model>-<stamp>[-name]`) holds sweep.json (the
command line, the base config, the grid, each point's run id and status), logs/ (each
point's progress and errors) and media/. Each point is a run named `<sweep id>-p<k>`,
complete and resumable on its own. This process (the coordinator) is the only writer of
sweep.json; workers (local processes, or Ray tasks: nnlab.commands.executors) train the
points through nnlab.commands.worker, which starts a point's run or resumes it from its
checkpoint, so a
sweep that was stopped, or a worker that was killed, goes on where it was.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import time
from pathlib import Path

from rich.console import Console

from nnlab.analysis import trials
from nnlab.commands import executors, search
from nnlab.commands.worker import run_point_task
from nnlab.config import config, grid, space
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError, RunError, TrainingStopped, did_you_mean
from nnlab.store import folders, sweeps
from nnlab.store.meta import Status
from nnlab.training import tensorboard

EXECUTORS = ("local", "ray")
DONE = (
    Status.FINISHED,
    Status.DIVERGED,
)  # a resume skips these: a diverged run would diverge again


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
    opts,
    given: frozenset[str],
    fields: list[tuple[str, str]],
    argv: list[str] | None,
) -> str:
    """`nnlab sweep MODEL --KEY=v1,v2 ...` or `--resume SWEEP_ID`: the command's options
    (nnlab.commands.cli.SweepOptions, and the names typed) and the config fields, each as
    typed and in order; returns the sweep id (or, with --dry_run, the plan)."""
    if opts.resume is not None:
        if opts.resume in ("", "true"):
            raise NnlabError("--resume needs a sweep id: nnlab sweep --resume SWEEP_ID")
        kept = ("preset", "config", "dry_run", "search", *search.OPTIONS)
        extra = [k for k, _ in fields] + [k for k in kept if k in given]
        if model is not None or extra:
            shown = extra[0] if extra else "MODEL"
            raise NnlabError(
                f"--resume takes only --jobs, --executor, --address and --retries, not "
                f"{shown}: a sweep keeps its grid (a search its space and plan)"
            )
        return resume(opts.resume, opts.runs_dir, opts, given)
    search.check_options(opts, given)
    if opts.search != "grid":
        return start_search(model, opts, given, fields, argv)
    return start(model, opts, given, fields, argv)


def start(model: str | None, opts, given, fields: list[tuple[str, str]], argv) -> str:
    """A new sweep: the grid built and every point validated before anything is written,
    then run (or, with --dry_run, only its plan)."""
    runs_dir = opts.runs_dir
    dry_run = opts.dry_run
    the_grid = grid.build(model, fields, preset=opts.preset, config_file=opts.config)
    total = len(the_grid)
    if total > grid.MAX_POINTS and not opts.yes:
        raise NnlabError(
            f"the grid has {total:,} points, more than {grid.MAX_POINTS:,}: check the values, "
            "or add --yes to run them all"
        )
    configs = the_grid.configs()  # every point validated before anything is written
    if any(c.tensorboard for c in configs):
        tensorboard.check_available("--tensorboard=true")
    settings = _settings(opts, given, None)
    base_id = sweeps.sweep_id_base(configs[0].model, the_grid.name)
    if dry_run:
        ids = [sweeps.point_run_id(base_id, i, total) for i in range(total)]
        stderr_console().print(
            f"dry run: {total:,} points of {configs[0].model} "
            f"({' × '.join(f'{len(v)} {k}' for k, v in the_grid.axes.items())}), "
            f"{settings.executor} executor; nothing written"
        )
        return grid.plan_table(the_grid, ids)
    points = list(the_grid.points())

    def record(sweep):
        return _new_record(
            sweep, configs[0], opts, settings, argv, the_grid.name, the_grid.axes, points
        )

    def feed(sweep, rec):
        return executors.Feed(list(range(total)))

    return _launch(runs_dir, base_id, settings, record, feed)


def _launch(runs_dir, base_id: str, settings: Settings, record, feed) -> str:
    """Make the sweep's folder, write its record (record(sweep)) and check that Ray's nodes
    see it, then make its feed (feed(sweep, rec)): a failure on the way removes the folder,
    which nothing else has touched yet. Then run it."""
    with executors.session(settings) as session:  # before anything is written: fail fast
        sweep = sweeps.create_sweep(runs_dir, base_id)
        try:
            rec = record(sweep)
            sweep.write_record(rec)
            if session is not None:
                executors.check_storage(sweep, session)
            points = feed(sweep, rec)
        except BaseException:
            sweep.release()
            shutil.rmtree(sweep.path, ignore_errors=True)
            raise
        try:
            return _run(sweep, rec, settings, session, stderr_console(), points)
        finally:
            sweep.release()


def start_search(model: str | None, opts, given, fields: list[tuple[str, str]], argv) -> str:
    """A new search: Optuna there, the space and plan checked (each bound and choice a valid
    config) before anything is written; then trials asked as workers free up."""
    search.optuna_module(opts.search)  # missing: refused before anything is written
    dry_run = opts.dry_run
    the_space = space.build(model, fields, preset=opts.preset, config_file=opts.config)
    first = the_space.check()
    the_plan = search.plan(opts, given, the_space, first)
    if first.tensorboard:
        tensorboard.check_available("--tensorboard=true")
    settings = _settings(opts, given, None)
    words = (
        f"{the_plan.method} search of {first.model}: {the_plan.trials} trials over "
        f"{space.describe(the_space.params)}; {the_plan.metric} ({the_plan.direction}), "
        + (
            f"{the_plan.prune} pruning at {search.every_words(the_plan.prune_every)}"
            if the_plan.prune != "none"
            else "no pruning"
        )
    )
    if dry_run:
        stderr_console().print(f"dry run: {words}; nothing written", soft_wrap=True)
        rows = [
            "field\tspace",
            *(f"{k}\t{space.shown(p)}" for k, p in the_space.params.items()),
        ]
        return "\n".join(rows)
    base_id = sweeps.sweep_id_base(first.model, the_space.name)

    def record(sweep):
        rec = _new_record(sweep, first, opts, settings, argv, the_space.name, {}, [])
        return {**rec, "search": the_plan.as_record()}

    def feed(sweep, rec):
        study = search.Study(sweep, the_plan)  # the journal, beside sweep.json
        stderr_console().print(f"{sweep.id}: {words}", soft_wrap=True)
        return search.SearchFeed(sweep, rec, study, [])

    return _launch(opts.runs_dir, base_id, settings, record, feed)


def resume(sweep_id: str, runs_dir=None, opts=None, given: frozenset = frozenset()) -> str:
    """Go on with a sweep: finished points are skipped, interrupted ones resumed from
    their checkpoints, the rest started (the executor settings typed, in `given`, replace
    the recorded ones)."""
    sweep = sweeps.open_sweep(sweep_id, runs_dir)
    rec = sweep.record()
    settings = _settings(opts, given, rec.get("settings"))
    with executors.session(settings) as session:
        return _resume(sweep, rec, settings, session)


def _resume(sweep: sweeps.Sweep, rec: dict, settings: Settings, session) -> str:
    sweep.acquire()
    try:
        if session is not None:
            executors.check_storage(sweep, session)
        console = stderr_console()
        _wait_for_stopping_workers(sweep, rec, console)
        if rec.get("search"):
            study = search.Study(sweep, search.Plan(**rec["search"]))
            feed = search.SearchFeed(sweep, rec, study, [])
            todo = feed.reconcile()
            asked = len(rec["points"])
            console.print(
                f"resuming search {sweep.id}: {len(todo)} trial(s) to go on with, "
                f"{max(study.plan.trials - asked, 0)} to ask",
                soft_wrap=True,
            )
            rec["settings"] = settings.as_record()
            return _run(sweep, rec, settings, session, console, feed)
        for i in range(len(rec["points"])):
            rec["points"][i]["status"] = sweep.point_status(rec, i)
        todo = [i for i, p in enumerate(rec["points"]) if p["status"] not in DONE]
        skipped = [p["run"] for p in rec["points"] if p["status"] == Status.DIVERGED]
        if skipped:
            console.print(
                f"skipping {len(skipped)} diverged point(s), which would diverge again: "
                f"{', '.join(skipped)}",
                soft_wrap=True,
            )
        console.print(f"resuming sweep {sweep.id}: {len(todo)} of {len(rec['points'])} to run")
        rec["settings"] = settings.as_record()
        return _run(sweep, rec, settings, session, console, executors.Feed(todo))
    finally:
        sweep.release()


STOPPING_GRACE_S = 60.0  # how long a resume waits for a killed coordinator's workers


def _wait_for_stopping_workers(sweep: sweeps.Sweep, rec: dict, console: Console) -> None:
    """Wait until no point's run is held by a worker of a coordinator that was killed: the
    kernel told each to stop, and it stops after its step and a checkpoint, but a resume
    typed at once would find the run still locked and fail the point. Raise RunError when
    one is still held after STOPPING_GRACE_S (a worker that is not stopping)."""
    runs = [folders.Run(sweep.root, folders.validate_id(p["run"])) for p in rec["points"]]
    deadline = time.monotonic() + STOPPING_GRACE_S
    told = False
    while held := [run for run in runs if run.is_running()]:
        if time.monotonic() >= deadline:
            try:  # the lock's own message names its holder
                held[0].acquire()
            except RunError as e:
                raise RunError(f"sweep {sweep.id}: {e}; stop it, then --resume again") from None
            held[0].release()  # let go of just now
            continue
        if not told:
            console.print(
                f"waiting for {len(held)} worker(s) of the stopped coordinator to stop "
                f"({', '.join(run.id for run in held)})",
                soft_wrap=True,
            )
            told = True
        time.sleep(0.1)


def _settings(opts, given: frozenset, recorded: dict | None) -> Settings:
    """The executor settings from the options typed (a resume keeps the recorded ones for
    what is not typed, so its runs use the same thread counts and stay bit-exact)."""
    base = Settings(**recorded) if recorded else None

    def typed(name: str, recorded_value, default):
        if name in given:
            return getattr(opts, name)
        return recorded_value if base else default

    executor = typed("executor", base and base.executor, "local")
    if executor not in EXECUTORS:
        hint = did_you_mean(executor, EXECUTORS)
        raise NnlabError(f"--executor: unknown value '{executor}'{hint}")
    cores = os.cpu_count() or 1
    jobs = typed("jobs", base and base.jobs, cores)
    if executor == "local" and jobs > 256:
        raise NnlabError(f"--jobs={jobs}: at most 256 local workers")
    retries = typed("retries", base and base.retries, 2)
    # each worker its share of the cores: oversubscribed torch threads cost 10-30x here
    threads = max(1, cores // jobs) if executor == "local" else 1
    if base and "jobs" not in given and executor == base.executor:
        threads = base.threads
    address = typed("address", base and base.address, "auto")
    return Settings(executor, jobs, threads, address, retries)


def retries_count(text: str, name: str = "retries") -> int:
    """--retries: a whole number from 0 to 100."""
    try:
        retries = int(text)
    except ValueError:
        retries = -1
    if not 0 <= retries <= 100:
        raise NnlabError(f"--{name}={text}: expected a whole number from 0 to 100")
    return retries


def _new_record(
    sweep, first: config.Config, opts, settings, argv, name: str, axes: dict, points: list
) -> dict:
    """sweep.json of a new sweep: a grid's axes and every point pending (a search: no
    axes, no point yet)."""
    now = folders.now_iso()
    base = dataclasses.replace(first, name="")
    source = {"preset": opts.preset} if opts.preset else {}
    if opts.config:
        source = {"config": str(Path(opts.config).absolute())}
    return {
        "format": folders.FORMAT_VERSION,
        "kind": "sweep",
        "id": sweep.id,
        "model": first.model,
        "name": name,
        "command": shlex.join(["nnlab", "sweep", *(argv or [])]),
        "created": now,
        "updated": now,
        "ended": None,
        "status": Status.RUNNING,
        "source": source,
        "settings": settings.as_record(),
        "base": config.to_yaml(base),
        "grid": {k: list(v) for k, v in axes.items()},
        "points": [
            {
                "run": sweeps.point_run_id(sweep.id, i, len(points)),
                "values": point,
                "status": Status.PENDING,
                "attempts": 0,
                "error": None,
            }
            for i, point in enumerate(points)
        ],
    }


def _run(
    sweep: sweeps.Sweep, rec: dict, settings: Settings, session, console: Console, feed
) -> str:
    """Run the points of feed (executors.Feed, or a search's), keep sweep.json up to date,
    and say how it ended."""
    rec.update(status=Status.RUNNING, ended=None, updated=folders.now_iso())
    sweep.write_record(rec)
    t0 = time.perf_counter()
    what = "trial(s)" if rec.get("search") else "point(s)"
    console.print(
        f"sweep {sweep.id}: {len(feed)} {what} on {_executor_words(settings)} · "
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
        if error is not None or status == Status.FINISHED:
            point["error"] = error
        if status in sweeps.ENDED:
            feed.ended(index, status)  # a search tells its study first: then sweep.json
        rec["updated"] = folders.now_iso()
        # a point's end is always written; starts at most every second (1,000 small points)
        if status != Status.RUNNING or time.monotonic() - last_write > 1.0:
            sweep.write_record(rec)
            last_write = time.monotonic()

    stopped = False
    try:
        executors.run(sweep, feed, settings, session, on_event, console, run_point_task)
    except TrainingStopped:
        stopped = True
    except KeyboardInterrupt:
        stopped = True
    finally:
        for i, point in enumerate(rec["points"]):  # what the executor could not report
            if point["status"] in (Status.RUNNING, Status.PENDING):
                point["status"] = sweep.point_status(rec, i)
        rec["status"] = _sweep_status(rec, stopped or len(feed) > 0)
        rec["updated"] = folders.now_iso()
        rec["ended"] = rec["updated"] if rec["status"] != Status.INTERRUPTED else None
        sweep.write_record(rec)
    return _outcome(sweep, rec, time.perf_counter() - t0, console)


def _sweep_status(rec: dict, stopped: bool) -> str:
    """finished, interrupted or failed. A search is finished when every trial asked has
    ended and one finished (pruned and failed trials are part of a search)."""
    statuses = [p["status"] for p in rec["points"]]
    if stopped or any(s in (Status.INTERRUPTED, Status.PENDING, Status.RUNNING) for s in statuses):
        return Status.INTERRUPTED
    if rec.get("search"):
        return Status.FINISHED if Status.FINISHED in statuses else Status.FAILED
    return Status.FINISHED if all(s == Status.FINISHED for s in statuses) else Status.FAILED


def _executor_words(settings: Settings) -> str:
    if settings.executor == "ray":
        return f"Ray ({settings.address})"
    return f"{settings.jobs} local worker(s) × {settings.threads} torch thread(s)"


def _outcome(sweep: sweeps.Sweep, rec: dict, seconds: float, console: Console) -> str:
    """The sweep id when every point finished; else TrainingStopped naming what did not."""
    points = rec["points"]
    finished = sum(p["status"] == Status.FINISHED for p in points)
    clock = f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    plan = rec.get("search")
    if plan and rec["status"] == Status.FINISHED:
        counts = ", ".join(
            f"{n} {s}" for s in sweeps.ENDED if (n := sum(p["status"] == s for p in points))
        )
        sealed = trials.sealed_values(sweep, rec, [p["status"] for p in points])  # runs' word
        valued = [{**p, "value": v} for p, v in zip(points, sealed, strict=True)]
        top = trials.best(valued, plan["direction"])
        best = (
            f"{top['run']}, {plan['metric']} {top['value']:.6g} with {grid.describe(top['values'])}"
            if top
            else f"none (no finished trial has its {plan['metric']})"
        )
        console.print(
            f"search {sweep.id}: {len(points)} trials ({counts}) in {clock}; best: {best}",
            soft_wrap=True,
        )
        return sweep.id
    if rec["status"] == Status.FINISHED:
        console.print(f"sweep {sweep.id}: {finished} of {len(points)} points finished in {clock}")
        return sweep.id
    if rec["status"] == Status.INTERRUPTED:
        done = (
            f"{sum(p['status'] in sweeps.ENDED for p in points)} of {plan['trials']} trials ended"
            if plan
            else f"{finished} of {len(points)} points finished"
        )
        err = TrainingStopped(
            f"sweep {sweep.id} interrupted: {done}; go on with: nnlab sweep --resume {sweep.id}",
            exit_code=130,
        )
    else:
        bad = [p for p in points if p["status"] in (Status.FAILED, Status.DIVERGED)]
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
