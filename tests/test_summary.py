from __future__ import annotations

from nnlab.store import folders
from nnlab.store.metrics import best_values
from tests.conftest import FAST


def test_table_and_json_of_all_runs(nnlab, runs):
    assert nnlab("summary").out.startswith("no runs yet")
    a = nnlab("train", "vae", *FAST, "--snapshot_every=50").out.strip()
    b = nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=1").out.strip()
    table = nnlab("summary").out
    assert a in table and b in table and "finished" in table and "test ELBO" in table
    rows = nnlab("summary", "--json").json()
    assert [r["id"] for r in rows] == [a, b]
    assert rows[1]["model"] == "classifier" and 0 < rows[1]["value"] <= 1


def test_one_run_json_has_config_params_metrics_and_contents(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--beta=10", "--snapshot_every=50").out.strip()
    d = nnlab("summary", run_id, "--json").json()
    assert d["config"]["beta"] == 10.0 and d["dataset"] == "mnist-sample"
    assert d["parameters"]["total"] == 469268
    assert {"test_bce", "test_kl", "test_elbo"} <= set(d["metrics"]["final"])
    assert d["holds"]["snapshots"] == 4  # steps 0, 50, 100 and the final 113
    assert d["holds"]["checkpoints"] == ["final.pt", "latest.pt"]
    assert nnlab("summary", "latest", "--json").json()["id"] == run_id
    text = nnlab("summary", run_id).out
    assert "469,268" in text and "to_latent.weight" in text and "test_elbo" in text


def test_dead_running_run_shows_interrupted(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=0").out.strip()
    folders.Run(runs, run_id).begin()  # as after a kill -9
    assert nnlab("summary", run_id, "--json").json()["status"] == "interrupted"


def test_damaged_meta_shows_in_table(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=0").out.strip()
    (runs / run_id / "meta.json").write_text("{not json")
    assert "damaged" in nnlab("summary").out
    r = nnlab("summary", run_id)
    assert r.code == 2 and "meta.json: damaged" in r.err and "Traceback" not in r.err


def test_best_metrics_direction():
    lines = [
        {"kind": "epoch", "epoch": 1, "val_acc": 0.8, "val_loss": 0.3},
        {"kind": "epoch", "epoch": 2, "val_acc": 0.7, "val_loss": 0.2},
    ]
    best = best_values(lines)
    assert best["val_acc"] == {"value": 0.8, "epoch": 1, "step": None}
    assert best["val_loss"]["epoch"] == 2


def test_latent_metrics_in_summary_and_plot(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=30").out.strip()
    d = nnlab("summary", run_id, "--json").json()
    lm = d["latent_metrics"]
    assert [lm[k]["step"] for k in ("start", "middle", "end")] == [0, 60, 113]
    end = lm["end"]
    for key in (
        "overlap_max",
        "ncm_accuracy",
        "between_within",
        "shape_logdet_spread",
        "kl_per_dim",
        "active_units",
        "aggregate_kl_to_prior",
    ):
        assert key in end
    assert 0 <= end["overlap_max"] <= 1 and len(end["top_overlaps"]) == 3
    text = nnlab("summary", run_id).out
    assert "latent metrics" in text and "most-overlapping classes at the end" in text
    r = nnlab("summary", run_id, "--plot")
    assert r.code == 0 and r.out.strip().endswith("media/metrics.png")
    import imageio.v3 as iio

    from nnlab.render import metrics as plot
    from nnlab.store import folders, metrics

    opened = folders.read_run(run_id)
    lines = metrics.read(opened.run.metrics)
    titles = [t for t, _ in plot.panel_list(opened.cfg, lines, plot._latent_series(opened))]
    assert titles[0] == "loss" and "accuracy" not in titles  # a VAE logs no accuracy
    assert any(t.startswith("unit health") for t in titles)
    assert any(t.startswith("overlap:") for t in titles), titles
    assert "nearest-class-mean accuracy" in titles, titles
    rows = -(-len(titles) // 2)  # two panels a row, 3 inches (300 pixels) each
    assert iio.imread(r.out.strip()).shape[:2] == (300 * rows, 1240)
    assert nnlab("summary", "--plot").code == 2
    l3 = nnlab("train", "classifier", "--preset=latent3", *FAST, "--epochs=1").out.strip()
    end = nnlab("summary", l3, "--json").json()["latent_metrics"]["end"]
    assert "corner_distance_mean" in end and len(end["corners"]) == 10


def test_overlaps_of_a_wide_layer_are_said_to_mean_little(nnlab, store):
    """#38 item 3: a 10-D (or 32-D) layer's overlaps read as a confident 0.00."""
    from tests.conftest import FIXTURE_CLS, FIXTURE_VAE

    wide = nnlab("summary", FIXTURE_CLS).out  # 784-10: the 10-D output layer recorded
    assert "overlaps: n/a for a 10-D layer" in wide and "most-overlapping classes" not in wide
    row = next(line for line in wide.splitlines() if line.startswith("most-overlapping pair"))
    assert row.split()[-3:] == ["n/a", "n/a", "n/a"]
    narrow = nnlab("summary", FIXTURE_VAE).out  # a 2-D latent: the class mixtures' overlaps
    assert "most-overlapping classes at the end (class mixtures)" in narrow and "n/a" not in narrow
    assert nnlab("summary", FIXTURE_CLS, "--json").json()["latent_metrics"]["width"] == 10
