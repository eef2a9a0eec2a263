"""Tags and a note per run or sweep (nnlab.store.labels): their own file, changed under a
lock, refused in one line when odd, read back by the runs table and the Python API."""

from __future__ import annotations

import json

import pytest

import nnlab
from nnlab.helpers.errors import NnlabError, RunDamaged
from nnlab.store import folders, labels, table
from tests.conftest import FIXTURE_VAE as VAE


def test_tags_are_added_once_in_order_and_removed(store):
    run = folders.Run(store, VAE)
    assert labels.read(run) == labels.Labels()
    assert labels.change(run, add=["beta1", "keep", "beta1"]).tags == ("beta1", "keep")
    assert labels.change(run, add=["x"], remove=["beta1"]).tags == ("keep", "x")
    assert labels.change(run, note="first <b>try</b>").note == "first <b>try</b>"
    assert labels.change(run, add=["y"]).note == "first <b>try</b>"  # kept
    assert labels.change(run, note="").note == ""
    saved = json.loads(run.file(folders.LABELS_FILE).read_text())
    assert saved == {"tags": ["keep", "x", "y"], "note": ""}
    assert not run.file(folders.META_FILE).read_text().count("keep")  # meta.json untouched


@pytest.mark.parametrize("tag", ["", "bad tag", "-x", "a\n", "<script>", "x" * 65, "a/b", "é"])
def test_an_odd_tag_is_one_line_and_changes_nothing(store, tag):
    run = folders.Run(store, VAE)
    with pytest.raises(NnlabError, match="use letters, digits"):
        labels.change(run, add=["ok", tag])
    assert not run.file(folders.LABELS_FILE).exists()


def test_a_note_with_a_nul_or_too_long_is_refused(store):
    run = folders.Run(store, VAE)
    with pytest.raises(NnlabError, match="NUL"):
        labels.change(run, note="a\0b")
    with pytest.raises(NnlabError, match="at most 10,000"):
        labels.change(run, note="x" * 10_001)


def test_a_changing_writer_waits_for_none_and_is_refused_while_another_holds_the_lock(store):
    run = folders.Run(store, VAE)
    other = folders.Lock(run.file(folders.LABELS_LOCK), "the labels")
    other.acquire({"pid": 1})
    try:
        with pytest.raises(NnlabError, match="in use by another nnlab process"):
            labels.change(run, add=["x"])
    finally:
        other.release()


@pytest.mark.parametrize(
    "text",
    ['{"tags": "x"}', '{"tags": ["bad tag"]}', '{"note": 3}', "[", '{"tags": [1]}'],
)
def test_a_damaged_labels_file_is_named_and_the_run_still_listed(store, text):
    run = folders.Run(store, VAE)
    run.file(folders.LABELS_FILE).write_text(text)
    with pytest.raises(RunDamaged, match="labels.json: damaged"):
        labels.read(run)
    row = next(r for r in table.rows(store) if r.id == VAE)
    assert row.status == "finished" and row.tags == () and "labels.json" in row.problem


def test_the_api_reads_and_filters_by_tag(store):
    labels.change(folders.Run(store, VAE), add=["good"], note="best so far")
    assert [r.id for r in nnlab.runs(store, tag="good")] == [VAE]
    assert nnlab.runs(store, tag="none") == []
    run = nnlab.open(VAE, runs_dir=store)
    assert run.tags == ("good",) and run.note == "best so far"
    assert "best so far" in run._repr_html_()
    with pytest.raises(NnlabError, match="tag=3"):
        nnlab.runs(store, tag=3)
