from __future__ import annotations

import pytest

from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError, RunError
from nnlab.store import folders
from nnlab.store.meta import Meta, Status


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "/etc",
        "a/../../b",
        "%2e%2e",
        "a\x00b",
        "a\nb",
        "x" * 200,
        "..",
        ".",
        "",
        "123",
        "-rf",
        "a b",
        "a\\b",
        17,
        None,
    ],
)
def test_hostile_ids_are_refused(bad):
    with pytest.raises(NnlabError):
        folders.validate_id(bad)


def test_good_ids():
    for ok in ("vae-20260101-120000", "classifier-20260101-120000-007", "a.b_c-1"):
        assert folders.validate_id(ok) == ok


def test_create_open_latest_and_symlink(tmp_path):
    root = tmp_path / "runs"
    a = folders.create_run(root, "vae")
    files.write_json(a.file("meta.json"), {"format": 1, "created": "2026-01-01T00:00:00"})
    b = folders.create_run(root, "vae")  # same second: gets a suffix
    files.write_json(b.file("meta.json"), {"format": 1, "created": "2026-01-02T00:00:00"})
    assert a.id != b.id
    assert folders.open_run("latest", root).id == b.id
    (root / "evil").symlink_to(tmp_path)
    with pytest.raises(NnlabError, match="points outside"):
        folders.open_run("evil", root)
    with pytest.raises(NnlabError, match="no run"):
        folders.open_run("vae-1", root)
    a.release()
    b.release()


def test_newer_format_is_refused(tmp_path):
    run = folders.create_run(tmp_path, "vae")
    files.write_json(run.file("meta.json"), {"format": folders.FORMAT_VERSION + 1})
    with pytest.raises(RunError, match="newer nnlab"):
        run.meta()
    run.release()


def test_name_lock_refuses_second_training(tmp_path):
    first = folders.create_run(tmp_path, "vae", "exp")
    with pytest.raises(RunError, match="in use by another nnlab process.*pid"):
        folders.create_run(tmp_path, "vae", "exp")
    with pytest.raises(RunError, match="run name 'exp' is in use"):
        folders.create_run(tmp_path, "own", "exp")  # another model, the same name (#38)
    first.release()
    folders.create_run(tmp_path, "vae", "exp").release()


def test_a_runs_status_changes_only_through_begin_and_end(runs):
    run = folders.create_run(runs, "vae")
    run.write_meta(Meta(1, id=run.id, model="vae", status=Status.RUNNING))
    with pytest.raises(ValueError, match="begin"):
        run.update_meta(status="finished")
    meta = run.end(Status.INTERRUPTED)
    assert meta.status == "interrupted" and meta.ended is None and meta.updated  # resumable
    assert run.begin().status == "running" and run.meta().ended is None
    meta = run.end("pruned", pruned={"step": 3, "metric": "test_elbo", "value": -9.0})
    assert meta.status is Status.PRUNED and meta.ended == meta.updated and meta.pruned["step"] == 3
    assert run.meta() == meta  # as written
    with pytest.raises(ValueError, match="pruned, not running"):
        run.end(Status.RUNNING)
    with pytest.raises(ValueError):
        run.end("done")
    run.release()


def test_an_id_ending_in_a_newline_is_no_id(runs, nnlab):
    """#37 item 21: "$" matches before a final newline; ids and names end at \\Z."""
    with pytest.raises(NnlabError, match="invalid run id"):
        folders.validate_id("vae-20260101-000000\n")
    r = nnlab("summary", "vae-20260101-000000\n")
    assert r.code == 2 and "invalid run id" in r.err and r.err.count("\n") == 1


def test_a_store_that_is_a_file_is_one_line(tmp_path, nnlab):
    (tmp_path / "store").write_text("a file")
    r = nnlab("train", "vae", "--dataset=mnist-sample", f"--runs_dir={tmp_path / 'store'}")
    assert r.code == 2 and "not a folder" in r.err and r.err.count("\n") == 1
