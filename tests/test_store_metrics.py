"""The metrics log: queued lines appended durably, cut back on resume, read back."""

from __future__ import annotations

import json

from nnlab.families.classifier import CLASSIFIER
from nnlab.families.vae import VAE
from nnlab.store import metrics


def test_append_flush_size_truncate(tmp_path):
    log = metrics.MetricsLog(tmp_path / "metrics.jsonl")
    assert log.size() == 0
    log.append(kind="step", step=10, loss=1.5)
    assert log.size() == 0  # queued until the next flush
    log.flush()
    first = log.size()
    log.append(kind="step", step=20, loss=1.25)
    log.flush()
    assert [m["step"] for m in metrics.read(log.path)] == [10, 20]
    log.append(kind="step", step=30, loss=1.0)  # queued, then dropped by the truncate
    log.truncate(first)
    log.flush()
    assert metrics.read(log.path) == [{"kind": "step", "step": 10, "loss": 1.5}]
    log.remove()
    assert not log.path.exists() and metrics.read(log.path) == []


def test_parse_counts_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"kind": "epoch", "epoch": 1}) + '\n{"kind": "ep')
    lines, bad = metrics.parse(path)
    assert lines == [{"kind": "epoch", "epoch": 1}] and bad == 1
    assert metrics.last_epoch(path) == {"kind": "epoch", "epoch": 1}


def test_best_values_direction():
    lines = [
        {"kind": "epoch", "epoch": 1, "step": 5, "val_acc": 0.8, "test_elbo": -90.0},
        {"kind": "epoch", "epoch": 2, "step": 9, "val_acc": 0.7, "test_elbo": -80.0},
    ]
    best = metrics.best_values(lines)
    assert best["val_acc"] == {"value": 0.8, "epoch": 1, "step": 5}
    assert best["test_elbo"]["epoch"] == 2 and "step" not in best


def test_headlines():
    vae = {"test_elbo": -100.123, "test_mse": 90.0, "test_kl": 10.123}
    assert VAE.epoch_headline(vae) == "test ELBO -100.12 (mse 90.00, KL 10.12)"
    clf = {"test_acc": 0.91234, "test_loss": 0.05}
    assert CLASSIFIER.epoch_headline(clf) == "test accuracy 91.23% (loss 0.0500)"
    assert VAE.headline(vae) == ("test ELBO", -100.123)
    assert CLASSIFIER.format_headline(0.5) == "50.00%"
    assert VAE.format_headline(None) == "-"


def test_the_digest_carries_on_and_equals_a_fresh_one(tmp_path):
    from nnlab.store.metrics import MetricsLog, prefix_digest

    log = MetricsLog(tmp_path / "metrics.jsonl")
    assert log.digest(0) == prefix_digest(log.path, 0)
    for i in range(5):
        log.append(kind="step", step=i, loss=1.0 / (i + 1))
        log.flush()
        assert log.digest(log.size()) == prefix_digest(log.path, log.size())
    half = log.size() // 2
    assert log.digest(half) == prefix_digest(log.path, half)  # a smaller prefix: again
    log.truncate(half)
    log.append(kind="step", step=9, loss=0.5)
    log.flush()
    assert log.digest(log.size()) == prefix_digest(log.path, log.size())
    assert log.digest(log.size() + 100) == prefix_digest(log.path, log.size())  # past the end
