"""`nnlab export --to=tensorboard`: scalars equal to the store, projector files that fit
together, images, the HParams table of a sweep, no doubled export, and a real TensorBoard
server that serves what was exported."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from nnlab.render import export
from nnlab.store import folders, record

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402

from tests.conftest import digests  # noqa: E402
from tests.test_tensorboard import assert_scalars_match_run, read_scalars  # noqa: E402

SWEEP = "sweep-vae-20260101-000000"


@pytest.fixture
def copied(trained, runs):
    """Copies of the shared VAE (beta 1 and 10) and latent3 runs in this test's store."""
    root, ids = trained
    runs.mkdir(parents=True, exist_ok=True)
    for key in ("vae", "vae10", "l3"):
        shutil.copytree(root / ids[key], runs / ids[key])
    return ids


def _accumulator(folder: Path):
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


def test_export_of_a_vae_run(nnlab, runs, copied):
    r = nnlab("export", copied["vae"], "--snapshots=first,last")
    assert r.code == 0, r.err
    run = folders.open_run(copied["vae"], runs)
    out = Path(r.out.strip())
    assert out == run.file("media", "tensorboard")
    assert_scalars_match_run(read_scalars(out), run, all_snapshots=True)
    assert "latent space" in _accumulator(out).Tags()["images"]
    # the projector: each embedding's tensor, labels and sprite agree in size
    rec = record.load_recording(run.latents, ("mu", "sd"))
    config = (out / "projector_config.pbtxt").read_text()
    tensors = [line.split('"')[1] for line in config.splitlines() if "tensor_path" in line]
    metas = [line.split('"')[1] for line in config.splitlines() if "metadata_path" in line]
    sprites = [line.split('"')[1] for line in config.splitlines() if "image_path" in line]
    assert len(tensors) == len(metas) == len(sprites) == 2
    assert config.count("single_image_dim: 28") == 4
    n = min(len(rec.labels), export.MAX_PROJECTOR_POINTS)
    for t, m, s in zip(tensors, metas, sprites, strict=True):
        points = np.loadtxt(out / t, delimiter="\t", ndmin=2)
        assert points.shape == (n, 2)
        labels = (out / m).read_text().splitlines()
        assert len(labels) == n and set(labels) <= {str(c) for c in range(10)}
        import imageio.v3 as iio

        sprite = iio.imread(out / s)
        side = math.ceil(math.sqrt(n))
        assert sprite.shape[:2] == (28 * side, 28 * side)
    first_step = tensors[0].split("/")[0]
    last = np.loadtxt(out / tensors[1], delimiter="\t", ndmin=2)
    keep = export.projector_subset(rec.labels, run.config().seed)
    assert int(first_step) == int(rec.steps[0])
    np.testing.assert_allclose(last, rec.points[-1][keep], rtol=1e-5, atol=1e-5)


def test_export_of_a_classifier_has_masks(nnlab, runs, copied):
    r = nnlab("export", copied["l3"], "--snapshots=last")
    assert r.code == 0, r.err
    acc = _accumulator(Path(r.out.strip()))
    assert {"latent space", "first-layer masks"} <= set(acc.Tags()["images"])
    masks = acc.Images("first-layer masks")
    assert [m.step for m in masks] == [int(folders.open_run(copied["l3"], runs).meta().steps_done)]


def test_export_twice_refuses_then_replaces_with_force(nnlab, runs, copied):
    assert nnlab("export", copied["vae10"], "--snapshots=last").code == 0
    again = nnlab("export", copied["vae10"], "--snapshots=last")
    assert again.code == 2 and "exists already: export with --force" in again.err
    forced = nnlab("export", copied["vae10"], "--snapshots=last", "--force")
    assert forced.code == 0
    out = Path(forced.out.strip())
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # replaced, not added to
    assert not list(out.parent.glob(".tmp-*"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--snapshots=12345"], "has no snapshot at step 12345"),
        (["--snapshots=middle,soon"], "give first, middle, last or recorded steps"),
        (["--to=wandb"], "--to=wandb: choose from tensorboard"),
        (["--logdir=/nonexistent/folder/tb"], "its folder /nonexistent/folder does not exist"),
    ],
)
def test_bad_export_options(nnlab, runs, copied, args, message):
    r = nnlab("export", copied["vae"], *args)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1, r.err
    assert not folders.open_run(copied["vae"], runs).file("media", "tensorboard").exists()


def test_export_without_tensorboard_says_how(nnlab, runs, copied, monkeypatch):
    from nnlab.training import tensorboard

    monkeypatch.setattr(tensorboard, "available", lambda: False)
    r = nnlab("export", copied["vae"])
    assert r.code == 2 and 'pip install -e ".[tensorboard]"' in r.err


def _sweep_of(runs: Path, ids: dict) -> str:
    points = []
    for i, (key, beta) in enumerate((("vae", 1.0), ("vae10", 10.0))):
        run_id = f"{SWEEP}-p{i}"
        shutil.move(runs / ids[key], runs / run_id)
        points.append({"run": run_id, "values": {"beta": beta}, "status": "finished"})
    (runs / SWEEP).mkdir()
    rec = {
        "format": 1,
        "id": SWEEP,
        "model": "vae",
        "base": (runs / points[0]["run"] / "config.yaml").read_text(),
        "grid": {"beta": [1.0, 10.0]},
        "points": points,
    }
    (runs / SWEEP / "sweep.json").write_text(json.dumps(rec))
    return SWEEP


def test_export_of_a_sweep_has_one_run_per_point_and_hparams(nnlab, runs, copied):
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep_id = _sweep_of(runs, copied)
    r = nnlab("export", sweep_id, "--snapshots=last")
    assert r.code == 0, r.err
    out = Path(r.out.strip())
    assert out == runs / sweep_id / "media" / "tensorboard"
    for i, beta in enumerate((1.0, 10.0)):
        run = folders.open_run(f"{sweep_id}-p{i}", runs)
        acc = _accumulator(out / run.id)
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        assert start.hparams["beta"].number_value == beta
        experiment = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/experiment"]
        ).experiment
        assert {m.name.tag for m in experiment.metric_infos} >= {"hparams/test_elbo"}
        (elbo,) = acc.Scalars("hparams/test_elbo")
        assert elbo.value == pytest.approx(run.meta().final["test_elbo"], rel=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_a_tensorboard_server_serves_the_export(nnlab, runs, copied):
    r = nnlab("export", copied["vae"], "--snapshots=last")
    assert r.code == 0, r.err
    logdir = Path(r.out.strip()).parent  # media/: the export is one run inside it
    port = _free_port()
    exe = shutil.which("tensorboard") or str(Path(sys.executable).parent / "tensorboard")
    server = subprocess.Popen(
        [exe, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        runs_seen: list = []
        while time.time() < deadline:
            try:
                runs_seen = _get(f"{base}/data/runs")
                if runs_seen:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert "tensorboard" in runs_seen
        tags = {}
        while time.time() < deadline and "latent/ncm_accuracy" not in tags.get("tensorboard", {}):
            tags = _get(f"{base}/data/plugin/scalars/tags")
            time.sleep(0.5)
        assert {"train/loss", "epoch/test_elbo", "latent/ncm_accuracy"} <= set(tags["tensorboard"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_force_replaces_only_an_earlier_export(nnlab, runs, copied, tmp_path):
    """--force never deletes what nnlab did not export: the store, a run, a folder of the
    user's, a file, an export with a file added to it; each refused in one line, nothing
    changed in the store or in a decoy folder outside it."""
    decoy = tmp_path / "mine"
    decoy.mkdir()
    (decoy / "notes.txt").write_text("mine")
    afile = tmp_path / "file.txt"
    afile.write_text("a file")
    other = copied["vae"]
    exported = nnlab("export", copied["vae10"], "--snapshots=last")
    assert exported.code == 0
    added = Path(exported.out.strip())
    (added / "mine.txt").write_text("added by hand")
    before = {"store": digests(runs), "decoy": digests(decoy)}
    for logdir in (runs, runs / other, decoy, afile, added):
        r = nnlab("export", copied["vae10"], "--snapshots=last", f"--logdir={logdir}", "--force")
        assert r.code == 2 and "--force replaces only an earlier nnlab export" in r.err, r.err
        assert r.err.count("\n") == 1
    assert {"store": digests(runs), "decoy": digests(decoy)} == before
    assert afile.read_text() == "a file" and not list(tmp_path.glob(".tmp-*"))
    # an export nnlab wrote is replaced, and says what it holds
    (added / "mine.txt").unlink()
    again = nnlab("export", copied["vae10"], "--snapshots=last", "--force")
    assert again.code == 0
    manifest = json.loads((added / "nnlab-export.json").read_text())
    assert manifest["kind"] == "nnlab-export" and manifest["of"] == copied["vae10"]
    assert sorted(manifest["files"]) == sorted(
        str(p.relative_to(added))
        for p in added.rglob("*")
        if p.is_file() and p.name != "nnlab-export.json"
    )


def test_every_reader_of_metrics_checks_its_seal(nnlab, runs, copied):
    """One digit changed in the sealed part of metrics.jsonl: summary marks the run
    damaged, and report, export and the plot never show the changed number."""
    run = folders.open_run(copied["vae"], runs)
    text = run.metrics.read_text()
    i = text.index('"loss": ') + len('"loss": ')
    digit = text[i + 1]
    changed = text[: i + 1] + ("1" if digit != "1" else "2") + text[i + 2 :]
    run.metrics.write_text(changed)
    assert nnlab("summary", run.id, "--json").json()["status"] == "damaged"
    for args in (("export", run.id), ("summary", run.id, "--plot")):
        r = nnlab(*args)
        assert r.code == 2 and "checksum differs" in r.err and r.err.count("\n") == 1, r.err
    r = nnlab("report", run.id)
    assert r.code == 0 and "metrics left out" in r.err and "checksum differs" in r.err
    page = json.loads(
        Path(r.out.strip()).read_text().split('type="application/json">')[1].split("</script>")[0]
    )
    assert not page["runs"][0]["metrics"]["train_step"]  # nothing of the changed log drawn


def test_odd_class_names_and_huge_values_export_as_they_are(nnlab, runs):
    """#37 items 18 and 19: a class name with a newline or a tab stays one line of
    metadata.tsv, beside its point; a logged value beyond float32 is left out and said so,
    never written as infinity."""
    import torch

    import nnlab as api

    run = api.start("odd", runs_dir=runs)
    x, y = torch.rand(6, 1, 4, 4), torch.arange(6) % 2
    run.watch(x, y, classes=["plain", "two\nlines\tand tab"], encode=lambda b: b.flatten(1)[:, :2])
    run.snapshot(0)
    run.log(1, loss=1e308)
    run.log(2, loss=0.5)
    run.finish()
    r = nnlab("export", run.id)
    assert r.code == 0, r.err
    assert "1 value(s) beyond float32's range left out" in r.err and "train/loss" in r.err
    folder = Path(r.out.strip())
    meta = next(folder.rglob("metadata.tsv")).read_text().splitlines()
    tensors = next(folder.rglob("tensors.tsv")).read_text().splitlines()
    assert len(meta) == len(tensors) == 6
    assert meta[1] == "two\\nlines\\tand tab" and meta[0] == "plain"
    scalars = read_scalars(next(folder.rglob("events.out.tfevents.*")).parent)
    assert scalars["train/loss"] == [(2, 0.5)]  # 1e308 left out, not written as inf
