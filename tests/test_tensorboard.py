"""TensorBoard while training (`--tensorboard=true`): every scalar read back with
TensorBoard's own reader equals metrics.jsonl and the recording, and a killed and resumed
run shows no step twice and none missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nnlab import families
from nnlab.analysis import latent
from nnlab.store import folders, metrics, record
from nnlab.training import tensorboard
from tests.conftest import FAST

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a log folder as [(step, value)], as TensorBoard reads it."""
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def expected_from_metrics(path) -> dict[str, dict[int, float]]:
    """What metrics.jsonl says each train/ and epoch/ tag holds, step by step."""
    out: dict[str, dict[int, float]] = {}
    for line in metrics.read(path):
        step, values = tensorboard.line_scalars(line)
        for tag, v in values.items():
            assert step not in out.setdefault(tag, {}), (tag, step)
            out[tag][step] = v
    return out


def assert_scalars_match_run(scalars: dict, run: folders.Run, all_snapshots: bool) -> None:
    expected = expected_from_metrics(run.metrics)
    for tag, by_step in expected.items():
        got = scalars[tag]
        assert [s for s, _ in got] == sorted(by_step), tag  # each step once, none missing
        for step, value in got:
            assert value == pytest.approx(by_step[step], rel=1e-6, abs=1e-6), (tag, step)
    cfg = run.config()
    epochs = [m for m in metrics.read(run.metrics) if m.get("kind") == "epoch"]
    assert [s for s, _ in scalars["train/lr"]] == [m["step"] for m in epochs]
    assert all(v == pytest.approx(cfg.lr) for _, v in scalars["train/lr"])
    rec = record.load_recording(run.latents, families.of(cfg).arrays)
    index = {int(s): i for i, s in enumerate(rec.steps)}
    latent_steps = [s for s, _ in scalars["latent/ncm_accuracy"]]
    assert len(set(latent_steps)) == len(latent_steps) and set(latent_steps) <= set(index)
    if all_snapshots:
        assert latent_steps == [int(s) for s in rec.steps]
    assert latent_steps[-1] == int(rec.steps[-1])  # the last snapshot always
    for step in latent_steps[:3] + latent_steps[-2:]:
        numbers = tensorboard.latent_scalars(latent.snapshot_metrics(rec, index[step]))
        for tag, value in numbers.items():
            got = dict(scalars[tag])[step]
            assert got == pytest.approx(value, rel=1e-5, abs=1e-6), (tag, step)


def test_tags_of_lines_and_latent_metrics():
    step, values = tensorboard.line_scalars(
        {"kind": "step", "step": 50, "epoch": 0.44, "loss": 2.5}
    )
    assert (step, values) == (50, {"train/loss": 2.5})
    _, values = tensorboard.line_scalars(
        {"kind": "epoch", "epoch": 1, "step": 113, "test_acc": 0.9}
    )
    assert values == {"epoch/test_acc": 0.9}
    assert tensorboard.line_scalars({"kind": "diverged", "step": 3, "loss": "nan"})[1] == {}
    scalars = tensorboard.latent_scalars({"step": 4, "ncm_accuracy": 0.5, "kl_per_dim": [0.1, 0.2]})
    assert scalars == {
        "latent/ncm_accuracy": 0.5,
        "latent/kl_per_dim/z1": 0.1,
        "latent/kl_per_dim/z2": 0.2,
    }


def test_live_scalars_equal_the_runs_own_records(nnlab, runs):
    r = nnlab("train", "vae", *FAST, "--epochs=2", "--snapshot_every=20", "--tensorboard=true")
    assert r.code == 0, r.err
    run = folders.open_run(r.out.strip(), runs)
    assert run.config().tensorboard is True
    scalars = read_scalars(run.file("tensorboard"))
    assert_scalars_match_run(scalars, run, all_snapshots=False)


def test_off_by_default_writes_nothing(nnlab, runs):
    r = nnlab("train", "vae", *FAST, "--snapshot_every=0")
    assert not folders.open_run(r.out.strip(), runs).file("tensorboard").exists()


def test_without_tensorboard_installed_it_says_how(nnlab, runs, monkeypatch):
    monkeypatch.setattr(tensorboard, "available", lambda: False)
    r = nnlab("train", "vae", *FAST, "--tensorboard=true")
    assert r.code == 2 and 'pip install -e ".[tensorboard]"' in r.err
    assert r.err.count("\n") == 1 and not runs.exists()


@pytest.mark.slow
def test_killed_and_resumed_run_shows_each_step_once(nnlab, runs):
    args = ["train", "vae", *FAST, "--epochs=3", "--checkpoint_every_steps=20"]
    args += ["--snapshot_every=10", "--tensorboard=true"]
    env = dict(os.environ, NNLAB_RUNS=str(runs), PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [sys.executable, "-m", "nnlab", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    run_id = None
    while time.time() < deadline:  # kill between checkpoints, past the first epoch
        metas = list(runs.glob("*/meta.json"))
        if metas:
            try:
                meta = json.loads(metas[0].read_text())
            except ValueError:
                continue
            if meta.get("resumable_step", 0) >= 130:
                run_id = meta["id"]
                time.sleep(0.15)
                break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert run_id and p.returncode == -signal.SIGKILL
    r = nnlab("train", "--resume", run_id)
    assert r.code == 0, r.err
    run = folders.open_run(run_id, runs)
    files = list(run.file("tensorboard").iterdir())
    assert len(files) == 2  # one event file per process
    assert_scalars_match_run(read_scalars(run.file("tensorboard")), run, all_snapshots=False)


def test_a_resumed_writer_replaces_what_an_earlier_one_wrote_from_its_purge_step(tmp_path):
    first = tensorboard.Writer(tmp_path)  # a process that got to step 10, then died
    for step in range(1, 11):
        first.scalars(step, {"train/loss": float(step)})
    first.close()
    # as a killed process's file: a name with the same second and a higher pid than this
    # process's sorts after a file this process makes within that second, unless the new
    # writer waits for the next second (TensorBoard reads in name order; seen in CI)
    (made,) = tmp_path.iterdir()
    parts = made.name[len(tensorboard.EVENTS_PREFIX) :].split(".")
    assert parts[0].isdigit()
    parts[0] = str(max(int(parts[0]), int(time.time())))
    parts[-2] = "9" * 12  # the pid: after any
    made.rename(tmp_path / (tensorboard.EVENTS_PREFIX + ".".join(parts)))
    second = tensorboard.Writer(tmp_path, purge_step=6)  # resumed from its checkpoint at step 5
    for step in range(6, 13):
        second.scalars(step, {"train/loss": 100.0 + step})
    second.close()
    got = read_scalars(tmp_path)["train/loss"]
    assert [s for s, _ in got] == list(range(1, 13))
    assert [v for _, v in got] == [float(s) for s in range(1, 6)] + [
        100.0 + s for s in range(6, 13)
    ]
