"""Where a sweep's points run: a pool of local worker processes, or tasks on a Ray cluster.

Both report each point's end through `on_event(index, status, error)` and leave the
training to the point's worker (nnlab.commands.worker.run_point), which starts or resumes the
point's run. A worker that is killed mid-run has its point started again, which resumes
the run from its last checkpoint: locally by this pool, on Ray by Ray's task retry.

Local workers run in their own session so that a Ctrl-C at the terminal reaches only the
coordinator, which forwards exactly one SIGINT to each worker (two would stop a worker at
once instead of at its next step, with a checkpoint).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnlab.helpers.errors import NnlabError, TrainingStopped
from nnlab.helpers.progress import CountProgress, StopSignals
from nnlab.store import folders, sweeps
from nnlab.store.meta import Status

RAY_HINT = 'pip install -e ".[ray]" (or pip install "nnlab[ray]")'


def log_path(sweep: sweeps.Sweep, run_id: str) -> Path:
    """The log file of a point (its worker's progress lines and errors)."""
    folder = sweep.file("logs")
    folder.mkdir(exist_ok=True)
    return folder / f"{folders.validate_id(run_id)}.log"


@contextlib.contextmanager
def session(settings):
    """The executor's session: for Ray, the Ray module connected to the cluster (see
    connect), with stdout sent to stderr meanwhile (Ray prints worker deaths and retries on
    stdout, which carries only nnlab's result) and Ray shut down at the end; else None."""
    if settings.executor != "ray":
        yield None
        return
    with contextlib.redirect_stdout(sys.stderr):
        ray = connect(settings)
        try:
            yield ray
        finally:
            ray.shutdown()


def connect(settings):
    """The Ray module, connected to the cluster at settings.address; a missing Ray or an
    unreachable cluster is a one-line error before anything is written."""
    try:
        import ray
    except ImportError:
        raise NnlabError(f"--executor=ray needs Ray, which is not installed: {RAY_HINT}") from None
    _check_reachable(settings.address)
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


def _check_reachable(address: str) -> None:
    """Refuse a HOST:PORT where nothing listens at once (Ray itself retries for minutes)."""
    m = re.match(r"^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$", address)
    if not m:
        return  # auto, ray://...: Ray resolves these itself, quickly
    host, port = m.group(1).strip("[]"), int(m.group(2))
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise NnlabError(
            f"--address={address}: no Ray cluster there ({e.strerror or e}); start one with: "
            "ray start --head"
        ) from None


def check_storage(sweep: sweeps.Sweep, ray) -> None:
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


class Feed:
    """The points an executor runs, handed out one at a time: a grid's list as it stands;
    a search (nnlab.commands.search) asks its next trial only when a worker is free."""

    def __init__(self, todo: list[int]):
        self.queue = collections.deque(todo)

    def __len__(self) -> int:
        """How many points are still to hand out."""
        return len(self.queue)

    def take(self) -> int:
        """The next point to run."""
        return self.queue.popleft()

    def again(self, index: int) -> None:
        """Run point index again next (its worker was killed: it resumes its checkpoint)."""
        self.queue.appendleft(index)

    def poll(self, running: list[int]) -> None:
        """Called while points run (several times a second): a search answers their
        reports here."""

    def in_flight(self, jobs: int) -> int:
        """How many points may run at once on Ray: a grid's all (Ray queues them)."""
        return max(len(self.queue), 1)

    def ended(self, index: int, status: str) -> None:
        """Point index ended with status (a search tells its study here)."""


def run(sweep, feed: Feed, settings, session, on_event, console, task=None) -> None:
    """Run the points of `feed` with the chosen executor; TrainingStopped on a Ctrl-C."""
    if not len(feed):
        return
    if settings.executor == "ray":
        _run_ray(sweep, feed, settings, session, on_event, console, task)
    else:
        _run_local(sweep, feed, settings, on_event, console)


# ---------------------------------------------------------------- local processes


@dataclass
class _Worker:
    """A local worker process and the point it is training (None: idle)."""

    proc: subprocess.Popen
    log: Path
    point: int | None = None
    buffer: bytes = b""


COORDINATOR_ENV = "NNLAB_SWEEP_COORDINATOR"  # a local worker's coordinator's pid


def _finisher(on_event, bar):
    """A function that records a point's end: the event, the bar, and the failures so far."""
    failures = 0

    def finish(i: int, status: str, error: str | None) -> None:
        nonlocal failures
        on_event(i, status, error)
        bar.advance()
        if status in (Status.FAILED, Status.DIVERGED):
            failures += 1
            bar.set_note(f"{failures} did not finish")

    return finish


class _Pool:
    """The local worker processes of a sweep: started, handed points one at a time, their
    outcomes collected, a killed one's point resumed (up to settings.retries)."""

    def __init__(self, sweep, feed: Feed, settings, on_event, console, signals, bar):
        self.sweep, self.settings, self.on_event = sweep, settings, on_event
        self.console, self.signals, self.bar = console, signals, bar
        self.queue = feed
        self.workers: list[_Worker] = []
        self.kills = collections.Counter()
        self.env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # set before torch starts its pools
            self.env[var] = str(settings.threads)
        self.env[COORDINATOR_ENV] = str(os.getpid())  # a worker stops when it dies
        self.spawned = 0
        self.finish = _finisher(on_event, bar)

    def spawn(self) -> None:
        """Start one more worker (in its own session: a terminal's Ctrl-C reaches the
        coordinator only, which passes it on)."""
        self.spawned += 1
        log = log_path(self.sweep, f"worker-{self.spawned}")
        module = "nnlab.commands.worker"
        args = [str(self.sweep.root), self.sweep.id, str(self.settings.threads)]
        with open(log, "a", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=self.env,
                start_new_session=True,
            )
        self.workers.append(_Worker(proc, log))

    def collect(self, ws: list[_Worker], timeout: float) -> None:
        """Outcomes the workers ws have written within timeout seconds (a line without a
        status is a search's point saying it has reported: it only wakes this loop, so
        that the report is answered at once)."""
        for w, outcome in _read_outcomes(ws, timeout):
            if "status" in outcome and outcome.get("index") == w.point:
                w.point = None
                self.finish(outcome["index"], outcome["status"], outcome.get("error"))

    def hand_out(self) -> None:
        """Give idle workers work, or let them end when there is none."""
        for w in self.workers:
            if w.point is None and w.proc.stdin and not w.proc.stdin.closed:
                if self.queue and not self.signals.received:
                    w.point = self.queue.take()
                    _send(w, f"{w.point}\n")
                    self.on_event(w.point, Status.RUNNING, attempt=True)
                elif not self.queue:
                    w.proc.stdin.close()

    def reap(self, w: _Worker) -> None:
        """A worker that ended: its last words, and its point if it died mid-point (killed:
        resumed from the checkpoint while retries last; a crash: failed)."""
        self.workers.remove(w)
        self.collect([w], timeout=0)
        w.proc.stdout.close()
        rc = w.proc.returncode
        if w.point is None:
            return
        i = w.point
        run_id = self.sweep.record()["points"][i]["run"]
        stopping = self.signals.received
        if rc < 0 and not stopping and self.kills[i] < self.settings.retries:
            self.kills[i] += 1
            self.console.print(
                f"{run_id}: its worker was killed ({_signal_name(rc)}); "
                "resuming it from its last checkpoint",
                soft_wrap=True,
            )
            self.queue.again(i)
        elif stopping:
            self.finish(i, Status.INTERRUPTED, None)
        elif rc < 0:
            self.finish(i, Status.FAILED, f"worker killed by {_signal_name(rc)}, retries used up")
        else:
            self.finish(i, Status.FAILED, _last_line(w.log) or f"worker exit status {rc}")

    def run(self) -> None:
        """Until every point is done (or stopped): hand out, collect, reap, top up."""
        forwarded = False
        for _ in range(min(self.settings.jobs, len(self.queue))):
            self.spawn()
        while self.workers:
            if self.signals.received and not forwarded:
                _signal_all(self.workers, signal.SIGINT)
                forwarded = True
            self.hand_out()
            self.collect(self.workers, timeout=0.1)
            self.queue.poll([w.point for w in self.workers if w.point is not None])
            for w in [w for w in self.workers if w.proc.poll() is not None]:
                self.reap(w)
                wanted = self.queue and not self.signals.received
                if wanted and len(self.workers) < self.settings.jobs:
                    self.spawn()


def _run_local(sweep, feed: Feed, settings, on_event, console) -> None:
    with StopSignals() as signals, CountProgress(console, "sweep", len(feed)) as bar:
        pool = _Pool(sweep, feed, settings, on_event, console, signals, bar)
        try:
            pool.run()
        except KeyboardInterrupt:  # a second Ctrl-C: every worker stops at once
            _signal_all(pool.workers, signal.SIGINT)
            for w in pool.workers:
                w.proc.wait()
            raise
    if signals.received:
        raise TrainingStopped(f"sweep {sweep.id} interrupted", exit_code=130)


def _send(w: _Worker, text: str) -> None:
    """Give a worker a line of work (a worker that died meanwhile is noticed by poll)."""
    try:
        w.proc.stdin.write(text.encode())
        w.proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def _read_outcomes(workers: list[_Worker], timeout: float):
    """(worker, outcome) for each complete JSON line the workers wrote within timeout."""
    import json
    import select

    fds = {w.proc.stdout.fileno(): w for w in workers if w.proc.stdout}
    if not fds:
        time.sleep(timeout)
        return []
    ready, _, _ = select.select(list(fds), [], [], timeout)
    out = []
    for fd in ready:
        w = fds[fd]
        chunk = os.read(fd, 65536)
        w.buffer += chunk
        *lines, w.buffer = w.buffer.split(b"\n")
        for line in lines:
            try:
                out.append((w, json.loads(line)))
            except ValueError:
                continue
    return out


def _signal_all(workers: list[_Worker], sig: int) -> None:
    for w in workers:
        try:
            w.proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


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


def _run_ray(sweep, feed: Feed, settings, ray, on_event, console, task) -> None:
    remote = ray.remote(num_cpus=1, max_retries=settings.retries, retry_exceptions=False)(task)
    cap = feed.in_flight(settings.jobs)
    refs: dict = {}
    with StopSignals() as signals, CountProgress(console, "sweep", len(feed)) as bar:
        finish = _finisher(on_event, bar)
        cancelled = False
        try:
            while True:
                while len(feed) and len(refs) < cap and not signals.received:
                    i = feed.take()
                    refs[remote.remote(str(sweep.root), sweep.id, i, settings.threads)] = i
                    on_event(i, Status.RUNNING, attempt=True)
                if not refs:
                    break
                if signals.received and not cancelled:
                    for ref in refs:
                        ray.cancel(ref)
                    cancelled = True
                feed.poll(list(refs.values()))
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.1)
                for ref in ready:
                    i = refs.pop(ref)
                    try:
                        out = ray.get(ref)
                        status, error = out["status"], out["error"]
                    except ray.exceptions.TaskCancelledError:
                        status, error = Status.INTERRUPTED, None
                    except ray.exceptions.RayError as e:
                        status = Status.FAILED
                        error = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
                    finish(i, status, error)
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)
            raise
    if signals.received:
        raise TrainingStopped(f"sweep {sweep.id} interrupted", exit_code=130)
