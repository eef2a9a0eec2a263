"""Permuted tasks (--permute_every): seeded permutations stored in the run, which task a
snapshot or checkpoint belongs to, and a permuted run end to end (metrics, summary,
animate's title, embed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nnlab.config import tasks
from nnlab.helpers import files
from nnlab.store import folders, metrics, record
from nnlab.training.loading import load_model
from nnlab.training.models import encode_latents
from tests.conftest import FAST


def test_permutations_are_seeded_and_task_zero_is_the_identity():
    assert np.array_equal(tasks.permutation(3, 0), np.arange(784))
    a, b = tasks.permutation(3, 5), tasks.permutation(3, 5)
    assert np.array_equal(a, b) and np.array_equal(np.sort(a), np.arange(784))
    assert not np.array_equal(a, tasks.permutation(3, 6))
    assert not np.array_equal(a, tasks.permutation(4, 5))


@pytest.mark.parametrize(
    "epoch,every,task",
    [(0.0, 2, 0), (0.5, 2, 0), (2.0, 2, 0), (2.01, 2, 1), (4.0, 2, 1), (4.5, 2, 2), (3.0, 1, 2)],
)
def test_the_task_of_a_position(epoch, every, task):
    assert tasks.at(epoch, every) == task


def test_training_task_and_count():
    assert [tasks.training(e, 2) for e in range(5)] == [0, 0, 1, 1, 2]
    assert tasks.count(5, 2) == 3 and tasks.count(4, 2) == 2 and tasks.count(3, 0) == 1


def test_the_stored_table_is_checked(tmp_path):
    path = tmp_path / folders.TASKS_FILE
    tasks.write(path, seed=1, every=2, epochs=5)
    perms = tasks.read(path, 3, seed=1)
    assert perms.shape == (3, 784) and np.array_equal(perms[2], tasks.permutation(1, 2))
    with pytest.raises(Exception, match="expected 4 permutations"):
        tasks.read(path, 4, seed=1)
    with pytest.raises(Exception, match="not the permutations of the run's seed 2"):
        tasks.read(path, 3, seed=2)  # valid permutations, but another seed's
    swapped = perms[[0, 2, 1]]  # task 1 and task 2 exchanged: each row still a permutation
    files.save_npz(path, perms=swapped.astype(np.int16))
    with pytest.raises(Exception, match="not the permutations of the run's seed 1"):
        tasks.read(path, 3, seed=1)
    bad = perms.copy()
    bad[1, 0] = bad[1, 1]
    files.save_npz(path, perms=bad.astype(np.int16))
    with pytest.raises(Exception, match="not a permutation"):
        tasks.read(path, 3, seed=1)


PERMUTED = [
    "train",
    "classifier",
    *FAST,
    "--sizes=[784,20,10]",
    "--activation=relu",
    "--loss=ce",
    "--lr=0.1",
    "--batch_size=50",
    "--epochs=4",
    "--permute_every=2",
    "--snapshot_every=30",
]


@pytest.fixture(scope="module")
def permuted(tmp_path_factory):
    """A 4-epoch run of two tasks of two epochs each."""
    import contextlib
    import io

    from nnlab.commands import cli

    root = tmp_path_factory.mktemp("permuted")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        cli.main([*PERMUTED, f"--runs_dir={root}"])
    return root, out.getvalue().strip()


def test_a_permuted_run_logs_tasks_and_evaluates_each_on_its_own_pixels(permuted):
    root, run_id = permuted
    run = folders.open_run(run_id, root)
    lines = metrics.read(run.metrics)
    task_lines = metrics.of_kind(lines, "task")
    assert [(t["task"], t["epoch"]) for t in task_lines] == [(0, 2), (1, 4)]
    epochs = metrics.of_kind(lines, "epoch")
    assert [e["task"] for e in epochs] == [0, 0, 1, 1]
    assert task_lines[1]["test_acc"] == epochs[-1]["test_acc"]
    assert "h1_dead" in epochs[-1] and "h1_effective_rank" in epochs[-1]
    # the final test accuracy is on task 1's permutation: recompute it by hand
    cfg, model, _ = load_model(run, "final")
    from nnlab.training import data

    splits = data.load(cfg.dataset, None, cfg.val_fraction, cfg.seed)
    order = torch.from_numpy(tasks.read(run.tasks_file, 2, cfg.seed)[1])
    with torch.no_grad():
        acc = (model(splits.test_x[:, order]).argmax(1) == splits.test_y).float().mean()
    assert float(acc) == pytest.approx(epochs[-1]["test_acc"], abs=1e-6)


def test_snapshots_are_encoded_as_their_task_shows_the_images(permuted):
    root, run_id = permuted
    run = folders.open_run(run_id, root)
    rec = record.load_recording(run.latents, ("act",))
    cfg, model, ck = load_model(run, "final")
    from nnlab.training import data

    splits = data.load(cfg.dataset, None, cfg.val_fraction, cfg.seed)
    assert tasks.at(float(rec.epochs[-1]), 2) == 1
    order = torch.from_numpy(tasks.permutation(cfg.seed, 1))
    x = splits.test_x[torch.from_numpy(rec.indices)][:, order]
    # float16 storage: relative error <= 4.9e-4
    np.testing.assert_allclose(rec.points[-1], encode_latents(model, cfg, x).points, rtol=1e-3)
    unpermuted = encode_latents(model, cfg, splits.test_x[torch.from_numpy(rec.indices)]).points
    assert np.abs(rec.points[-1] - unpermuted.numpy()).max() > 0.1


def test_summary_animate_and_embed_know_the_task(permuted, nnlab, monkeypatch):
    root, run_id = permuted
    s = nnlab("summary", run_id, f"--runs_dir={root}")
    assert s.code == 0, s.err
    assert "tasks 2 of 2 done, 2 epoch(s) each" in s.out and "unit health" in s.out
    d = nnlab("summary", run_id, "--json", f"--runs_dir={root}").json()
    assert [t["task"] for t in d["tasks"]["per_task"]] == [0, 1]
    assert "h1" in d["unit_health"]["last"]
    titles = []
    from nnlab.render import animate as animate_mod

    original = animate_mod._Renderer.frame

    def spy(self, i, row):
        out = original(self, i, row)
        titles.append(self.titles[0][0].get_text())
        return out

    monkeypatch.setattr(animate_mod._Renderer, "frame", spy)
    a = nnlab("animate", run_id, f"--runs_dir={root}")
    assert a.code == 0, a.err
    assert "task 0" in titles[0] and "task 1" in titles[-1]
    e = nnlab("embed", run_id, f"--runs_dir={root}", "--checkpoint=final")
    assert e.code == 0 and e.out.strip().endswith("-task1.npz"), e.err
    assert int(np.load(e.out.strip(), allow_pickle=False)["task"]) == 1
    e0 = nnlab("embed", run_id, f"--runs_dir={root}", "--task=0")
    assert e0.code == 0 and e0.out.strip().endswith("-task0.npz")
    bad = nnlab("embed", run_id, f"--runs_dir={root}", "--task=5")
    assert bad.code == 2 and "tasks 0 to 1" in bad.err


def test_task_flags_that_do_not_apply(nnlab, trained):
    root, runs = trained
    r = nnlab("embed", runs["l3"], f"--runs_dir={root}", "--task=1")
    assert r.code == 2 and "--permute_every" in r.err
    r = nnlab("train", "vae", "--permute_every=2")
    assert r.code == 2 and "'permute_every'" in r.err and "classifier" in r.err
    r = nnlab("train", "classifier", "--permute_every=-1")
    assert r.code == 2 and "--permute_every=-1" in r.err


@pytest.mark.slow
def test_a_task_of_a_few_thousand_images_costs_well_under_a_second(nnlab, runs):
    """20 tasks of one epoch of the sample's 3,600 training images (784-100-10, batch 32):
    the whole run's training time over its tasks."""
    r = nnlab(
        "train",
        "classifier",
        "--dataset=mnist-sample",
        "--sizes=[784,100,10]",
        "--activation=relu",
        "--loss=ce",
        "--lr=0.05",
        "--batch_size=32",
        "--epochs=20",
        "--permute_every=1",
        "--snapshot_every=0",
        "--probe_size=500",
        "--checkpoint_every_steps=0",
    )
    assert r.code == 0, r.err
    meta = folders.open_run(r.out.strip(), runs).meta()
    per_task = meta.train_seconds / 20
    assert per_task < 0.6, per_task
    print(json.dumps({"seconds_per_task": per_task}))
