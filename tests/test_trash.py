"""Removing runs and sweeps (nnlab.store.trash): a rename into the store's trash and back,
never a training run, a sweep's point alone or a folder nnlab did not make."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nnlab.helpers.errors import NnlabError
from nnlab.helpers.files import Lock
from nnlab.store import folders, table, trash
from tests.conftest import FIXTURE_CLS as CLS
from tests.conftest import FIXTURE_STORE, digests
from tests.conftest import FIXTURE_VAE as VAE


def _sweep(store: Path, sweep_id: str = "vae-sweep-1", points: int = 2) -> list[str]:
    """A sweep folder and `points` runs that are its points (copies of the VAE run)."""
    (store / sweep_id).mkdir()
    (store / sweep_id / folders.SWEEP_FILE).write_text("{}")
    ids = []
    for k in range(points):
        pid = f"{sweep_id}-p{k}"
        shutil.copytree(store / VAE, store / pid)
        (store / pid / folders.POINT_FILE).write_text(json.dumps({"id": sweep_id, "point": k}))
        ids.append(pid)
    return ids


def test_a_run_moves_to_the_trash_and_back_unchanged(store):
    before = digests(store / VAE)
    assert trash.remove(VAE, store) == [VAE]
    assert not (store / VAE).exists() and trash.trashed(store) == [VAE]
    assert [r.id for r in table.rows(store)] == [CLS]  # the trash is never listed as a run
    assert folders.open_run("latest", store).id == CLS
    assert trash.restore(VAE, store) == [VAE]
    after = {k: v for k, v in digests(store / VAE).items() if k != folders.LOCK_FILE}
    assert after == before and trash.trashed(store) == []  # the lock taken for the move aside


def test_latest_is_the_newest_run(store):
    assert trash.remove("latest", store) == [CLS]


def test_a_sweep_goes_with_its_points_and_comes_back_with_them(store):
    points = _sweep(store)
    with pytest.raises(NnlabError, match="is a point of sweep vae-sweep-1: remove the sweep"):
        trash.remove(points[0], store)
    assert trash.remove("vae-sweep-1", store) == ["vae-sweep-1", *points]
    with pytest.raises(NnlabError, match="restore the sweep"):
        trash.restore(points[1], store)
    assert trash.restore("vae-sweep-1", store) == ["vae-sweep-1", *points]
    assert all((store / p).is_dir() for p in points)


def test_a_point_whose_sweep_is_gone_may_go_alone(store):
    points = _sweep(store)
    shutil.rmtree(store / "vae-sweep-1")
    assert trash.remove(points[0], store) == [points[0]]


def test_a_training_run_is_refused_and_nothing_moves(store):
    points = _sweep(store)
    held = Lock(store / points[1] / folders.LOCK_FILE, "run")
    held.acquire(folders.holder_info(points[1]))
    try:
        with pytest.raises(NnlabError, match=r"in use by another nnlab process \(pid \d+.*nothing"):
            trash.remove("vae-sweep-1", store)
    finally:
        held.release()
    assert (store / "vae-sweep-1").is_dir() and all((store / p).is_dir() for p in points)
    assert trash.trashed(store) == []


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("nope", "no run or sweep 'nope'"),
        ("../x", "invalid run id"),
        ("%2e%2e", "invalid run id"),
        ("a\0b", "invalid run id"),
        ("x" * 300, "invalid run id"),
        ("notes", "not a run or a sweep nnlab made"),
        ("link", "not a run or a sweep nnlab made"),
    ],
)
def test_what_nnlab_did_not_make_is_left_as_it_is(store, bad, needle):
    (store / "notes").mkdir()
    (store / "notes" / "mine.txt").write_text("keep")
    (store / "link").symlink_to(store / VAE)
    before = digests(store)
    with pytest.raises(NnlabError, match=needle):
        trash.remove(bad, store)
    assert digests(store) == before


def test_clashes_are_refused_and_empty_deletes_for_good(store):
    trash.remove(VAE, store)
    shutil.copytree(FIXTURE_STORE / VAE, store / VAE)  # the same id again in the store
    with pytest.raises(NnlabError, match="exists in the store already"):
        trash.restore(VAE, store)
    with pytest.raises(NnlabError, match="in the trash already"):
        trash.remove(VAE, store)
    with pytest.raises(NnlabError, match="no run or sweep 'nope' in the trash"):
        trash.restore("nope", store)
    outside = store.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    (store / folders.TRASH / "link-out").symlink_to(outside)
    assert trash.empty(store) == ["link-out", VAE]
    assert trash.trashed(store) == [] and (outside / "keep.txt").exists()
    assert (store / VAE).is_dir()  # the one in the store stays
