"""The runs table's rows (nnlab.store.table): typed, oldest first, a damaged run listed as
damaged with the reason rather than stopping the table."""

from __future__ import annotations

import shutil
from pathlib import Path

from nnlab.store import folders, table
from nnlab.store.meta import Status

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-format1"


def test_rows_are_typed_and_oldest_first(runs):
    shutil.copytree(FIXTURE, runs)
    rows = table.rows(runs)
    assert [r.id for r in rows] == [  # by creation time: the VAE was made first
        "vae-20261129-022720-format1",
        "classifier-20261129-022729-format1",
    ]
    vae = next(r for r in rows if r.model == "vae")
    assert vae.status is Status.FINISHED and vae.headline == "test ELBO" and vae.value < 0
    assert vae.steps == 113 and vae.epochs == 1 and vae.sweep is None and not vae.problem
    assert str(vae).startswith(vae.id) and vae.path == runs / vae.id


def test_a_damaged_run_is_a_row_saying_why(runs):
    shutil.copytree(FIXTURE, runs)
    (runs / "vae-20261129-022720-format1" / "meta.json").write_text("{")
    rows = {r.id: r for r in table.rows(runs)}
    bad = rows["vae-20261129-022720-format1"]
    assert bad.status == "damaged" and "meta.json: damaged" in bad.problem and not bad.model
    assert rows["classifier-20261129-022729-format1"].status == "finished"


def test_kept_rows_are_the_rows_until_their_files_change(store):
    """A long-lived reader (nnlab serve) keeps rows by their files' sizes and times: the
    same rows as a fresh read, a changed meta.json or label read again, a removed run
    forgotten, a running run's lock looked at each time."""
    from nnlab.helpers.files import Lock
    from nnlab.store import labels
    from tests.conftest import FIXTURE_CLS, FIXTURE_VAE

    kept: dict = {}
    assert table.rows(store, kept) == table.rows(store) and set(kept) == {FIXTURE_CLS, FIXTURE_VAE}
    labels.change(folders.Run(store, FIXTURE_VAE), add=["new"])
    assert next(r for r in table.rows(store, kept) if r.id == FIXTURE_VAE).tags == ("new",)
    run = folders.Run(store, FIXTURE_CLS)
    meta = run.meta()
    run.write_meta(meta.changed(status="running"))
    assert next(r for r in table.rows(store, kept) if r.id == FIXTURE_CLS).status == "interrupted"
    held = Lock(run.lock_file, "run")
    held.acquire(folders.holder_info(run.id))
    try:  # the same files, but now a process holds the run
        assert next(r for r in table.rows(store, kept) if r.id == FIXTURE_CLS).status == "running"
    finally:
        held.release()
    assert next(r for r in table.rows(store, kept) if r.id == FIXTURE_CLS).status == "interrupted"
    shutil.rmtree(store / FIXTURE_VAE)
    assert [r.id for r in table.rows(store, kept)] == [FIXTURE_CLS] and list(kept) == [FIXTURE_CLS]
