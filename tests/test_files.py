"""Atomic writes, safe loading (no unpickling), and file locks."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from nnlab.helpers import files
from nnlab.helpers.errors import RunError


def test_atomic_write_keeps_old_version_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    files.write_json(p, {"v": 1})

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        files.write_json(p, {"v": 2})
    assert files.read_json(p) == {"v": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


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
        files.load_checkpoint(bad)
    assert not sentinel.exists()
    good = tmp_path / "good.pt"
    files.save_checkpoint(good, {"model": {"w": torch.ones(2)}, "step": 3})
    assert files.load_checkpoint(good)["step"] == 3


def test_npz_refuses_pickled_objects(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RunError, match="damaged or unsafe"):
        files.load_npz(p)


def test_new_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    a, b = files.Lock(tmp_path / "lock", "run x"), files.Lock(tmp_path / "lock", "run x")
    a.acquire({"pid": 123})
    assert files.is_locked(tmp_path / "lock")  # flock is per open file: seen even in-process
    with pytest.raises(RunError, match=r"run x is in use by another nnlab process \(pid 123\)"):
        b.acquire({"pid": 456})
    a.release()
    assert not files.is_locked(tmp_path / "lock")
    b.acquire({"pid": 456})
    b.release()


def test_one_seal_for_every_kept_file():
    """files.seal of a dict is meta.json's checksum (runs written before stay valid)."""
    import hashlib
    import json

    meta = {"b": 1, "a": [1.5, "x"]}
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert files.seal(meta) == hashlib.sha256(canonical.encode()).hexdigest()
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert files.seal(meta, a) != files.seal(meta, a.reshape(2, 3)) != files.seal(meta)
    assert files.seal(meta, a) == files.seal({"a": [1.5, "x"], "b": 1}, a.copy())


def test_a_locks_holder_is_said_for_a_person(tmp_path):
    """#38 item 9: the holder as "pid, host if another, since HH:MM", not the raw JSON."""
    import datetime as dt

    a, b = files.Lock(tmp_path / "lock", "run x"), files.Lock(tmp_path / "lock", "run x")
    since = dt.datetime(2026, 1, 2, 14, 3).astimezone()
    a.acquire({"pid": 25504, "host": "elsewhere", "since": since.isoformat()})
    with pytest.raises(RunError) as e:
        b.acquire({"pid": 1})
    assert str(e.value) == (
        "run x is in use by another nnlab process (pid 25504, on elsewhere, since 2026-01-02 14:03)"
    )
    a.release()
    now = dt.datetime.now().astimezone()
    a.acquire({"pid": 7, "host": __import__("socket").gethostname(), "since": now.isoformat()})
    with pytest.raises(RunError, match=rf"\(pid 7, since {now:%H:%M}\)$"):
        b.acquire({"pid": 1})
    a.release()
