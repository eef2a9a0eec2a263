from __future__ import annotations

import numpy as np
import pytest
import torch

from nnlab.helpers.errors import RunError
from nnlab.store import record


def test_probe_indices_all_or_stratified():
    labels = np.repeat(np.arange(10), [50, 50, 50, 50, 50, 50, 50, 50, 50, 5])
    assert np.array_equal(record.probe_indices(labels, 10_000, 0), np.arange(len(labels)))
    idx = record.probe_indices(labels, 91, seed=1)
    assert len(idx) == 91 and len(set(idx)) == 91
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.min() >= 1 and counts[:9].tolist() == [10] * 9  # proportional to class size
    assert np.array_equal(idx, record.probe_indices(labels, 91, seed=1))


def test_recorder_round_trip_float16_precision(tmp_path):
    rec = record.Recorder(tmp_path, ("mu", "sd"), "float16")
    rec.write_probe(np.array([3, 1, 4]), np.array([10, 11, 12]), "test")
    rng = np.random.default_rng(0)
    mus = [rng.normal(0, 3, size=(3, 2)).astype(np.float32) for _ in range(5)]
    for i, mu in enumerate(mus[:3]):
        rec.add(i * 4, i * 0.1, torch.from_numpy(mu), torch.from_numpy(np.abs(mu) + 0.1))
    assert rec.flush() == 1
    for i, mu in enumerate(mus[3:], start=3):
        rec.add(i * 4, i * 0.1, mu, np.abs(mu) + 0.1)
    assert rec.flush() == 2 and rec.flush() == 2  # nothing pending: no empty chunk
    r = record.load_recording(tmp_path, ("mu", "sd"))
    assert r.steps.tolist() == [0, 4, 8, 12, 16] and r.labels.tolist() == [3, 1, 4]
    assert r.points.shape == (5, 3, 2) and r.points.dtype == np.float32
    err = np.abs(r.points - np.stack(mus)) / np.maximum(np.abs(np.stack(mus)), 1e-3)
    assert err.max() <= 2.0**-11  # float16 keeps 11 significant bits
    assert record.snapshot_count(tmp_path) == 5
    # a 2-D VAE stores 8 bytes per probe image per snapshot (mu and sd, float16)
    assert r.points[0].size * 2 + r.sd[0].size * 2 == 8 * 3
    rec.truncate(1)
    assert record.load_recording(tmp_path, ("mu", "sd")).steps.tolist() == [0, 4, 8]


def test_load_recording_errors(tmp_path):
    with pytest.raises(RunError, match="probe.npz: missing"):
        record.load_recording(tmp_path, ("act",))
    rec = record.Recorder(tmp_path, ("act",), "float32")
    rec.write_probe(np.array([0, 1]), np.array([0, 1]), "test")
    with pytest.raises(RunError, match="no latent snapshots"):
        record.load_recording(tmp_path, ("act",))
    rec.add(0, 0.0, np.zeros((2, 3)))
    rec.flush()
    (tmp_path / "chunk-000000.npz").write_bytes(b"garbage")
    with pytest.raises(RunError, match="chunk-000000.npz: damaged"):
        record.load_recording(tmp_path, ("act",))
