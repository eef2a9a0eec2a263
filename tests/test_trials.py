"""A search's trials as the summary shows them: the best trial, and each field's importance
(fANOVA), checked on trials whose metric depends on one field only."""

from __future__ import annotations

import math
import random

import pytest

from nnlab.analysis import trials

PLAN = {
    "direction": "max",
    "space": {
        "lr": {"range": [1e-4, 1e-1], "log": True, "int": False},
        "batch_size": {"range": [16, 256], "log": False, "int": True},
        "activation": {"choices": ["relu", "silu"]},
    },
}


def _point(i, lr, bs, act, value, status="finished"):
    values = {"lr": lr, "batch_size": bs, "activation": act}
    return {"index": i, "run": f"r{i}", "values": values, "status": status, "value": value}


def test_best_is_the_best_finished_trial_in_the_metric_direction():
    points = [
        _point(0, 1e-3, 32, "relu", -200.0),
        _point(1, 1e-2, 32, "relu", -150.0, status="pruned"),  # a pruned trial's last report
        _point(2, 1e-2, 64, "silu", -180.0),
        _point(3, 1e-2, 64, "silu", None, status="failed"),
    ]
    assert trials.best(points, "max")["index"] == 2
    assert trials.best(points, "min")["index"] == 0
    assert trials.best(points[1:2], "max") is None


def test_importance_finds_the_one_field_the_metric_depends_on():
    pytest.importorskip("optuna")
    rng = random.Random(0)
    points = []
    for i in range(24):
        lr = 10 ** rng.uniform(-4, -1)
        bs = rng.randint(16, 256)
        act = rng.choice(["relu", "silu"])
        points.append(_point(i, lr, bs, act, -((math.log10(lr) + 2.5) ** 2)))
    imp = trials.importance(PLAN, points)
    assert imp["trials"] == 24 and "fANOVA" in imp["method"]
    assert list(imp["values"])[0] == "lr" and imp["values"]["lr"] > 0.9
    assert sum(imp["values"].values()) == pytest.approx(1.0)
    assert imp == trials.importance(PLAN, points)  # seeded: the same trials, the same numbers


def test_importance_needs_three_finished_trials():
    points = [_point(0, 1e-3, 32, "relu", -1.0), _point(1, 1e-3, 32, "relu", None, "pruned")]
    assert trials.importance(PLAN, points) == {"note": "needs 3 finished trials (1 so far)"}
