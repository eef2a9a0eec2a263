"""Fingerprints of a run and of the store (nnlab.server.watch): equal while nothing
changes, different after each kind of change a page must be told of."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nnlab.server import watch
from nnlab.store import folders, labels
from tests.conftest import FIXTURE_STORE
from tests.conftest import FIXTURE_VAE as VAE


def _store(runs: Path) -> Path:
    shutil.copytree(FIXTURE_STORE, runs)
    return runs


def test_a_run_s_print_changes_with_each_of_its_files(runs):
    root = _store(runs)
    run = folders.Run(root, VAE)
    changes = [
        lambda: run.metrics.open("a").write("{}\n"),  # a metric line
        lambda: (run.latents / "chunk-999999.npz").write_bytes(b"x"),  # a snapshot
        lambda: run.meta_file.write_text(run.meta_file.read_text() + " "),  # a status
        lambda: labels.change(run, add=["t"]),  # a tag
    ]
    before = watch.run_print(root, VAE)
    assert watch.run_print(root, VAE) == before
    for change in changes:
        change()
        now = watch.run_print(root, VAE)
        assert now != before
        before = now
    assert watch.run_print(root, "nope") == ((), (), ())  # gone: no files, no error


def test_a_sweep_s_print_covers_its_record_and_points(runs):
    root = _store(runs)
    (root / "s1").mkdir()
    (root / "s1" / folders.SWEEP_FILE).write_text("{}")
    before = watch.item_print(root, "s1")
    shutil.copytree(root / VAE, root / "s1-p0")
    (root / "s1-p0" / folders.POINT_FILE).write_text(json.dumps({"id": "s1", "point": 0}))
    after = watch.item_print(root, "s1")
    assert after != before
    (root / "s1-p0" / folders.METRICS_FILE).open("a").write("{}\n")
    assert watch.item_print(root, "s1") != after


def test_the_store_print_sees_runs_come_and_go_and_ignores_the_rest(runs):
    root = _store(runs)
    before = watch.store_print(root)
    (root / ".trash").mkdir()
    (root / "notes.txt").write_text("x")
    assert watch.store_print(root) == before  # not runs
    shutil.copytree(root / VAE, root / "vae-2")
    assert watch.store_print(root) != before
    shutil.rmtree(root / "vae-2")
    assert watch.store_print(root) == before
    assert watch.store_print(root / "none") == ()
