"""meta.json as a typed record: Meta reads back what it wrote, keys it does not know survive a
rewrite, and Status is the word it stands for wherever a word was used."""

from __future__ import annotations

import json

import pytest

from nnlab.store import schema
from nnlab.store.meta import ENDED, POINT_STATUSES, RUN_STATUSES, Meta, Status
from tests.test_schema import _meta


def test_meta_reads_back_as_it_was_written():
    obj = {**_meta(sweep={"id": "s", "point": 1}), "later_key": [1, 2]}
    meta = Meta.from_json(obj)
    assert meta.status is Status.RUNNING and meta.sweep == {"id": "s", "point": 1}
    assert meta.to_json() == obj and list(meta.to_json()) == list(obj)
    assert meta.changed(status="finished").to_json()["status"] == "finished"
    assert meta.changed(status="finished").status is Status.FINISHED


def test_optional_keys_stay_absent_until_known():
    obj = _meta()
    meta = Meta.from_json(obj)
    assert meta.sweep is meta.pruned is meta.metrics_sha256 is None
    assert "sweep" not in meta.to_json() and "pruned" not in meta.to_json()
    assert meta.to_json()["ended"] is None  # ended is always written, null until the end
    later = meta.changed(pruned={"step": 3, "metric": "test_elbo", "value": -1.0})
    assert later.to_json()["pruned"]["step"] == 3
    schema.check_meta(later.to_json(), "meta.json")


def test_a_checksum_is_never_part_of_the_record():
    meta = Meta.from_json({**_meta(), "checksum": "0" * 64})
    assert "checksum" not in meta.to_json() and "checksum" not in meta.extra


def test_status_is_its_word():
    assert Status.FINISHED == "finished" and f"{Status.PRUNED}" == "pruned"
    assert str(Status.FAILED) == "failed" and json.dumps([Status.DIVERGED]) == '["diverged"]'
    assert {"finished": 1}[Status.FINISHED] == 1 and Status("interrupted") is Status.INTERRUPTED
    assert "pending" not in RUN_STATUSES and "pending" in POINT_STATUSES
    assert set(ENDED) <= set(RUN_STATUSES) and "damaged" not in POINT_STATUSES
    with pytest.raises(ValueError):
        Status("done")
