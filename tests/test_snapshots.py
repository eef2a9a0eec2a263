"""Snapshots: the probe choice, and the worker thread that records beside training."""

from __future__ import annotations

import numpy as np
import torch

from nnlab.config.config import build
from nnlab.store import record
from nnlab.training.models import build_model
from nnlab.training.snapshots import SnapshotWorker, choose_probe, encode_probe


def test_choose_probe_is_stratified_and_aligned():
    cfg = build("vae", overrides={"probe_size": "20", "seed": "3"})
    y = torch.arange(100) % 10
    x = torch.arange(100, dtype=torch.float32)[:, None].repeat(1, 784)
    px, labels, index = choose_probe(cfg, x, y)
    assert np.bincount(labels).tolist() == [2] * 10
    assert torch.equal(px[:, 0], torch.from_numpy(index).float())  # rows match positions
    assert np.array_equal(labels, y.numpy()[index])


def test_worker_records_what_a_synchronous_pass_records(tmp_path):
    cfg = build("vae", overrides={"hidden_dims": "16", "record_dtype": "float32"})
    torch.manual_seed(0)
    model = build_model(cfg)
    probe = torch.rand(50, 784)
    sync = record.Recorder(tmp_path / "a", ("mu", "sd"), "float32")
    threaded = record.Recorder(tmp_path / "b", ("mu", "sd"), "float32")
    threads = torch.get_num_threads()
    worker = SnapshotWorker(cfg, probe, threaded)
    try:
        for step in (0, 4):
            params = [p.detach().clone() for p in model.parameters()]
            worker.submit(step, step / 10, params)
            sync.add(step, step / 10, *encode_probe(model, cfg, probe))
            with torch.no_grad():  # the next snapshot sees other weights
                for p in model.parameters():
                    p.add_(0.01)
        worker.drain()
    finally:
        worker.close()
    assert torch.get_num_threads() == threads  # given back
    # Equal up to float32 rounding: the worker's GEMMs run on one thread, and on some CPUs
    # (Intel's oneDNN/MKL) a sum split over threads rounds differently. The next snapshot's
    # weights differ by 0.01, orders of magnitude beyond the tolerance.
    for a, b in zip(sync.pending, threaded.pending, strict=True):
        assert a[:2] == b[:2]
        np.testing.assert_allclose(a[2], b[2], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a[3], b[3], rtol=1e-5, atol=1e-6)


def test_worker_only_for_bfloat16_on_a_spare_cpu():
    bf = build("vae", overrides={"record_precision": "bfloat16"})
    cpu = torch.device("cpu")
    assert SnapshotWorker.wanted(bf, cpu, 2)
    assert not SnapshotWorker.wanted(bf, cpu, 1)
    assert not SnapshotWorker.wanted(build("vae"), cpu, 2)
    off = build("vae", overrides={"record_precision": "bfloat16", "snapshot_every": "0"})
    assert not SnapshotWorker.wanted(off, cpu, 2)
