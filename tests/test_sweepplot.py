"""The sweep plot's curves: a metric against a swept field, one line per combination of
the other fields, seeds pooled as mean and sample sd, unfinished points left out."""

from __future__ import annotations

import math

from nnlab.render.sweepplot import curves


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
