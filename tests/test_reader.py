"""nnlab.library.reader's own pieces: a run opened by id, 'latest' or path; its meta.json
read again only when the file changes; a snapshot's arrays by name; the notebook HTML; the
chunk cache that follows a recording as it grows (nnlab.store.record.Snapshots). The read
API end to end, against the commands, is tests/test_api_read.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import nnlab as api
from nnlab.helpers.errors import NnlabError
from nnlab.library import reader
from nnlab.store import record

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-format1"
VAE = "vae-20261129-022720-format1"


@pytest.fixture
def store(runs):
    shutil.copytree(FIXTURE, runs)
    return runs


def test_open_by_id_latest_or_path(store, monkeypatch):
    by_path = api.open(store / VAE)
    assert by_path.id == VAE and by_path.path == store / VAE
    assert api.open(str(store / VAE)).id == VAE
    monkeypatch.setenv("NNLAB_RUNS", str(store))
    assert api.open(VAE).path == store / VAE  # the store of the CLI by default
    with pytest.raises(NnlabError, match="its path alone"):
        api.open(store / VAE, runs_dir=store)
    assert repr(by_path) == f"nnlab.Run('{VAE}', path='{store / VAE}')"


def test_meta_is_read_again_only_when_its_file_changes(store, monkeypatch):
    run = api.open(VAE, store)
    first = run.meta
    calls = []
    monkeypatch.setattr(type(run._folder), "meta", lambda self: calls.append(1) or first)
    assert run.meta is first and not calls  # unchanged file: no read
    (store / VAE / "meta.json").touch()
    run.meta  # noqa: B018
    assert calls == [1]


def test_latents_by_name_and_their_errors(store):
    lat = api.open(VAE, store).latents(0)
    assert set(lat.arrays) == {"mu", "sd"} and lat["mu"].dtype == np.float32
    with pytest.raises(KeyError, match="holds mu, sd"):
        lat["act"]
    assert lat.classes[:2] == ["0", "1"] and len(lat.labels) == lat["mu"].shape[0]
    assert api.open(VAE, store).latents(np.int64(0)).step == 0  # numpy integers are steps


def test_metrics_frame_says_how_to_get_pandas(store, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pandas(name, *a, **k):
        if name == "pandas":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(NnlabError, match="pip install pandas"):
        api.open(VAE, store).metrics_frame()


def test_metrics_frame_with_pandas(store):
    pd = pytest.importorskip("pandas")
    frames = api.open(VAE, store).metrics_frame()
    assert isinstance(frames["epoch"], pd.DataFrame) and "test_elbo" in frames["epoch"]


def test_the_runs_table_and_a_card_as_html(store):
    rows = api.runs(store)
    page = rows._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == 3 and VAE in page
    assert reader.RunsTable()._repr_html_() == "<p>no runs</p>"
    card = api.open(VAE, store)._repr_html_()
    assert "test_elbo" in card and card.count("<img ") == 1


def test_a_card_of_a_damaged_run_says_why(store):
    run = api.open(VAE, store)
    (store / VAE / "meta.json").write_text("[]")
    assert "not a JSON object" in run._repr_html_()


def test_snapshots_follow_a_growing_recording(tmp_path):
    rec = record.Recorder(tmp_path, ("act",), "float32")
    rec.write_probe(np.arange(3), np.arange(3), "test")
    snaps = record.Snapshots(tmp_path, ("act",))
    assert snaps.steps().tolist() == []
    with pytest.raises(NnlabError, match="no latent snapshots"):
        snaps.snapshot()
    for step in (0, 4):
        rec.add(step, step / 4, np.full((3, 2), step, np.float32))
    rec.flush()
    rec.add(9, 2.0, np.full((3, 2), 9, np.float32))
    rec.flush()
    assert snaps.steps().tolist() == [0, 4, 9] and snaps.epochs().tolist() == [0, 1, 2]
    step, epoch, arrays = snaps.snapshot(4)
    assert (step, epoch) == (4, 1.0) and arrays["act"].tolist() == [[4, 4]] * 3
    assert snaps.snapshot()[0] == 9
    with pytest.raises(KeyError):
        snaps.snapshot(5)
    rec.truncate(1)  # a resume drops the second chunk and writes another in its place
    rec.add(6, 1.5, np.full((3, 2), 6, np.float32))
    rec.flush()
    assert snaps.steps().tolist() == [0, 4, 6] and snaps.snapshot()[2]["act"][0, 0] == 6


def test_snapshots_refuse_a_chunk_of_another_probe(tmp_path):
    rec = record.Recorder(tmp_path, ("act",), "float32")
    rec.write_probe(np.arange(3), np.arange(3), "test")
    rec.add(0, 0.0, np.zeros((5, 2), np.float32))  # five points for a probe of three
    rec.flush()
    with pytest.raises(api.RunDamaged, match="has 5 points, not 3"):
        record.Snapshots(tmp_path, ("act",)).snapshot(0)
