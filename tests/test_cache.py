"""The latent-metrics cache: the same numbers as computing them, reused while the
recording is unchanged, recomputed when it changes or the cache is damaged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nnlab.analysis import cache, latent
from nnlab.helpers import files
from nnlab.store import folders, record


@pytest.fixture
def run(trained, runs):
    """A private copy of the shared tiny VAE run (the cache writes into it)."""
    root, ids = trained
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root / ids["vae"], runs / ids["vae"])
    (runs / ids["vae"] / folders.CACHE_FILE).unlink(missing_ok=True)
    return folders.open_run(ids["vae"], runs)


def _forbid_computing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("computed although the cache was valid")

    monkeypatch.setattr(latent, "snapshot_metrics", refuse)
    monkeypatch.setattr(latent, "trend", refuse)


def test_values_equal_a_direct_computation_and_are_then_read_back(run, monkeypatch):
    direct_last = latent.snapshot_metrics(record.load_last(run.latents, ("mu", "sd")), 0)
    direct_trend = latent.trend(record.load_recording(run.latents, ("mu", "sd")))
    assert cache.cached(run, "last") is None
    last = cache.last_metrics(run, ("mu", "sd"))
    trend = cache.trend(run, ("mu", "sd"))
    assert last == json.loads(json.dumps(direct_last))
    assert trend == {**json.loads(json.dumps(direct_trend)), "width": 2}
    assert last["step"] == int(record.load_steps(run.latents)[-1])
    stored = json.loads(run.cache_file.read_text())
    assert stored["signature"] == cache.signature(run.latents)
    _forbid_computing(monkeypatch)
    assert cache.last_metrics(run, ("mu", "sd")) == last
    assert cache.trend(run, ("mu", "sd")) == trend
    assert cache.cached(run, "last") == last


def test_a_changed_recording_is_measured_again(run):
    before = cache.last_metrics(run, ("mu", "sd"))
    # Rewrite the last chunk with shifted latents, as a resumed run rewrites its recording.
    last = record.chunk_files(run.latents)[-1]
    arrays = files.load_npz(last)
    arrays["mu"] = (arrays["mu"].astype(np.float32) * 3.0).astype(arrays["mu"].dtype)
    files.save_npz(last, **arrays)
    assert cache.cached(run, "last") is None
    after = cache.last_metrics(run, ("mu", "sd"))
    assert after == json.loads(
        json.dumps(latent.snapshot_metrics(record.load_last(run.latents, ("mu", "sd")), 0))
    )
    assert after["aggregate_kl_to_prior"] != before["aggregate_kl_to_prior"]


def test_a_removed_chunk_changes_the_signature(run):
    sig = cache.signature(run.latents)
    chunks = record.chunk_files(run.latents)
    assert len(chunks) >= 2
    chunks[-1].unlink()
    assert cache.signature(run.latents) != sig
    assert cache.signature(run.file("nothing-here")) == ""


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": 99, "signature": "x"}'])
def test_a_damaged_or_foreign_cache_is_recomputed_not_an_error(run, text):
    expected = cache.last_metrics(run, ("mu", "sd"))
    run.cache_file.write_text(text)
    assert cache.cached(run, "last") is None
    assert cache.last_metrics(run, ("mu", "sd")) == expected
    assert json.loads(run.cache_file.read_text())["last"] == expected


def test_a_read_only_run_still_gets_its_numbers(run, monkeypatch):
    def fail(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr(files, "write_json", fail)
    assert cache.last_metrics(run, ("mu", "sd"))["step"] > 0
    assert not run.cache_file.exists()


def test_summary_of_a_run_uses_and_fills_the_cache(run, runs, nnlab, monkeypatch):
    first = nnlab("summary", run.id, "--json", f"--runs_dir={runs}")
    assert first.code == 0, first.err
    assert run.cache_file.exists()
    _forbid_computing(monkeypatch)
    second = nnlab("summary", run.id, "--json", f"--runs_dir={runs}")
    assert second.code == 0, second.err
    assert json.loads(second.out)["latent_metrics"] == json.loads(first.out)["latent_metrics"]


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: c["last"].update(ncm_accuracy=0.999),  # a forged number
        lambda c: c["last"].update(ncm_accuracy="high"),  # a string where a number belongs
        lambda c: c["last"].update(ncm_accuracy=None, step=None),
        lambda c: c["last"].update(overlap_max=float("nan")),
        lambda c: c.update({cache.TREND: {"start": [], "middle": 1}}),
        lambda c: c[cache.TREND].update(width=0),  # a width no layer has
    ],
)
def test_a_changed_cache_is_never_shown(run, runs, nnlab, forge):
    """Whatever is changed in latent-metrics.json (its seal no longer matches, or its
    shape is not what nnlab writes), the numbers shown are measured from the recording."""
    true_last = cache.last_metrics(run, ("mu", "sd"))
    cache.trend(run, ("mu", "sd"))
    path = run.cache_file
    data = json.loads(path.read_text())
    forge(data)
    path.write_text(json.dumps(data))
    assert cache.last_metrics(run, ("mu", "sd")) == true_last
    resealed = {k: v for k, v in data.items() if k != "checksum"}  # a forger who reseals
    forge(resealed)
    files.write_json(path, {**resealed, "checksum": files.seal(resealed)})
    if resealed["last"]["ncm_accuracy"] != 0.999:  # malformed: refused by its shape
        assert cache.last_metrics(run, ("mu", "sd")) == true_last
    r = nnlab("summary", run.id)
    assert r.code == 0 and "nan%" not in r.out and "Traceback" not in r.err
