"""`nnlab layers` end to end: train with --record_layers, draw, print JSON, bad input (#39)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlab.store import folders, layers
from nnlab.training import snapshots
from tests.conftest import run_nnlab

BASE = [
    "train", "classifier", "--dataset=mnist-sample", "--sizes=[784,32,16,10]",
    "--activation=relu", "--loss=ce", "--lr=0.1", "--epochs=1",
]  # fmt: skip
MLP = [*BASE, "--snapshot_every=30", "--probe_size=300"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A small MLP trained with every layer recorded: (runs dir, run id)."""
    runs = tmp_path_factory.mktemp("layers") / "runs"
    r = run_nnlab(*MLP, "--record_layers=all", f"--runs_dir={runs}")
    assert r.code == 0, r.err
    assert "recording 3 layers (h1, h2, out)" in r.err
    return runs, r.out.strip()


def test_every_layer_is_recorded_at_every_snapshot(recorded):
    runs, run_id = recorded
    run = folders.read_run(run_id, runs).run
    rec = layers.load_layers(run.layers, run.latents)
    steps = np.concatenate([np.load(p)["steps"] for p in sorted(run.latents.glob("chunk-*"))])
    assert rec.steps.tolist() == steps.tolist()  # the latent recording's snapshots
    assert {k: v.shape[1:] for k, v in rec.layers.items()} == {
        "h1": (300, 32), "h2": (300, 16), "out": (300, 10)
    }  # fmt: skip
    assert rec.head_weight.shape == (len(rec), 10, 16)
    # the recorded h2 is the latent recording's h2 (the same layer, one pass, not two)
    latent = np.concatenate([np.load(p)["act"] for p in sorted(run.latents.glob("chunk-*"))])
    np.testing.assert_allclose(rec.layers["h2"], latent, atol=2e-3)


def test_layers_draws_and_prints_its_paths(nnlab, recorded):
    runs, run_id = recorded
    r = nnlab("layers", run_id, f"--runs_dir={runs}")
    assert r.code == 0, r.err
    png, gif = r.out.strip().splitlines()
    assert png.endswith("layers-probe.png") and gif.endswith("layers-cka.gif")
    from PIL import Image

    assert Image.open(png).size[0] > 1000 and Image.open(gif).n_frames > 1
    r = nnlab("layers", run_id, "--measure=cka_final", f"--runs_dir={runs}")
    assert r.code == 0 and r.out.strip().splitlines()[0].endswith("layers-cka_final.png")


def test_json_holds_every_measure_and_is_cached(nnlab, recorded):
    runs, run_id = recorded
    r = nnlab("layers", run_id, "--json", f"--runs_dir={runs}")
    assert r.code == 0, r.err
    m = json.loads(r.out)
    n = len(m["steps"])
    assert m["names"] == ["h1", "h2", "out"] and m["collapse_layer"] == "h2"
    assert all(len(m[k][name]) == n for k in ("probe", "ncm", "cka_final") for name in m["names"])
    assert all(v == pytest.approx(1.0) for v in (m["cka_final"][x][-1] for x in m["names"]))
    assert np.array(m["cka"]).shape == (n, 3, 3)
    assert m["probe"]["h2"][-1] > m["probe"]["h2"][0]  # the layer learnt to separate
    assert m["collapse"]["nc1"][-1] < m["collapse"]["nc1"][0]
    run = folders.read_run(run_id, runs).run
    assert run.layers_cache_file.is_file()
    again = nnlab("layers", run_id, "--json", f"--runs_dir={runs}")
    assert json.loads(again.out) == m and "measuring layers" not in again.err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--record_layers=h1,h9", "--snapshot_every=30"], "no layer 'h9' in this network"),
        (["--record_layers=all", "--snapshot_every=0"], "give --snapshot_every too"),
        (["--record_layers=all", "--probe_size=10000", "--snapshot_every=1"], "budget"),
    ],
)
def test_bad_layer_requests_are_one_line_and_write_nothing(nnlab, runs, args, needle, monkeypatch):
    from nnlab.training import observers

    monkeypatch.setattr(observers, "LAYERS_BUDGET_BYTES", 10_000_000)
    r = nnlab(*BASE, *args, f"--runs_dir={runs}")
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not runs.exists() or not any(p.name.startswith("classifier") for p in runs.iterdir())


def test_layers_of_a_run_with_one_layer_says_what_to_run(nnlab, runs):
    r = nnlab(*MLP, f"--runs_dir={runs}")
    r = nnlab("layers", r.out.strip(), f"--runs_dir={runs}")
    assert r.code == 2 and "--record_layers=all" in r.err and len(r.err.splitlines()) == 1
    r = nnlab("layers", "latest", "--measure=nc9", f"--runs_dir={runs}")
    assert r.code == 2 and "nc9" in r.err


def test_a_cnns_feature_maps_are_reduced_to_one_number_per_channel():
    """layer_reduction=mean: each channel's mean over positions; raw: every value."""
    from nnlab.families.networks import ConvClassifier

    torch.manual_seed(0)
    model = ConvClassifier([1, 12, 12], [4, 6], [784, 8, 3])
    x = torch.rand(7, 144)
    mean, _ = snapshots.capture_layers(model, ["conv1", "conv2", "pool", "fc1", "fc2"], x, "mean")
    assert [t.shape[1] for t in mean] == [4, 6, 6, 8, 3]
    raw = snapshots.capture_layers(model, ["conv2"], x, "raw")[0][0]
    assert raw.shape == (7, 6 * 8 * 8)
    np.testing.assert_allclose(raw.view(7, 6, 64).mean(2), mean[1], atol=1e-6)
    np.testing.assert_allclose(
        mean[-1], model.eval()(x).detach(), atol=1e-6
    )  # one pass: the outputs
    assert model.taps is None


def test_summary_shows_each_layer_and_the_collapse(nnlab, recorded):
    runs, run_id = recorded
    d = nnlab("summary", run_id, "--json", f"--runs_dir={runs}").json()
    lay = d["layers"]
    assert list(lay["layers"]) == ["h1", "h2", "out"] and lay["collapse_layer"] == "h2"
    m = nnlab("layers", run_id, "--json", f"--runs_dir={runs}").json()
    assert lay["layers"]["h1"]["probe"] == [m["probe"]["h1"][0], m["probe"]["h1"][-1]]
    assert lay["collapse"]["nc1"] == [m["collapse"]["nc1"][0], m["collapse"]["nc1"][-1]]
    text = nnlab("summary", run_id, f"--runs_dir={runs}").out
    assert "layers over the recording" in text and "neural collapse of h2: NC1" in text
    plain = nnlab(*MLP, f"--runs_dir={runs}").out.strip()
    assert nnlab("summary", plain, "--json", f"--runs_dir={runs}").json()["layers"] is None


def test_animate_draws_any_recorded_layer(nnlab, recorded):
    """--layer: a layer --record_layers kept, drawn as the recorded one is (PCA here: 32-D),
    titled with its name; unknown names and runs of one layer are one line."""
    runs, run_id = recorded
    r = nnlab("animate", run_id, "--layer=h1", f"--runs_dir={runs}")
    assert r.code == 0, r.err
    gif, png = r.out.strip().splitlines()
    assert gif.endswith("latents-scatter-h1.gif") and png.endswith(".png")
    from nnlab.render.sources import load_source

    src = load_source(run_id, runs, "auto", "h1")
    assert src.rec.points.shape[2] == 32 and src.axis_labels[0].startswith("PC1")
    run = folders.read_run(run_id, runs).run
    np.testing.assert_array_equal(
        src.rec.points, layers.load_layers(run.layers, run.latents).layers["h1"]
    )
    r = nnlab("animate", run_id, "--layer=h7", f"--runs_dir={runs}")
    assert r.code == 2 and "--layer=h7: not recorded" in r.err and "h1, h2, out" in r.err


def test_project_embeds_any_recorded_layer_kept_apart(nnlab, recorded):
    """#39: project --layer (and animate --layer --projection) embeds a kept layer, in a
    file of its own that follows that layer's recording, not the recorded layer's."""
    runs, run_id = recorded
    r = nnlab("project", run_id, "--layer=h1", "--method=pca", f"--runs_dir={runs}")
    assert r.code == 0, r.err
    path = Path(r.out.strip())
    assert path.name == "pca-h1-300-every1.npz"
    mine = nnlab("project", run_id, "--method=pca", f"--runs_dir={runs}").out.strip()
    assert Path(mine).name == "pca-300-every1.npz"
    with np.load(path) as z:
        coords = z["coords"]
    run = folders.read_run(run_id, runs).run
    h1 = layers.load_layers(run.layers, run.latents).layers["h1"].astype(np.float64)
    last = h1[-1] - h1[-1].mean(0)
    _, _, vt = np.linalg.svd(last, full_matrices=False)
    expected = (h1[-1] - h1[-1].mean(0)) @ vt[:2].T
    for d in range(2):  # a principal axis up to its sign
        assert abs(np.corrcoef(coords[-1][:, d], expected[:, d])[0, 1]) > 0.999
    r = nnlab("animate", run_id, "--layer=h1", "--projection=pca", f"--runs_dir={runs}")
    assert r.code == 0 and "latents-scatter-pca-h1.gif" in r.out, r.err
    r = nnlab("project", run_id, "--layer=../x", "--method=pca", f"--runs_dir={runs}")
    assert r.code == 2 and len(r.err.splitlines()) == 1


def test_summary_plot_and_the_report_chart_every_layer(nnlab, recorded, tmp_path):
    """summary --plot gains the layer panels; the report's (and the server's) page carries
    each layer's probe accuracy and CKA to its final state, and the collapse, as charts."""
    from nnlab.render.metrics import LAYER_PANELS, panel_titles
    from nnlab.render.report import page_data

    runs, run_id = recorded
    r = nnlab("summary", run_id, "--plot", f"--runs_dir={runs}")
    assert r.code == 0 and r.out.strip().endswith("metrics.png"), r.err
    assert panel_titles(run_id, runs)[-3:] == list(LAYER_PANELS)
    data = page_data([run_id], runs, points=100)
    lay = data["runs"][0]["metrics"]["layers"]
    m = nnlab("layers", run_id, "--json", f"--runs_dir={runs}").json()
    assert lay["names"] == m["names"] and lay["probe"] == m["probe"]
    assert lay["collapse"]["nc1"] == m["collapse"]["nc1"]
    from tests import browser

    if browser.missing():
        return
    r = nnlab("report", run_id, f"--out={tmp_path / 'r.html'}", f"--runs_dir={runs}")
    assert r.code == 0, r.err
    with browser.page_of(tmp_path / "r.html") as (page, errors):
        page.wait_for_timeout(300)
        titles = [c["title"] for c in page.evaluate("window.nnlabReport.charts()")]
        assert "linear-probe accuracy per layer" in titles
        assert "neural collapse of h2, log10" in titles and errors == []


def test_the_read_api_gives_the_same_measures(recorded):
    import nnlab

    runs, run_id = recorded
    run = nnlab.open(run_id, runs_dir=runs)
    m = run.layer_measures()
    assert m["names"] == ["h1", "h2", "out"] and len(m["cka"]) == len(m["steps"])


def test_a_vaes_encoder_layers_beside_its_posterior(nnlab, tmp_path):
    """#39: a VAE records its encoder's layers and mu (through its encoder: the forward
    pass would draw samples and change training, so the run is the same without them)."""
    from nnlab.store import metrics

    base = ["train", "vae", "--dataset=mnist-sample", "--epochs=1", "--snapshot_every=40"]
    base += ["--probe_size=200", f"--runs_dir={tmp_path}"]
    plain = nnlab(*base).out.strip()
    r = nnlab(*base, "--record_layers=all")
    assert r.code == 0 and "recording 3 layers (enc1, enc2, mu)" in r.err, r.err
    layered = r.out.strip()

    def lines(run_id):
        drop = ("time", "wall")
        return [
            {k: v for k, v in line.items() if not k.startswith(drop)}
            for line in metrics.read(tmp_path / run_id / "metrics.jsonl")
        ]

    assert lines(plain) == lines(layered)
    m = nnlab("layers", layered, "--json", f"--runs_dir={tmp_path}").json()
    assert m["names"] == ["enc1", "enc2", "mu"] and m["collapse"] is None
    latent = np.concatenate(
        [np.load(p)["mu"] for p in sorted((tmp_path / layered / "latents").glob("chunk-*"))]
    )
    run = folders.read_run(layered, tmp_path).run
    np.testing.assert_allclose(layers.load_layers(run.layers, run.latents).layers["mu"], latent)
    r = nnlab("train", "vae", "--record_layers=h1", f"--runs_dir={tmp_path}")
    assert r.code == 2 and "choose from: all, enc1, enc2, mu" in r.err
