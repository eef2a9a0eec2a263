"""meta.json's schema: what new_meta writes passes check_meta, and every planted value is
refused in one line; the checksum is canonical; size ceilings follow the config."""

from __future__ import annotations

import re

import pytest

from nnlab.config.config import build
from nnlab.helpers.errors import RunError
from nnlab.store import schema
from nnlab.store.meta import Meta


def _meta(**changes) -> dict:
    meta = schema.new_meta(
        "vae-20260101-000000",
        "vae",
        versions={"nnlab": "0.1.0", "torch": "2.x", "python": "3.11"},
        device="cpu",
        data={
            "dataset": "mnist-sample",
            "dataset_requested": "mnist-sample",
            "data_source": "bundled",
            "train_size": 3600,
            "val_size": 400,
            "test_size": 1000,
        },
        steps_per_epoch=113,
        parameters=[{"name": "w", "shape": [2, 3], "count": 6}],
        probe={"split": "test", "size": 200},
        config_sha256="0" * 64,
        now="2026-01-01T00:00:00.000+00:00",
    )
    return {**meta.to_json(), **changes}


def test_what_new_meta_writes_passes_the_check():
    meta = _meta()
    schema.check_meta(meta, "meta.json")
    assert meta["format"] == schema.FORMAT_VERSION and meta["status"] == "running"
    assert meta["parameter_count"] == 6 and "sweep" not in meta
    assert _meta(sweep={"id": "s", "point": 0})["sweep"] == {"id": "s", "point": 0}


def test_the_checksum_ignores_key_order_and_sees_every_value():
    a = _meta()
    b = dict(reversed(list(a.items())))
    assert schema.meta_checksum(a) == schema.meta_checksum(b)
    assert schema.meta_checksum(a) != schema.meta_checksum({**a, "steps_done": 1})


def test_size_ceilings_grow_with_the_model_and_the_recording():
    small, meta = build("vae"), Meta.from_json(_meta())
    wide = build("vae", overrides={"latent_dim": "20", "hidden_dims": "512,256"})
    (ck_small, chunk_small), (ck_wide, chunk_wide) = (
        schema.size_ceilings(small, meta),
        schema.size_ceilings(wide, meta),
    )
    assert ck_wide > ck_small and chunk_wide > chunk_small
    assert ck_small >= 16 * small.parameter_count()  # weights and Adam's moments fit
    # a chunk holds at most every snapshot of every probe image in the widest layer
    snaps = 113 // small.snapshot_every + 2
    assert chunk_small >= 4 * snaps * 200 * small.latent_width()


def _search_record():
    point = {
        "run": "s-p0",
        "values": {"lr": 0.01},
        "status": "pruned",
        "attempts": 1,
        "error": None,
        "value": -190.5,
    }
    plan = {
        "method": "tpe",
        "trials": 2,
        "metric": "test_elbo",
        "direction": "max",
        "seed": 0,
        "prune": "asha",
        "prune_every": 0.25,
        "space": {"lr": {"range": [1e-4, 0.1], "log": True, "int": False}},
    }
    return {"format": 1, "model": "vae", "base": "", "grid": {}, "points": [point], "search": plan}


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda r: r["points"].append(dict(r["points"][0])) or r["points"].append({}), "3 points"),
        (lambda r: r["points"][0]["values"].update(beta=1.0), "point 0"),
        (lambda r: r["points"][0].update(value="high"), "point 0"),
        (lambda r: r["search"].update(method="grid"), "'search'"),
        (lambda r: r["search"]["space"]["lr"].update(range=[1, 0.1]), "search space of 'lr'"),
        (lambda r: r["grid"].update(lr=[1, 2]), "points for a search"),
    ],
)
def test_a_search_record_is_checked(change, words):
    rec = _search_record()
    schema.check_sweep(rec, "sweep.json")  # as nnlab writes it
    change(rec)
    with pytest.raises(RunError, match=re.escape(words)):
        schema.check_sweep(rec, "sweep.json")
