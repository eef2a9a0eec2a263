"""Executors: the local pool's bookkeeping, and a real local Ray cluster running a sweep
whose worker is killed mid-run (skipped only where Ray is not installed; CI installs it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nnlab.commands import executors
from nnlab.store import folders
from tests.conftest import FAST
from tests.test_sweep import _assert_same_points, _record, _spawn, _wait_for_checkpoints

# Four points long enough to kill a worker mid-run (226 steps each, checkpoints every 20).
GRID = [*FAST, "--epochs=2", "--checkpoint_every_steps=20", "--seed=7,8", "--beta=1,2"]


def test_last_line_of_a_log_is_the_error(tmp_path):
    log = tmp_path / "p.log"
    log.write_text("epoch 1/2: ...\n" + "nnlab: error: --lr too big\n\n")
    assert executors._last_line(log) == "--lr too big"
    assert executors._last_line(tmp_path / "missing.log") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster of 2 CPUs (ray start --head), stopped after the tests."""
    pytest.importorskip("ray")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    start = [ray_bin, "start", "--head", "--num-cpus=2", f"--port={port}", f"--temp-dir={temp}"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    p = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_sweep_survives_a_killed_worker_with_exact_results(runs, tmp_path, ray_cluster):
    # the same grid on the local pool: one torch thread per worker, as on Ray
    ref_runs = tmp_path / "reference"
    local = _spawn(["sweep", "vae", *GRID, "--jobs=2"], ref_runs)
    out, err = local.communicate(timeout=300)
    assert local.returncode == 0, err
    reference = (ref_runs, out.strip())

    p = _spawn(["sweep", "vae", *GRID, "--executor=ray", f"--address={ray_cluster}"], runs)
    (first, *_) = _wait_for_checkpoints(runs, 1)
    holder = json.loads((runs / first / "lock").read_text())
    assert holder["pid"] != p.pid  # a Ray worker process, not the coordinator
    os.kill(holder["pid"], signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    sweep_id = out.strip()
    assert _record(runs, sweep_id)["settings"]["executor"] == "ray"
    log = (runs / sweep_id / "logs" / f"{first}.log").read_text()
    assert "resuming" in log  # Ray retried the task, which resumed the run
    assert folders.open_run(first, runs).meta().status == "finished"
    _assert_same_points(runs, sweep_id, reference)


def test_an_unreachable_ray_cluster_is_one_line(nnlab, runs):
    pytest.importorskip("ray")
    port = _free_port()  # nothing listens there
    r = nnlab("sweep", "vae", "--beta=1,2", "--executor=ray", f"--address=127.0.0.1:{port}")
    assert r.code == 2 and "no Ray cluster there" in r.err and "ray start --head" in r.err
    assert r.err.count("\n") == 1, r.err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow
def test_ray_runs_a_search_whose_tasks_report_to_the_pruner(runs, ray_cluster):
    pytest.importorskip("optuna")
    from tests.test_search import SEARCH, _assert_study_whole

    args = [*SEARCH, "--trials=4", "--jobs=2", "--executor=ray", f"--address={ray_cluster}"]
    p = _spawn(args, runs)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    sweep_id = out.strip()
    rec = _assert_study_whole(runs, sweep_id, 4)
    assert rec["settings"]["executor"] == "ray"
    answered = list((runs / sweep_id / "reports").glob("p*.decisions.json"))
    assert len(answered) == 4  # every Ray task reported, and the coordinator answered
