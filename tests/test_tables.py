"""The summary as text: the runs table whole for a pipe, and a run's page with each section
it has data for."""

from __future__ import annotations

from nnlab.render.tables import render_run, render_runs


def test_runs_table_for_a_pipe_and_a_damaged_run():
    rows = [
        {
            "id": "vae-1",
            "model": "vae",
            "dataset": "mnist-sample",
            "epochs_done": 1,
            "steps_done": 113,
            "headline": "test ELBO",
            "value": -180.123,
            "status": "finished",
            "created": "2026-01-01T10:00:00.000+00:00",
            "settings": "beta=10 epochs=10",
        },
        {"id": "odd", "status": "damaged"},
    ]
    lines = render_runs(rows, color=False).splitlines()
    assert lines[0].split("\t")[0] == "id" and len(lines) == 3
    assert lines[1].split("\t") == [
        "vae-1",
        "vae",
        "mnist-sample",
        "1",
        "113",
        "test ELBO -180.12",
        "finished",
        "2026-01-01 10:00:00",
        "beta=10 epochs=10",  # what sets it apart from the model's defaults
    ]
    assert lines[2].split("\t")[0] == "odd" and "damaged" in lines[2]
    assert "nnlab train vae" in render_runs([], color=False)


def _run(**changes) -> dict:
    d = {
        "id": "r",
        "model": "classifier",
        "status": "finished",
        "path": "/runs/r",
        "problems": [],
        "dataset": "mnist-sample",
        "dataset_requested": "mnist-sample",
        "data_source": "bundled",
        "device": "cpu",
        "versions": {"nnlab": "0.1.0", "torch": "2.x", "python": "3.11"},
        "created": "c",
        "ended": None,
        "config": {"lr": 3.0},
        "parameters": {"layers": [{"name": "w", "shape": [10, 784], "count": 7840}], "total": 7840},
        "progress": {"epochs_done": 1, "steps_done": 5, "resumable_step": 5, "steps_per_epoch": 5},
        "metrics": {
            "final": {"kind": "epoch", "step": 5, "test_acc": 0.5},
            "best": {"test_acc": {"value": 0.6, "epoch": 1, "step": 5}},
            "last_step": None,
        },
        "timings": {"train_seconds": 2.0, "steps_per_second": 2.5},
        "latent_metrics": None,
        "unit_health": {},
        "tasks": None,
        "holds": {
            "checkpoints": ["final.pt"],
            "snapshots": 0,
            "snapshot_chunks": 0,
            "probe": {"split": "test", "size": 10},
            "media": [],
            "embeddings": [],
        },
    }
    d.update(changes)
    return d


def test_a_runs_page_has_its_sections_and_says_what_is_damaged():
    text = render_run(_run())
    for section in ("config", "parameters", "metrics", "progress", "timings", "holds"):
        assert section in text
    assert "lr=3.0" in text and "7,840" in text and "0.5000" in text and "0.6000" in text
    damaged = render_run(_run(problems=["runs/r/final.pt: missing"], status="damaged"))
    assert "damaged: runs/r/final.pt: missing" in damaged


def test_a_failure_before_anything_was_recorded_is_told_apart():
    """#38 item 2: failed attempts of an own loop looked like any failed run."""
    from nnlab.render.tables import render_runs

    base = {"kind": "run", "model": "own", "dataset": "own", "epochs_done": 0,
            "headline": "final", "value": None, "created": "", "settings": ""}  # fmt: skip
    rows = [
        {**base, "id": "own-a", "status": "failed", "steps_done": 0, "snapshots": 0},
        {**base, "id": "own-b", "status": "failed", "steps_done": 40, "snapshots": 3},
    ]
    lines = render_runs(rows).splitlines()
    assert "\tfailed (nothing recorded)\t" in lines[1] and "\tfailed\t" in lines[2]
