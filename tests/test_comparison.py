"""`nnlab summary SWEEP_ID` (table, JSON, seeds pooled, --plot), the sweeps listed beside
the runs, and `nnlab animate SWEEP_ID`, on a sweep record over the shared tiny runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nnlab.analysis import comparison, latent
from nnlab.render import animate as animate_mod
from nnlab.render.sweepplot import curves
from nnlab.store import folders, record, sweeps

SWEEP = "sweep-vae-20260101-000000"


@pytest.fixture
def swept(trained, runs):
    """A sweep of beta in {1, 10} whose points are copies of the shared tiny VAE runs."""
    root, ids = trained
    runs.mkdir(parents=True, exist_ok=True)
    points = []
    for i, (key, beta) in enumerate((("vae", 1.0), ("vae10", 10.0))):
        run_id = f"{SWEEP}-p{i}"
        shutil.copytree(root / ids[key], runs / run_id)
        point = folders.Run(runs, run_id)  # made by the sweep: its meta.json says so
        point.write_meta({**point.meta().to_json(), "sweep": {"id": SWEEP, "point": i}})
        points.append(
            {"run": run_id, "values": {"beta": beta}, "status": "finished", "attempts": 1}
        )
    (runs / SWEEP).mkdir()
    rec = {
        "format": 1,
        "kind": "sweep",
        "id": SWEEP,
        "model": "vae",
        "command": "nnlab sweep vae --beta=1,10",
        "created": "2026-01-01T00:00:00.000+00:00",
        "status": "finished",
        "base": folders.open_run(points[0]["run"], runs).file("config.yaml").read_text(),
        "grid": {"beta": [1.0, 10.0]},
        "points": points,
    }
    (runs / SWEEP / "sweep.json").write_text(json.dumps(rec))
    return runs


def test_seed_groups_are_mean_and_sample_sd():
    grid = {"beta": [1.0, 4.0], "seed": [0, 1, 2]}
    rng = np.random.default_rng(0)
    points = []
    for beta in grid["beta"]:
        for seed in grid["seed"]:
            points.append(
                {
                    "values": {"beta": beta, "seed": seed},
                    "status": "finished" if (beta, seed) != (4.0, 2) else "failed",
                    "metrics": {"test_loss": float(rng.normal(100, 5)), "ncm_accuracy": None},
                }
            )
    groups = comparison.seed_groups(grid, points, ["test_loss", "ncm_accuracy"])
    assert [g["values"] for g in groups] == [{"beta": 1.0}, {"beta": 4.0}]
    for g, beta, n in zip(groups, grid["beta"], (3, 2), strict=True):
        xs = [
            p["metrics"]["test_loss"]
            for p in points
            if p["values"]["beta"] == beta and p["status"] == "finished"
        ]
        stats = g["metrics"]["test_loss"]
        assert stats["n"] == n and len(g["seeds"]) == n
        assert stats["mean"] == pytest.approx(np.mean(xs))
        assert stats["sd"] == pytest.approx(np.std(xs, ddof=1))
        assert "ncm_accuracy" not in g["metrics"]  # no values: no statistic
    assert comparison.seed_groups({"beta": [1.0, 2.0]}, points[:2], ["test_loss"]) == []


def test_summary_of_a_sweep_reads_each_points_run(nnlab, swept):
    d = nnlab("summary", SWEEP, "--json").json()
    assert d["kind"] == "sweep" and d["status"] == "finished" and d["counts"] == {"finished": 2}
    for p in d["points"]:
        run = folders.open_run(p["run"], swept)
        meta = run.meta()
        assert p["metrics"]["test_elbo"] == pytest.approx(meta.final["test_elbo"])
        assert p["metrics"]["train_loss"] == pytest.approx(meta.final["train_loss"])
        rec = record.load_recording(run.latents, ("mu", "sd"))  # the whole recording, its last row
        last = latent.snapshot_metrics(rec, len(rec) - 1)
        for key in ("overlap_max", "ncm_accuracy", "aggregate_kl_to_prior", "active_units"):
            assert p["metrics"][key] == pytest.approx(last[key]), key
    text = nnlab("summary", SWEEP)
    assert text.code == 0 and "2 points (2 beta): 2 finished" in text.out
    rows = [ln.split("\t") for ln in text.out.splitlines() if ln.startswith(f"{SWEEP}-p")]
    assert [(r[1], r[2]) for r in rows] == [("1.0", "finished"), ("10.0", "finished")]
    assert "mean ± sd" not in text.out  # no seed swept


def test_a_second_summary_reads_the_cached_latent_metrics_only(nnlab, swept, monkeypatch):
    first = nnlab("summary", SWEEP, "--json").json()
    for p in first["points"]:
        assert folders.open_run(p["run"], swept).file(folders.CACHE_FILE).exists()

    def refuse(*a, **k):
        raise AssertionError("read although the cache was valid")

    # A hit reads no recording: that is what keeps 100 points fast. (Each point's config
    # is still read, to check sweep.json's values against the run: ~4 ms a point.)
    monkeypatch.setattr(record, "load_last", refuse)
    monkeypatch.setattr(record, "load_recording", refuse)
    second = nnlab("summary", SWEEP, "--json").json()
    assert [p["metrics"] for p in second["points"]] == [p["metrics"] for p in first["points"]]


def test_runs_table_lists_sweeps_beside_runs(nnlab, swept):
    text = nnlab("summary").out
    runs_part, sweeps_part = text.split("\n\n")
    assert f"{SWEEP}-p0" in runs_part and f"{SWEEP}-p1" in runs_part
    assert sweeps_part.splitlines()[1].split("\t")[:4] == [SWEEP, "vae", "2 beta", "2/2"]
    rows = nnlab("summary", "--json").json()
    kinds = {r["id"]: r["kind"] for r in rows}
    assert kinds[SWEEP] == "sweep" and kinds[f"{SWEEP}-p0"] == "run"


def test_plot_of_a_sweep(nnlab, swept):
    d = comparison.describe(SWEEP, swept)
    ((label, xs, means, sds),) = curves(d, "beta", "test_elbo")
    assert label == "all" and xs == [1.0, 10.0] and sds == [0.0, 0.0]
    assert means == [p["metrics"]["test_elbo"] for p in d["points"]]
    r = nnlab("summary", SWEEP, "--plot")
    assert r.code == 0 and r.out.strip() == str(swept / SWEEP / "media" / "sweep-metrics.png")
    assert (swept / SWEEP / "media" / "sweep-metrics.png").stat().st_size > 10_000


def test_animate_a_sweep_draws_its_points_side_by_side(nnlab, swept, monkeypatch):
    r = nnlab("animate", SWEEP, "--every=3", "--dpi=40")
    assert r.code == 0, r.err
    gif = swept / SWEEP / "media" / "latents-density-every3.gif"
    assert r.out.splitlines()[0] == str(gif) and gif.exists()
    import imageio.v3 as iio

    frame = iio.imread(gif, index=0)
    assert frame.shape[1] > 1.6 * frame.shape[0]  # two panels in a row (one: 0.86)
    monkeypatch.setattr(sweeps, "MAX_SIDE_BY_SIDE", 1)
    capped = nnlab("animate", SWEEP, "--every=3", "--dpi=40", "--out", str(swept / "one.gif"))
    assert capped.code == 0 and "drawing the first 1 of 2 runs" in capped.err
    assert animate_mod.grid_shape(4) == (1, 4) and animate_mod.grid_shape(16) == (4, 4)
    assert animate_mod.grid_shape(5) == (1, 5) and animate_mod.grid_shape(6) == (2, 3)


def test_a_sweep_id_where_a_run_is_needed(nnlab, swept):
    r = nnlab("masks", SWEEP)
    assert r.code == 2 and f"'{SWEEP}' is a sweep, not a run" in r.err


def test_a_point_whose_run_disagrees_with_sweep_json_is_damage(nnlab, swept):
    """sweep.json says what was asked, the run's sealed config what was done: two points'
    values swapped in sweep.json show as damage, not as beta=1's numbers under beta=10."""
    path = swept / SWEEP / "sweep.json"
    rec = json.loads(path.read_text())
    rec["points"][0]["values"], rec["points"][1]["values"] = (
        rec["points"][1]["values"],
        rec["points"][0]["values"],
    )
    path.write_text(json.dumps(rec))
    d = nnlab("summary", SWEEP, "--json").json()
    for p in d["points"]:
        assert p["status"] == "damaged" and "disagrees with its run" in p["error"]
        assert all(v is None for v in p["metrics"].values())
