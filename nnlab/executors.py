"""Where a sweep's points run: a pool of local worker processes, or tasks on a Ray cluster.

Both report each point's end through `on_event(index, status, error)` and leave the
training to the point's worker (nnlab.sweep.run_point), which starts or resumes the
point's run. A worker that is killed mid-run has its point started again, which resumes
the run from its last checkpoint: locally by this pool, on Ray by Ray's task retry.

Local workers run in their own session so that a Ctrl-C at the terminal reaches only the
coordinator, which forwards exactly one SIGINT to each worker (two would stop a worker at
once instead of at its next step, with a checkpoint).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nnlab import store
from nnlab.errors import NnlabError, TrainingStopped
from nnlab.progress import CountProgress, StopSignals

RAY_HINT = 'pip install -e ".[ray]" (or pip install "nnlab[ray]")'


def log_path(sweep: store.Sweep, run_id: str) -> Path:
    """The log file of a point (its worker's progress lines and errors)."""
    folder = sweep.file("logs")
    folder.mkdir(exist_ok=True)
    return folder / f"{store.validate_id(run_id)}.log"


def connect(settings):
    """The Ray module, connected to the cluster at settings.address (None for local runs);
    a missing Ray or an unreachable cluster is a one-line error before anything is written."""
    if settings.executor != "ray":
        return None
    try:
        import ray
    except ImportError:
        raise NnlabError(f"--executor=ray needs Ray, which is not installed: {RAY_HINT}") from None
    if not ray.is_initialized():
        try:
            ray.init(address=settings.address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise NnlabError(
                f"--address={settings.address}: no Ray cluster there ({first}); start one "
                "with: ray start --head"
            ) from None
    return ray


def check_storage(sweep: store.Sweep, ray) -> None:
    """Refuse a runs directory that some Ray node cannot see: every node writes its points'
    runs there, so it must be storage all nodes mount at the same path."""
    token = os.urandom(16).hex()
    probe = sweep.file(".storage-check")
    probe.write_text(token)
    try:
        sees = ray.remote(num_cpus=0)(_sees_file)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = [
            sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(probe), token)
            for n in nodes
        ]
        seen = ray.get(refs, timeout=120)
    finally:
        probe.unlink(missing_ok=True)
    blind = [n.get("NodeManagerAddress", "?") for n, ok in zip(nodes, seen, strict=True) if not ok]
    if blind:
        raise NnlabError(
            f"the runs directory {sweep.root} is not visible on Ray node(s) "
            f"{', '.join(blind)}: put it on storage every node mounts at the same path "
            "(e.g. NFS) and give that path with --runs_dir"
        )


def _sees_file(path: str, token: str) -> bool:
    """On a Ray node: whether it reads the token just written at path."""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def run(sweep, todo: list[int], settings, session, on_event, console, task=None) -> None:
    """Run the points `todo` with the chosen executor; TrainingStopped on a Ctrl-C."""
    if not todo:
        return
    if settings.executor == "ray":
        _run_ray(sweep, todo, settings, session, on_event, console, task)
    else:
        _run_local(sweep, todo, settings, on_event, console)


# ---------------------------------------------------------------- local processes


def _run_local(sweep, todo, settings, on_event, console) -> None:
    queue = collections.deque(todo)
    running: dict[int, tuple[subprocess.Popen, object]] = {}
    kills = collections.Counter()
    failures = 0
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # set before torch starts its pools
        env[var] = str(settings.threads)
    record = sweep.record()

    def launch(i: int) -> None:
        log = open(log_path(sweep, record["points"][i]["run"]), "a", encoding="utf-8")
        cmd = [sys.executable, "-m", "nnlab.sweep", str(sweep.root), sweep.id, str(i)]
        p = subprocess.Popen(
            [*cmd, str(settings.threads)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the coordinator only
        )
        running[i] = (p, log)
        on_event(i, "running", attempt=True)

    with StopSignals() as signals, CountProgress(console, "sweep", len(todo)) as bar:
        forwarded = False
        try:
            while queue or running:
                while queue and len(running) < settings.jobs and not signals.received:
                    launch(queue.popleft())
                if signals.received and not forwarded:
                    _signal_all(running, signal.SIGINT)
                    forwarded = True
                for i, (p, log) in list(running.items()):
                    rc = p.poll()
                    if rc is None:
                        continue
                    log.close()
                    del running[i]
                    run_id = record["points"][i]["run"]
                    if rc < 0 and not signals.received and kills[i] < settings.retries:
                        kills[i] += 1
                        console.print(
                            f"{run_id}: its worker was killed ({_signal_name(rc)}); resuming "
                            "it from its last checkpoint",
                            soft_wrap=True,
                        )
                        queue.appendleft(i)
                        continue
                    status, error = _outcome(sweep, record, i, rc)
                    on_event(i, status, error)
                    bar.advance()
                    if status in ("failed", "diverged"):
                        failures += 1
                        bar.set_note(f"{failures} did not finish")
                if signals.received and not running:
                    break
                time.sleep(0.05)
        except KeyboardInterrupt:  # a second Ctrl-C: every worker stops at once
            _signal_all(running, signal.SIGINT)
            for p, _ in running.values():
                p.wait()
            raise
    if signals.received:
        raise TrainingStopped(f"sweep {sweep.id} interrupted", exit_code=130)


def _signal_all(running: dict, sig: int) -> None:
    for p, _ in running.values():
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _outcome(sweep, record: dict, i: int, rc: int) -> tuple[str, str | None]:
    """(status, error) of a worker that exited with rc, from its run and its log."""
    if rc == 0:
        return "finished", None
    if rc == 130:
        return "interrupted", None
    status = sweep.point_status(record, i)
    if rc < 0:
        return "failed", f"worker killed by {_signal_name(rc)}, retries used up"
    reason = _last_line(log_path(sweep, record["points"][i]["run"]))
    return ("diverged" if status == "diverged" else "failed"), reason


def _last_line(path: Path) -> str | None:
    """The last line a worker wrote (its one-line error), without nnlab's prefix."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln]
    if not lines:
        return None
    last = lines[-1]
    for prefix in ("nnlab: error: ", "nnlab: "):
        last = last.removeprefix(prefix)
    return last[:300]


# ---------------------------------------------------------------- Ray


def _run_ray(sweep, todo, settings, ray, on_event, console, task) -> None:
    remote = ray.remote(num_cpus=1, max_retries=settings.retries, retry_exceptions=False)(task)
    refs = {remote.remote(str(sweep.root), sweep.id, i, settings.threads): i for i in todo}
    failures = 0
    with StopSignals() as signals, CountProgress(console, "sweep", len(todo)) as bar:
        cancelled = False
        try:
            while refs:
                if signals.received and not cancelled:
                    for ref in refs:
                        ray.cancel(ref)
                    cancelled = True
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.2)
                for ref in ready:
                    i = refs.pop(ref)
                    try:
                        out = ray.get(ref)
                        status, error = out["status"], out["error"]
                    except ray.exceptions.TaskCancelledError:
                        status, error = "interrupted", None
                    except ray.exceptions.RayError as e:
                        status = "failed"
                        error = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
                    on_event(i, status, error)
                    bar.advance()
                    if status in ("failed", "diverged"):
                        failures += 1
                        bar.set_note(f"{failures} did not finish")
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)
            raise
    if signals.received:
        raise TrainingStopped(f"sweep {sweep.id} interrupted", exit_code=130)
