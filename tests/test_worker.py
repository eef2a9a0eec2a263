"""A sweep's point in its worker: its config rebuilt from sweep.json and checked, and a
folder in its place that the sweep did not make for it never removed or adopted."""

from __future__ import annotations

import json

import pytest
import torch

from nnlab.commands import worker
from nnlab.store import folders, sweeps
from tests.conftest import digests


def test_point_config_rebuilds_from_the_record_and_refuses_tampering(tmp_path):
    from nnlab.config import config, grid

    g = grid.build("vae", [("beta", "1,4"), ("seed", "3")])
    first = g.configs()[0]
    rec = {
        "base": config.to_yaml(first),
        "points": [{"values": p} for p in g.points()],
    }
    assert worker.point_config(rec, 1) == g.configs()[1]
    rec["points"][1]["values"] = {"beta": "4"}
    with pytest.raises(Exception, match="'beta' should be a number"):
        worker.point_config(rec, 1)
    rec["points"][1]["values"] = {"beta": -4.0}
    with pytest.raises(Exception, match="must not be negative"):
        worker.point_config(rec, 1)


def test_a_point_never_removes_or_adopts_a_folder_it_did_not_make(runs):
    """A folder at a point's id that this sweep did not make for that point (another
    sweep, a user's folder, a run of someone else's through a tampered sweep.json) is
    refused in one line and left as it was; such a run never counts as the point."""
    from nnlab.config.config import build, to_yaml
    from nnlab.helpers.errors import RunError

    sw = sweeps.create_sweep(runs, "sweep-vae-20260101-000000")
    sw.release()
    base = to_yaml(build("vae", overrides={"dataset": "mnist-sample", "probe_size": "20"}))
    points = [{"run": f"{sw.id}-p{i}", "values": {"beta": float(i + 1)}} for i in range(3)]
    rec = {"format": 1, "model": "vae", "base": base, "grid": {"beta": [1.0, 2.0, 3.0]}}
    rec["points"] = [{**p, "status": "pending", "attempts": 0} for p in points]
    (sw.path / "sweep.json").write_text(json.dumps(rec))
    other = sweeps.create_sweep(runs, f"{sw.id}-p0")  # another sweep in point 0's place
    other.release()
    (other.path / "sweep.json").write_text("{}")
    mine = runs / f"{sw.id}-p1"  # a user's folder in point 1's place
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    theirs = runs / f"{sw.id}-p2"  # a run of no sweep in point 2's place (tampered record)
    theirs.mkdir()
    run = folders.Run(runs, theirs.name)
    files_meta = {"format": 1, "id": theirs.name, "model": "vae", "status": "finished"}
    run.write_meta(files_meta)
    before = digests(runs)
    threads = torch.get_num_threads()
    for i, needle in (
        (0, "nnlab did not make it"),
        (1, "nnlab did not make it"),
        (2, "not point 2"),
    ):
        with pytest.raises(RunError, match=needle) as e:
            worker.run_point(sw, sw.record(), i, threads=1)
        assert "\n" not in str(e.value)
    assert digests(runs) == before
    assert torch.get_num_threads() == threads  # refused before it set the worker's threads
    assert [sw.point_status(sw.record(), i) for i in range(3)] == [
        "interrupted",
        "interrupted",
        "failed",
    ]


@pytest.mark.parametrize(
    "leftovers, taken",
    [
        ({}, True),  # killed right after mkdir
        ({".tmp-point.json.x1": '{"id"'}, True),  # mid-way through the marker's write
        ({"lock": ""}, True),  # an older nnlab took the lock before it wrote the marker
        ({"lock": "", "notes.txt": "mine"}, False),  # something more: not provably the sweep's
        ({".tmp-config.yaml.x1": "a: 1"}, False),
    ],
)
def test_a_point_folder_killed_before_its_marker_was_whole_is_started_again(runs, leftovers, taken):
    """A coordinator killed while its worker made a point's folder leaves it without its
    marker (seen in CI: a folder holding only its lock, and the resumed point failed)."""
    from nnlab.helpers.errors import RunError

    sw = sweeps.create_sweep(runs, "sweep-vae-20260101-000000")
    sw.release()
    path = runs / f"{sw.id}-p0"
    path.mkdir()
    for name, text in leftovers.items():
        (path / name).write_text(text)
    own = {"id": sw.id, "point": 0}
    if taken:
        worker._remove_unstarted_point(sw, path, own)
        assert not path.exists()
    else:
        with pytest.raises(RunError, match="nnlab did not make it"):
            worker._remove_unstarted_point(sw, path, own)
        assert sorted(p.name for p in path.iterdir()) == sorted(leftovers)


def test_a_point_folder_holds_its_marker_before_its_lock(runs, monkeypatch):
    """The marker is written first, so that a kill at any later moment leaves a folder
    that provably is the point's."""
    seen = []
    acquire = folders.Run.acquire

    def watching(run):
        seen.append(sorted(p.name for p in run.path.iterdir()))
        acquire(run)

    monkeypatch.setattr(folders.Run, "acquire", watching)
    run = folders.create_run(runs, "vae", run_id="s-p0", point={"id": "s", "point": 0})
    run.release()
    assert seen == [[folders.POINT_FILE]]
    assert json.loads((run.path / folders.POINT_FILE).read_text()) == {"id": "s", "point": 0}
