"""The latent-metrics cache: the same numbers as computing them, reused while the
recording is unchanged, recomputed when it changes or the cache is damaged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nnlab import analysis, files, latentstats, record, store


@pytest.fixture
def run(trained, runs):
    """A private copy of the shared tiny VAE run (the cache writes into it)."""
    root, ids = trained
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root / ids["vae"], runs / ids["vae"])
    (runs / ids["vae"] / latentstats.CACHE_FILE).unlink(missing_ok=True)
    return store.open_run(ids["vae"], runs)


def _forbid_computing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("computed although the cache was valid")

    monkeypatch.setattr(analysis, "snapshot_metrics", refuse)
    monkeypatch.setattr(analysis, "trend", refuse)


def test_values_equal_a_direct_computation_and_are_then_read_back(run, monkeypatch):
    direct_last = analysis.snapshot_metrics(record.load_last(run.latents, "vae"), 0)
    direct_trend = analysis.trend(record.load_recording(run.latents, "vae"))
    assert latentstats.cached(run, "last") is None
    last = latentstats.last_metrics(run, "vae")
    trend = latentstats.trend(run, "vae")
    assert last == json.loads(json.dumps(direct_last))
    assert trend == json.loads(json.dumps(direct_trend))
    assert last["step"] == int(record.load_steps(run.latents)[-1])
    cache = json.loads(run.file(latentstats.CACHE_FILE).read_text())
    assert cache["signature"] == latentstats.signature(run.latents)
    _forbid_computing(monkeypatch)
    assert latentstats.last_metrics(run, "vae") == last
    assert latentstats.trend(run, "vae") == trend
    assert latentstats.cached(run, "last") == last


def test_a_changed_recording_is_measured_again(run):
    before = latentstats.last_metrics(run, "vae")
    # Rewrite the last chunk with shifted latents, as a resumed run rewrites its recording.
    last = record.chunk_files(run.latents)[-1]
    arrays = files.load_npz(last)
    arrays["mu"] = (arrays["mu"].astype(np.float32) * 3.0).astype(arrays["mu"].dtype)
    files.save_npz(last, **arrays)
    assert latentstats.cached(run, "last") is None
    after = latentstats.last_metrics(run, "vae")
    assert after == json.loads(
        json.dumps(analysis.snapshot_metrics(record.load_last(run.latents, "vae"), 0))
    )
    assert after["aggregate_kl_to_prior"] != before["aggregate_kl_to_prior"]


def test_a_removed_chunk_changes_the_signature(run):
    sig = latentstats.signature(run.latents)
    chunks = record.chunk_files(run.latents)
    assert len(chunks) >= 2
    chunks[-1].unlink()
    assert latentstats.signature(run.latents) != sig
    assert latentstats.signature(run.file("nothing-here")) == ""


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": 99, "signature": "x"}'])
def test_a_damaged_or_foreign_cache_is_recomputed_not_an_error(run, text):
    expected = latentstats.last_metrics(run, "vae")
    run.file(latentstats.CACHE_FILE).write_text(text)
    assert latentstats.cached(run, "last") is None
    assert latentstats.last_metrics(run, "vae") == expected
    assert json.loads(run.file(latentstats.CACHE_FILE).read_text())["last"] == expected


def test_a_read_only_run_still_gets_its_numbers(run, monkeypatch):
    def fail(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr(files, "write_json", fail)
    assert latentstats.last_metrics(run, "vae")["step"] > 0
    assert not run.file(latentstats.CACHE_FILE).exists()


def test_summary_of_a_run_uses_and_fills_the_cache(run, runs, nnlab, monkeypatch):
    first = nnlab("summary", run.id, "--json", f"--runs_dir={runs}")
    assert first.code == 0, first.err
    assert run.file(latentstats.CACHE_FILE).exists()
    _forbid_computing(monkeypatch)
    second = nnlab("summary", run.id, "--json", f"--runs_dir={runs}")
    assert second.code == 0, second.err
    assert json.loads(second.out)["latent_metrics"] == json.loads(first.out)["latent_metrics"]
