"""Sweep folders: point ids that sort in grid order, ids that never clash, and a list of ids
with each sweep replaced by its usable points."""

from __future__ import annotations

import pytest

from nnlab.helpers.errors import NnlabError
from nnlab.store import folders, sweeps


def test_point_ids_are_padded_to_sort_in_grid_order():
    ids = [sweeps.point_run_id("s", i, 12) for i in range(12)]
    assert ids[:2] == ["s-p00", "s-p01"] and ids == sorted(ids)
    assert sweeps.point_run_id("s", 0, 1) == "s-p0"


def test_a_clash_gets_the_next_suffix_and_a_sweep_is_not_a_run(tmp_path):
    a = sweeps.create_sweep(tmp_path, "sweep-vae-x")
    b = sweeps.create_sweep(tmp_path, "sweep-vae-x")
    try:
        assert (a.id, b.id) == ("sweep-vae-x", "sweep-vae-x-2")
    finally:
        a.release()
        b.release()
    (a.path / folders.SWEEP_FILE).write_text("{}")
    assert sweeps.is_sweep(a.id, tmp_path) and not sweeps.is_sweep("latest", tmp_path)
    with pytest.raises(NnlabError, match="is a sweep, not a run"):
        folders.open_run(a.id, tmp_path)


def test_expanding_keeps_runs_replaces_sweeps_and_caps(tmp_path, monkeypatch):
    s = sweeps.Sweep(tmp_path, "sw")
    s.path.mkdir()
    points = [{"run": f"sw-p{i}"} for i in range(3)]
    monkeypatch.setattr(sweeps.Sweep, "record", lambda self: {"points": points})
    (s.path / folders.SWEEP_FILE).write_text("{}")
    for p in points[:2]:
        (tmp_path / p["run"]).mkdir()
    found = sweeps.expand_sweeps(["r1", "sw"], tmp_path, lambda path: path.exists())
    assert found.runs == ["r1", "sw-p0", "sw-p1"] and found.first_sweep is None
    assert [(x.id, kept, total) for x, kept, total in found.partial] == [("sw", 2, 3)]
    capped = sweeps.expand_sweeps(["sw", "r1"], tmp_path, lambda path: path.exists(), cap=2)
    assert capped.runs == ["sw-p0", "sw-p1"] and capped.before_cap == 3
    assert capped.first_sweep.id == "sw"


def test_the_lock_holder_removes_what_a_killed_record_write_left(tmp_path):
    sw = sweeps.create_sweep(tmp_path, "sweep-vae-y")
    sw.release()
    left = sw.path / ".tmp-sweep.json.abc123"  # a kill between the write and the rename
    left.write_text("{")
    mine = sw.path / "notes.tmp"
    mine.write_text("not a temp file of nnlab's")
    sw.acquire()
    sw.release()
    assert not left.exists() and mine.exists()


def test_a_point_that_is_a_link_to_a_run_elsewhere_never_counts(tmp_path):
    store, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    sw = sweeps.create_sweep(store, "sweep-vae-z")
    sw.release()
    rec = {"points": [{"run": f"{sw.id}-p0"}]}
    real = folders.Run(elsewhere, f"{sw.id}-p0")
    real.path.mkdir(parents=True)
    real.write_meta({"format": 1, "status": "finished", "sweep": {"id": sw.id, "point": 0}})
    (store / real.id).symlink_to(real.path, target_is_directory=True)
    assert sw.point_status(rec, 0) == "failed"
    (store / real.id).unlink()
    real.path.rename(store / real.id)  # the same run inside the store is the point
    assert sw.point_status(rec, 0) == "finished"


def test_reports_and_answers_between_a_point_and_its_coordinator(tmp_path):
    s = sweeps.Sweep(tmp_path, "sw")
    s.path.mkdir()
    assert sweeps.pending_report(s, 3) is None and sweeps.answer(s, 3, 900) is None
    sweeps.post_report(s, 3, 900, -201.5)
    assert sweeps.pending_report(s, 3) == (900, -201.5)
    assert sweeps.pending_report(s, 4) is None  # each point its own files
    sweeps.post_answer(s, 3, 900, False)
    assert sweeps.pending_report(s, 3) is None and sweeps.answer(s, 3, 900) is False
    sweeps.post_report(s, 3, 1800, float("nan"))  # a diverging point: reported as NaN
    label, value = sweeps.pending_report(s, 3)
    assert label == 1800 and value != value
    sweeps.post_answer(s, 3, 1800, True)
    # every answer is kept: a point resumed before an earlier report gets it again
    assert sweeps.answer(s, 3, 900) is False and sweeps.answer(s, 3, 1800) is True
    sweeps.post_report(s, 3, 900, -201.5)
    assert sweeps.pending_report(s, 3) is None


def test_a_search_is_shown_best_first_a_grid_in_grid_order():
    points = [
        {"run": "p0", "status": "pruned", "value": -150.0},
        {"run": "p1", "status": "finished", "value": -190.0},
        {"run": "p2", "status": "failed", "value": None},
        {"run": "p3", "status": "finished", "value": -170.0},
        {"run": "p4", "status": "pruned", "value": -300.0},
    ]
    rec = {"points": points, "search": {"direction": "max"}}
    assert [p["run"] for p in sweeps.ranked(rec)] == ["p3", "p1", "p0", "p4", "p2"]
    rec["search"]["direction"] = "min"
    assert [p["run"] for p in sweeps.ranked(rec)] == ["p1", "p3", "p4", "p0", "p2"]
    assert sweeps.ranked({"points": points}) == points
