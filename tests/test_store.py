from __future__ import annotations

import pytest

from nnlab import files, store
from nnlab.errors import NnlabError, RunError


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
        store.validate_id(bad)


def test_good_ids():
    for ok in ("vae-20260101-120000", "classifier-20260101-120000-007", "a.b_c-1"):
        assert store.validate_id(ok) == ok


def test_create_open_latest_and_symlink(tmp_path):
    root = tmp_path / "runs"
    a = store.create_run(root, "vae")
    files.write_json(a.file("meta.json"), {"format": 1, "created": "2026-01-01T00:00:00"})
    b = store.create_run(root, "vae")  # same second: gets a suffix
    files.write_json(b.file("meta.json"), {"format": 1, "created": "2026-01-02T00:00:00"})
    assert a.id != b.id
    assert store.open_run("latest", root).id == b.id
    (root / "evil").symlink_to(tmp_path)
    with pytest.raises(NnlabError, match="points outside"):
        store.open_run("evil", root)
    with pytest.raises(NnlabError, match="no run"):
        store.open_run("vae-1", root)
    a.release()
    b.release()


def test_newer_format_is_refused(tmp_path):
    run = store.create_run(tmp_path, "vae")
    files.write_json(run.file("meta.json"), {"format": store.FORMAT_VERSION + 1})
    with pytest.raises(RunError, match="newer nnlab"):
        run.meta()
    run.release()


def test_name_lock_refuses_second_training(tmp_path):
    first = store.create_run(tmp_path, "vae", "exp")
    with pytest.raises(RunError, match="in use by another nnlab process.*pid"):
        store.create_run(tmp_path, "vae", "exp")
    first.release()
    store.create_run(tmp_path, "vae", "exp").release()
