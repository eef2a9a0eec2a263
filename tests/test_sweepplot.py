"""The sweep plot's curves: a metric against a swept field, one line per combination of
the other fields, seeds pooled as mean and sample sd, unfinished points left out."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest

from nnlab.helpers.errors import NnlabError
from nnlab.render.sweepplot import curves, plot_search


def _point(beta, lr, seed, value, status="finished"):
    return {
        "values": {"beta": beta, "lr": lr, "seed": seed},
        "status": status,
        "metrics": {"test_elbo": value},
    }


def test_curves_pool_seeds_per_combination():
    d = {
        "grid": {"beta": [1, 10], "lr": [0.1, 0.2], "seed": [0, 1]},
        "points": [
            _point(1, 0.1, 0, -100.0),
            _point(1, 0.1, 1, -110.0),
            _point(10, 0.1, 0, -120.0),
            _point(10, 0.1, 1, -999.0, status="failed"),  # left out
            _point(1, 0.2, 0, -90.0),
        ],
    }
    lines = {label: (xs, means, sds) for label, xs, means, sds in curves(d, "beta", "test_elbo")}
    assert set(lines) == {"lr=0.1", "lr=0.2"}
    xs, means, sds = lines["lr=0.1"]
    assert xs == [1, 10] and means == [-105.0, -120.0]
    assert math.isclose(sds[0], math.sqrt(50.0)) and sds[1] == 0.0  # sample sd; one point: 0
    assert lines["lr=0.2"] == ([1], [-90.0], [0.0])


def _search(tmp_path, statuses):
    plan = {
        "method": "tpe",
        "metric": "test_elbo",
        "direction": "max",
        "space": {
            "lr": {"range": [1e-4, 1e-1], "log": True, "int": False},
            "batch_size": {"range": [16, 256], "log": True, "int": True},
            "activation": {"choices": ["relu", "silu"]},
        },
    }
    trials = [
        {
            "index": i,
            "values": {
                "lr": 10 ** (-4 + i / 3),
                "batch_size": 16 * 2 ** (i % 5),
                "activation": "silu",
            },
            "status": status,
            "value": -200.0 + 10 * i if status != "pruned" else -5000.0,  # one far below
        }
        for i, status in enumerate(statuses)
    ]
    return {"id": "sw", "path": str(tmp_path), "search": {"plan": plan, "trials": trials}}


def test_a_search_plot_is_written_and_needs_a_finished_trial(tmp_path):
    path = plot_search(_search(tmp_path, ["finished", "pruned", "finished", "failed"]))
    assert path == tmp_path / "media" / "search.png"
    image = iio.imread(path)
    assert (
        image.shape[1] > 3 * image.shape[0] / 2 and np.ptp(image) > 0
    )  # history + 3 fields: 2 rows of 3
    with pytest.raises(NnlabError, match="no trial has finished yet"):
        plot_search(_search(tmp_path, ["pruned", "failed"]))
