from __future__ import annotations

import os
import pickle

import pytest
import torch

from nnlab import store
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


def test_atomic_write_keeps_old_version_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    store.write_json(p, {"v": 1})

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.write_json(p, {"v": 2})
    assert store.read_json(p) == {"v": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def test_create_open_latest_and_symlink(tmp_path):
    root = tmp_path / "runs"
    a = store.create_run(root, "vae")
    store.write_json(a.file("meta.json"), {"format": 1, "created": "2026-01-01T00:00:00"})
    b = store.create_run(root, "vae")  # same second: gets a suffix
    store.write_json(b.file("meta.json"), {"format": 1, "created": "2026-01-02T00:00:00"})
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
    store.write_json(run.file("meta.json"), {"format": store.FORMAT_VERSION + 1})
    with pytest.raises(RunError, match="newer nnlab"):
        run.meta()
    run.release()


def test_name_lock_refuses_second_training(tmp_path):
    first = store.create_run(tmp_path, "vae", "exp")
    with pytest.raises(RunError, match="in use by another nnlab process.*pid"):
        store.create_run(tmp_path, "vae", "exp")
    first.release()
    store.create_run(tmp_path, "vae", "exp").release()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_never_unpickles(tmp_path):
    sentinel = tmp_path / "pwned"
    bad = tmp_path / "latest.pt"
    torch.save({"model": _Evil(str(sentinel))}, bad, pickle_module=pickle)
    with pytest.raises(RunError, match="cannot be loaded safely"):
        store.load_checkpoint(bad)
    assert not sentinel.exists()
    good = tmp_path / "good.pt"
    store.save_checkpoint(good, {"model": {"w": torch.ones(2)}, "step": 3})
    assert store.load_checkpoint(good)["step"] == 3


def test_npz_refuses_pickled_objects(tmp_path):
    import numpy as np

    p = tmp_path / "a.npz"
    np.savez(p, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RunError, match="damaged or unsafe"):
        store.load_npz(p)
