"""`nnlab sweep`: points as ordinary runs, the sweep's record, Ctrl-C and --resume, killed
workers, and bad input refused before anything is written."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from nnlab.commands import sweep as sweep_command
from nnlab.store import folders, sweeps
from tests.conftest import FAST
from tests.test_reliability import _spawn
from tests.test_train import _assert_same_run

# Two points long enough to stop mid-run: 452 steps each, checkpoints every 20 steps (with
# 226, a point whose worker started late on a loaded machine could find the other finished).
LONG = [
    "sweep",
    "vae",
    *FAST,
    "--epochs=4",
    "--checkpoint_every_steps=20",
    "--snapshot_every=10",
    "--seed=7,8",
    "--jobs=2",
]


def _sweep_id(runs: Path) -> str:
    (sweep_id,) = sweeps.list_sweep_ids(runs)
    return sweep_id


def _record(runs: Path, sweep_id: str) -> dict:
    return json.loads((runs / sweep_id / "sweep.json").read_text())


def _wait_for_checkpoints(runs: Path, n: int, step: int = 20, timeout: float = 120) -> list[str]:
    """Wait until n point runs have a checkpoint at `step` or later; their ids."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready = []
        for meta in runs.glob("sweep-*-p*/meta.json"):
            try:
                if json.loads(meta.read_text()).get("resumable_step", 0) >= step:
                    ready.append(meta.parent.name)
            except ValueError:  # caught mid-replace: read again
                pass
        if len(ready) >= n:
            return sorted(ready)
        time.sleep(0.05)
    raise AssertionError(f"no {n} checkpoints at step {step} within {timeout} s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep LONG, in its own store: (runs dir, sweep id)."""
    runs = tmp_path_factory.mktemp("reference") / "runs"
    p = _spawn(LONG, runs)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return runs, out.strip()


def _assert_same_points(runs, sweep_id, reference):
    ref_runs, ref_id = reference
    for a, b in zip(
        _record(runs, sweep_id)["points"], _record(ref_runs, ref_id)["points"], strict=True
    ):
        assert a["values"] == b["values"] and a["status"] == b["status"] == "finished"
        _assert_same_run(Path("/"), str(runs / a["run"]), str(ref_runs / b["run"]))


@pytest.mark.slow
def test_two_by_two_sweep_makes_four_runs_of_the_grid(nnlab, runs):
    r = nnlab("sweep", "vae", *FAST, "--snapshot_every=40", "--beta=1,10", "--seed=0,1", "--jobs=2")
    assert r.code == 0, r.err
    sweep_id = r.out.strip()
    assert sweep_id == _sweep_id(runs) and sweep_id.startswith("sweep-vae-")
    rec = _record(runs, sweep_id)
    assert rec["status"] == "finished" and rec["grid"] == {"beta": [1.0, 10.0], "seed": [0, 1]}
    assert rec["command"].startswith("nnlab sweep vae ") and "--beta=1,10" in rec["command"]
    grid_values = [(1.0, 0), (1.0, 1), (10.0, 0), (10.0, 1)]
    for i, (point, (beta, seed)) in enumerate(zip(rec["points"], grid_values, strict=True)):
        assert point["run"] == f"{sweep_id}-p{i}" and point["status"] == "finished"
        run = folders.open_run(point["run"], runs)
        cfg = run.config()
        assert (cfg.beta, cfg.seed, cfg.dataset, cfg.snapshot_every) == (
            beta,
            seed,
            "mnist-sample",
            40,
        )
        assert run.meta().sweep == {"id": sweep_id, "point": i}
        assert run.meta().status == "finished"
        assert "finished" in (runs / sweep_id / "logs" / f"{point['run']}.log").read_text()
    assert "4 of 4 points finished" in r.err
    # the points are ordinary runs: every command takes them
    assert nnlab("summary", f"{sweep_id}-p3").code == 0
    table = nnlab("summary", sweep_id)
    assert table.code == 0, table.err
    rows = [ln for ln in table.out.splitlines() if ln.startswith(sweep_id)]
    assert len(rows) == 4
    data = nnlab("summary", sweep_id, "--json").json()
    assert [(p["values"]["beta"], p["values"]["seed"]) for p in data["points"]] == grid_values


@pytest.mark.slow
def test_ctrl_c_then_resume_equals_an_uninterrupted_sweep(nnlab, runs, reference):
    p = _spawn(LONG, runs)
    _wait_for_checkpoints(runs, 2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    sweep_id = out.strip()
    assert f"go on with: nnlab sweep --resume {sweep_id}" in err
    rec = _record(runs, sweep_id)
    assert rec["status"] == "interrupted"
    assert [pt["status"] for pt in rec["points"]] == ["interrupted", "interrupted"]
    for pt in rec["points"]:  # each run stopped cleanly, resumable on its own
        assert folders.open_run(pt["run"], runs).meta().status == "interrupted"
    r = nnlab("sweep", "--resume", sweep_id)
    assert r.code == 0 and r.out.strip() == sweep_id, r.err
    assert "resuming" in (runs / sweep_id / "logs" / f"{sweep_id}-p0.log").read_text()
    _assert_same_points(runs, sweep_id, reference)
    again = nnlab("sweep", "--resume", sweep_id)  # nothing left: says so, changes nothing
    assert again.code == 0 and "0 of 2 to run" in again.err


@pytest.mark.slow
def test_a_killed_worker_is_resumed_from_its_checkpoint(nnlab, runs, reference):
    p = _spawn(LONG, runs)
    (first, *_) = _wait_for_checkpoints(runs, 1)
    holder = json.loads((runs / first / "lock").read_text())
    assert holder["pid"] != p.pid  # the worker, not the coordinator
    os.kill(holder["pid"], signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert f"{first}: its worker was killed (SIGKILL); resuming it" in err
    sweep_id = out.strip()
    log = (runs / sweep_id / "logs" / f"{first}.log").read_text()
    assert "resuming" in log
    point = next(pt for pt in _record(runs, sweep_id)["points"] if pt["run"] == first)
    assert point["attempts"] == 2
    _assert_same_points(runs, sweep_id, reference)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_killing_the_coordinator_stops_its_workers_and_resume_finishes(nnlab, runs, reference):
    """SIGKILL of `nnlab sweep`: its workers stop within 10 s (each checkpoints and marks its
    run interrupted), and --resume ends with every point equal to an uninterrupted sweep."""
    p = _spawn(LONG, runs)
    points = _wait_for_checkpoints(runs, 2)
    workers = [json.loads((runs / run_id / "lock").read_text())["pid"] for run_id in points]
    assert p.pid not in workers
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    deadline = time.time() + 10
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its coordinator"
    for run_id in points:  # each stopped cleanly, with a checkpoint to resume from
        assert folders.open_run(run_id, runs).meta().status == "interrupted"
    sweep_id = _sweep_id(runs)
    r = nnlab("sweep", "--resume", sweep_id)
    assert r.code == 0 and r.out.strip() == sweep_id, r.err
    _assert_same_points(runs, sweep_id, reference)
    for run_id in points:  # no traceback in a worker's log
        assert "Traceback" not in (runs / sweep_id / "logs" / f"{run_id}.log").read_text()


@pytest.mark.slow
def test_resume_waits_for_a_stopping_worker_and_names_one_that_does_not_stop(
    nnlab, runs, monkeypatch
):
    args = ["classifier", "--preset=linear-ce", *FAST, "--epochs=1", "--snapshot_every=0"]
    r = nnlab("sweep", *args, "--seed=1,2", "--jobs=1")
    assert r.code == 0, r.err
    sweep_id = r.out.strip()
    first = folders.Run(runs, _record(runs, sweep_id)["points"][0]["run"])
    first.acquire()  # as a worker of a killed coordinator does until it has stopped
    threading.Timer(0.5, first.release).start()
    r = nnlab("sweep", "--resume", sweep_id)
    assert r.code == 0 and r.out.strip() == sweep_id, r.err
    assert f"waiting for 1 worker(s) of the stopped coordinator to stop ({first.id})" in r.err
    assert {p["status"] for p in _record(runs, sweep_id)["points"]} == {"finished"}

    monkeypatch.setattr(sweep_command, "STOPPING_GRACE_S", 0.3)
    first.acquire()  # one that does not stop
    try:
        r = nnlab("sweep", "--resume", sweep_id)
    finally:
        first.release()
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 2, r.err  # the wait, the error
    assert f"sweep {sweep_id}: run {first.id} is in use by another nnlab process" in r.err
    assert r.err.rstrip().endswith("stop it, then --resume again")


@pytest.mark.slow
def test_a_diverging_point_is_recorded_and_the_others_go_on(nnlab, runs, monkeypatch):
    monkeypatch.setenv("NNLAB_FAULT_NAN_AT_STEP", "30")  # every worker inherits it
    r = nnlab("sweep", "classifier", "--preset=linear-ce", *FAST, "--seed=1,2", "--jobs=2")
    assert r.code == 1
    sweep_id = r.out.strip()
    assert f"sweep {sweep_id}: 2 of 2 points did not finish" in r.err
    assert "diverged (run" in r.err and "loss nan at step 30" in r.err
    rec = _record(runs, sweep_id)
    assert rec["status"] == "failed" and {p["status"] for p in rec["points"]} == {"diverged"}
    monkeypatch.delenv("NNLAB_FAULT_NAN_AT_STEP")
    again = nnlab("sweep", "--resume", sweep_id)  # diverged points are not rerun
    assert again.code == 1 and "skipping 2 diverged point(s)" in again.err


@pytest.mark.parametrize(
    "args,message",
    [
        (["vae", "--beta=1,10", "--bta=1"], "unknown config key 'bta'"),
        (["vae", "--beta="], "give a value or a comma-separated list"),
        (["vae", "--beta=1,-2"], "grid point 1 (beta=-2.0): --beta=-2.0: must not be negative"),
        (["vae", "--beta=1,2", "--beta=3"], "--beta is given twice"),
        (["vae", "--beta=1,2", "--name=a,b"], "--name names the sweep and cannot be swept"),
        (["--resume", "sweep-vae-nope"], "no sweep 'sweep-vae-nope'"),
        (["vae", "--beta=1,2", "--executor=slurm"], "--executor=slurm: choose from local, ray"),
        (["vae", "--beta=1,2", "--jobs=0"], "--jobs=0: expected a whole number of at least 1"),
        (
            [
                "vae",
                "--seed=" + ",".join(map(str, range(101))),
                "--lr=" + ",".join(str(1e-4 * (i + 1)) for i in range(100)),
            ],
            "the grid has 10,100 points, more than 10,000",
        ),
        (["vae", "--epochs=2"], "nothing to sweep"),
        (["--resume", "x", "--beta=1,2"], "--resume takes only"),
        (["nosuch", "--beta=1,2"], "unknown model 'nosuch'"),
        (["vae", "--beta=1,2", "--name=p0"], "a sweep's name may not be p and digits"),
        (["vae", "--hidden_dims=256,128,512"], "sweep a list field as bracketed groups"),
        (["vae", "--beta=[1,10]"], "write the values without brackets, e.g. --beta=1,10"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(nnlab, runs, args, message):
    r = nnlab("sweep", *args)
    assert r.code == 2 and r.out == ""
    assert r.err.startswith("nnlab: error: ") and r.err.count("\n") == 1, r.err
    assert message in r.err
    assert not runs.exists() or not any(runs.iterdir())


def test_ray_executor_without_ray_says_how_to_install(nnlab, runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    r = nnlab("sweep", "vae", "--beta=1,2", "--executor=ray")
    assert r.code == 2 and 'pip install -e ".[ray]"' in r.err and r.err.count("\n") == 1
    assert not runs.exists() or not any(runs.iterdir())


def test_a_grid_over_ten_thousand_points_runs_with_yes(nnlab, runs):
    seeds = ",".join(map(str, range(101)))
    lrs = ",".join(str(1e-4 * (i + 1)) for i in range(100))
    r = nnlab("sweep", "vae", f"--seed={seeds}", f"--lr={lrs}", "--yes", "--dry_run")
    assert r.code == 0 and len(r.out.splitlines()) == 10_101
    assert not runs.exists()


def test_sweeps_are_not_runs(nnlab, runs):
    root = runs
    sw = sweeps.create_sweep(root, "sweep-vae-20260101-000000")
    sw.release()
    (root / sw.id / "sweep.json").write_text("{}")
    for cmd in ("masks", "embed", "decode"):
        r = nnlab(cmd, sw.id)
        assert r.code == 2 and "is a sweep, not a run" in r.err


@pytest.mark.slow
def test_a_point_trained_after_others_in_one_worker_equals_a_fresh_one(nnlab, runs):
    # one worker (2 torch threads, as this process) trains seed 3, then seed 4
    args = ["classifier", "--preset=latent3", *FAST, "--epochs=1", "--snapshot_every=30"]
    shared = nnlab("sweep", *args, "--seed=3,4", "--jobs=1")
    assert shared.code == 0, shared.err
    torch = pytest.importorskip("torch")
    assert torch.get_num_threads() == (os.cpu_count() or 1)
    fresh = nnlab("train", *args, "--seed=4")
    assert fresh.code == 0, fresh.err
    second = _record(runs, shared.out.strip())["points"][1]["run"]
    _assert_same_run(runs, second, fresh.out.strip())


@pytest.mark.parametrize(
    "change",
    [
        {"settings": {"executor": "local", "jobs": "2"}},
        {"settings": {"executor": "slurm", "jobs": 2, "threads": 1, "address": "a", "retries": 2}},
        {"points": []},
        {"grid": {"beta": []}},
        {"base": 7},
        {
            "points": [
                {"run": "x-p0", "values": {"beta": 1.0}, "status": "pending", "attempts": "many"}
            ]
            * 2
        },
        {"points": [{"run": "x-p0", "values": {"beta": 1.0}, "status": "failed", "error": 3}] * 2},
    ],
)
def test_a_damaged_sweep_record_is_one_line(nnlab, runs, change):
    sw = sweeps.create_sweep(runs, "sweep-vae-20260101-000000")
    sw.release()
    rec = {
        "format": 1,
        "model": "vae",
        "base": "model: vae\n",
        "grid": {"beta": [1.0, 2.0]},
        "settings": {"executor": "local", "jobs": 2, "threads": 1, "address": "auto", "retries": 2},
        "points": [
            {"run": f"{sw.id}-p{i}", "values": {"beta": b}, "status": "pending"}
            for i, b in enumerate((1.0, 2.0))
        ],
    }
    rec.update(change)
    (runs / sw.id / "sweep.json").write_text(json.dumps(rec))
    for args in (("sweep", "--resume", sw.id), ("summary", sw.id)):
        r = nnlab(*args)
        assert r.code == 2 and "sweep.json: damaged" in r.err and r.err.count("\n") == 1, r.err
