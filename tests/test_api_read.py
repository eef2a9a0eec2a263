"""The read API end to end: api.runs(), api.open() and api.open_sweep() on the frozen
fixture store, on runs written by `nnlab train`, by api.start, by the Lightning callback,
on a sweep and a search; every array and number checked against what `summary --json`,
`embed` and an independent read of the files give."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnlab as api
from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders, record, sweeps
from tests.test_comparison import SWEEP, swept  # noqa: F401  (a fixture)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-format1"
VAE, CLS = "vae-20261129-022720-format1", "classifier-20261129-022729-format1"


@pytest.fixture
def fixture_store(runs):
    """A copy of the frozen format-1 store (a VAE and a classifier run)."""
    shutil.copytree(FIXTURE, runs)
    return runs


def _same_as_summary(run: api.Run, nnlab_cli):
    """The run's facts, metrics and latent metrics as summary --json gives them."""
    d = nnlab_cli("summary", run.id, "--json").json()
    assert d["status"] == run.status and d["model"] == run.meta.model
    assert d["progress"]["steps_done"] == run.meta.steps_done
    epochs = run.metrics()["epoch"]
    assert d["metrics"]["final"] == epochs[-1]
    assert d["latent_metrics"] == run.latent_metrics()
    assert d["config"]["model"] == run.config.model


def _same_as_the_files(run: api.Run, arrays: tuple[str, ...]):
    """Every snapshot as an independent read of the whole recording gives it."""
    rec = record.load_recording(run.path / "latents", arrays)
    assert run.steps.tolist() == rec.steps.tolist()
    np.testing.assert_array_equal(run.epochs, rec.epochs)
    for s, step in enumerate(rec.steps):
        lat = run.latents(int(step))
        assert lat.step == step and lat.epoch == rec.epochs[s]
        np.testing.assert_array_equal(lat.labels, rec.labels)
        np.testing.assert_array_equal(lat[arrays[0].rstrip("?")], rec.points[s])
        if rec.sd is not None:
            np.testing.assert_array_equal(lat["sd"], rec.sd[s])
    assert run.latents().step == rec.steps[-1]  # None: the newest


def test_the_fixture_store_reads_as_summary_and_the_files_say(fixture_store, nnlab):
    rows = api.runs(fixture_store)
    # newest first: the classifier was made nine seconds after the VAE
    assert [r.id for r in rows] == [CLS, VAE]
    assert all(r.status == "finished" and r.path.parent == fixture_store for r in rows)
    assert [r.model for r in api.runs(fixture_store, model="vae")] == ["vae"]
    assert api.runs(fixture_store, status="running") == []
    cli = nnlab("summary", "--json").json()
    assert {(r["id"], r["value"]) for r in cli} == {(r.id, r.value) for r in rows}
    for row in rows:
        run = api.open(row.id, fixture_store)
        _same_as_summary(run, nnlab)
        _same_as_the_files(run, run.family.arrays)
        assert api.open(run.path).id == run.id  # by the path of its folder, too
    assert api.open("latest", fixture_store).id == rows[0].id


def test_a_trained_run_matches_embed(trained, runs, nnlab):
    root, ids = trained
    shutil.copytree(root / ids["vae"], runs / ids["vae"])
    run = api.open(ids["vae"])
    r = nnlab("embed", run.id, "--checkpoint=final")
    assert r.code == 0, r.err
    z = files.load_npz(r.out.strip())
    lat = run.latents()
    assert lat.step == int(z["step"]) == run.meta.steps_done
    probe = record.load_recording(run.path / "latents", ("mu", "sd")).indices
    at = {int(i): k for k, i in enumerate(z["indices"])}
    rows = [at[int(i)] for i in probe]
    # the recording is float16 (record_dtype's default), embed float32
    np.testing.assert_allclose(lat["mu"], z["mu"][rows], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(lat["sd"], z["sd"][rows], rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(lat.labels, z["labels"][rows])
    images = run.probe_images()
    assert images.shape == (len(lat.labels), 1, 28, 28) and images.dtype == np.uint8
    ck = run.checkpoint("final")
    assert ck["step"] == run.meta.steps_done and "model" in ck
    _same_as_summary(run, nnlab)
    frame = run.figure(step=int(run.steps[1]))
    assert "step " + str(run.steps[1]) in frame.axes[0].get_title()
    gif = run.animate(dpi=30, every=3)
    assert gif.suffix == ".gif" and gif.is_file() and gif.parent == run.path / "media"


def _own_run(runs, steps=(0, 5, 10), name="mine"):
    """A run written by api.start: a linear encoder of 30 random 'images'."""
    import torch

    torch.manual_seed(0)
    x = torch.rand(30, 1, 4, 4)
    y = torch.arange(30) % 3
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    seen = {}
    run = api.start(name, settings={"lr": 0.1, "note": "<b>"}, runs_dir=runs)
    run.watch(x, y, classes=["a", "b", "<script>c"], module=net, layer="1")
    with torch.no_grad():
        for step in steps:
            net[1].weight.add_(0.1)
            run.snapshot(step, epoch=step / 10)
            seen[step] = net(x).numpy()
            run.log(step, loss=1.0 / (step + 1))
    run.log_epoch(1, step=steps[-1], test_acc=0.5)
    run.checkpoint(steps[-1], model=net.state_dict())
    return run, seen


def test_a_run_of_your_own_code(runs, nnlab):
    writer, seen = _own_run(runs)
    writer.finish()
    run = api.open(writer.id, runs)
    assert run.status == "finished" and run.config.settings == {"lr": 0.1, "note": "<b>"}
    assert run.steps.tolist() == [0, 5, 10]
    for step, acts in seen.items():
        lat = run.latents(step)
        assert lat.classes == ["a", "b", "<script>c"] and lat.epoch == step / 10
        np.testing.assert_allclose(lat["mu"], acts, rtol=2**-11)  # stored as float16
    m = run.metrics()
    assert [line["loss"] for line in m["step"]] == [1.0, 1 / 6, 1 / 11]
    assert m["epoch"][0]["test_acc"] == 0.5
    assert run.checkpoint()["step"] == 10
    with pytest.raises(api.UsageError, match="no checkpoint 'step-00000099'"):
        run.checkpoint("step-00000099")
    assert run.probe_images().shape == (30, 1, 4, 4)


def test_a_run_is_read_as_far_as_it_has_flushed(runs):
    import torch

    writer = api.start("live", runs_dir=runs)
    writer.watch(torch.rand(12, 1, 2, 2), torch.arange(12) % 2, encode=lambda x: x.flatten(1))
    writer.snapshot(0)
    writer.log(1, loss=0.5)
    run = api.open(writer.id, runs)
    assert run.status == "running" and len(run.steps) == 0  # nothing flushed yet
    with pytest.raises(NnlabError, match="no latent recording yet"):
        run.latents()
    assert run.metrics() == {"step": [], "epoch": []}
    writer.flush()
    assert run.steps.tolist() == [0] and run.latents().step == 0
    writer.snapshot(7)
    writer.flush()  # a new chunk: the same Run object sees it
    assert run.steps.tolist() == [0, 7] and run.latents().step == 7
    assert run.latents(0)["mu"].shape == (12, 4)
    assert [line["step"] for line in run.metrics()["step"]] == [1]
    writer.finish()
    assert run.status == "finished" and run.meta.ended


def test_damage_is_one_line_naming_the_file(fixture_store):
    vae = fixture_store / VAE
    run = api.open(vae.name, fixture_store)
    chunk = record.chunk_files(vae / "latents")[0]
    chunk.write_bytes(chunk.read_bytes()[:200])  # torn
    with pytest.raises(api.RunDamaged, match=chunk.name):
        run.latents(0)
    meta = json.loads((vae / "meta.json").read_text())
    (vae / "meta.json").write_text(json.dumps({**meta, "steps_done": -4}))
    with pytest.raises(api.RunDamaged, match="meta.json: damaged .'steps_done'"):
        run.meta  # noqa: B018  (read again: the file changed)
    cls = fixture_store / CLS
    lines = (cls / "metrics.jsonl").read_text().splitlines(keepends=True)
    (cls / "metrics.jsonl").write_text("".join(lines[:-3]))  # lines lost
    with pytest.raises(api.RunDamaged, match="metrics.jsonl: shorter than its last checkpoint"):
        api.open(cls.name, fixture_store).metrics()
    assert issubclass(api.RunDamaged, NnlabError)  # the CLI's one line and exit status 2


def test_bad_requests_are_one_line(fixture_store):
    run = api.open(VAE, fixture_store)
    with pytest.raises(NnlabError, match=r"no snapshot at step 3 \(its steps: 0, "):
        run.latents(3)
    with pytest.raises(NnlabError, match="give one of run.steps"):
        run.latents("last")
    with pytest.raises(NnlabError, match="use latest, final or epoch-N"):
        run.checkpoint("best")
    with pytest.raises(NnlabError, match="give a name"):
        run.checkpoint("../../etc/passwd")
    with pytest.raises(NnlabError, match="no run 'nope'"):
        api.open("nope", fixture_store)
    with pytest.raises(NnlabError, match="invalid run id"):
        api.open("a b", fixture_store)
    with pytest.raises(NnlabError, match="status='done': use running, finished"):
        api.runs(fixture_store, status="done")


def test_html_shows_every_stored_string_as_text(runs):
    writer, _ = _own_run(runs, name="x")
    writer.log_epoch(2, **{"<img src=x onerror=alert(1)>": 1.0})
    writer.finish()
    run = api.open(writer.id, runs)
    page = run._repr_html_() + api.runs(runs)._repr_html_()
    assert "<script>" not in page and "<b>" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("<img ") == 1 and 'src="data:image/png;base64,' in page


def test_a_sweep_and_its_points(swept, nnlab):  # noqa: F811
    sweep = api.open_sweep(SWEEP)
    assert [p.run for p in sweep.points] == [f"{SWEEP}-p0", f"{SWEEP}-p1"]
    assert [p.values for p in sweep.points] == [{"beta": 1.0}, {"beta": 10.0}]
    assert all(p.status == "finished" for p in sweep.points)
    assert [r.id for r in sweep.runs()] == [p.run for p in sweep.points]
    d = nnlab("summary", SWEEP, "--json").json()
    assert sweep.describe() == d
    assert [r.id for r in api.runs(sweep=SWEEP)] == [f"{SWEEP}-p1", f"{SWEEP}-p0"]
    assert "beta=10.0" in sweep._repr_html_()


@pytest.mark.slow
def test_a_search_reads_as_its_journal_and_runs_say(searched):
    runs, sweep_id, _ = searched
    sweep = api.open_sweep(sweep_id, runs)
    rec = json.loads((runs / sweep_id / "sweep.json").read_text())
    assert sweep.record["search"] == rec["search"]
    for p, q in zip(sweep.points, rec["points"], strict=True):
        assert (p.run, p.status, p.values) == (q["run"], q["status"], q["values"])
        run = api.open(p.run, runs)
        assert run.meta.sweep == {"id": sweep_id, "point": p.index}
        if p.status == "finished":
            assert p.value == pytest.approx(run.meta.final["test_elbo"])
        _same_as_the_files(run, run.family.arrays)
    assert {r.id for r in api.runs(runs, sweep=sweep_id)} == {p.run for p in sweep.points}
    assert sweeps.open_sweep(sweep_id, runs).id == sweep.id


@pytest.mark.slow
def test_a_lightning_fit_reads_back(runs):
    pytest.importorskip("lightning")
    from tests.test_lightning import fit, sample

    _, _, px, py = sample()
    cb = api.LatentCallback(px, py, layer="code", every_n_steps=10, runs_dir=runs)
    fit(cb)
    run = api.open(cb.run_id, runs)
    assert run.status == "finished" and run.config.settings == {"lr": 0.01}
    assert run.steps.tolist() == [0, 10, 20, 30, 39]
    assert run.latents(39)["mu"].shape == (100, 3)
    assert {"train_loss", "val_acc"} <= set(run.metrics()["epoch"][0])
    _same_as_the_files(run, run.family.arrays)


@pytest.mark.slow
def test_reading_numbers_imports_neither_torch_nor_ipython(fixture_store):
    code = (
        "import sys, nnlab\n"
        f"r = nnlab.open({VAE!r}, {str(fixture_store)!r})\n"
        "r.metrics(); r.latents(); r.latent_metrics(); r.config; nnlab.runs(r.path.parent)\n"
        "r._repr_html_(); nnlab.runs(r.path.parent)._repr_html_()\n"
        "print(sorted(m for m in ('torch', 'IPython', 'pandas') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_two_thousand_runs_list_in_under_a_second(runs):
    import time

    base = FIXTURE / CLS
    runs.mkdir(parents=True)
    meta = folders.Run(FIXTURE, base.name).meta()
    for i in range(2000):
        run_id = f"classifier-20260101-{i:06d}"
        (runs / run_id).mkdir()
        shutil.copy(base / "config.yaml", runs / run_id / "config.yaml")
        folders.Run(runs, run_id).write_meta(meta.changed(id=run_id, created=f"2026-{i:06d}"))
    t = time.perf_counter()
    rows = api.runs(runs)
    seconds = time.perf_counter() - t
    assert len(rows) == 2000 and rows[0].id == "classifier-20260101-001999"
    assert seconds < 1.0 * (3 if os.environ.get("CI") else 1), seconds


@pytest.mark.slow
def test_the_example_notebook_runs(fixture_store, tmp_path, monkeypatch):
    """examples/notebook.ipynb executed in a kernel over the fixture store, every cell."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("NNLAB_RUNS", str(fixture_store))  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    where = {"metadata": {"path": str(tmp_path)}}
    nbclient.NotebookClient(nb, timeout=300, resources=where).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any(CLS in h for h in html)  # the runs table and the card of the newest run
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the loss, the snapshot's points, the frame
    assert any("image/gif" in o.get("data", {}) for o in outputs)  # run.show()
