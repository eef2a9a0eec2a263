from __future__ import annotations

import math

import numpy as np
import pytest

from nnlab.analysis import latent
from nnlab.store.record import Recording


def test_bhattacharyya_identical_far_and_closed_form():
    m, s = np.zeros(2), np.eye(2)
    assert latent.bhattacharyya(m, s, m, s) == pytest.approx(1.0)
    assert latent.bhattacharyya(m, s, np.array([40.0, 0]), s) < 1e-80
    # equal unit covariances: BC = exp(-d^2 / 8)
    assert latent.bhattacharyya(m, s, np.array([2.0, 0]), s) == pytest.approx(math.exp(-0.5))


def test_bhattacharyya_matches_numeric_integral():
    m1, s1 = np.array([0.0, 0.5]), np.array([[1.0, 0.3], [0.3, 0.5]])
    m2, s2 = np.array([1.0, -0.5]), np.array([[0.4, 0.0], [0.0, 2.0]])
    xs = np.linspace(-8, 8, 801)
    gx, gy = np.meshgrid(xs, xs)
    pts = np.stack([gx, gy], -1)

    def pdf(m, s):
        d = pts - m
        q = np.einsum("...i,ij,...j->...", d, np.linalg.inv(s), d)
        return np.exp(-q / 2) / (2 * math.pi * math.sqrt(np.linalg.det(s)))

    numeric = np.sqrt(pdf(m1, s1) * pdf(m2, s2)).sum() * (xs[1] - xs[0]) ** 2
    assert latent.bhattacharyya(m1, s1, m2, s2) == pytest.approx(numeric, rel=1e-4)


def test_separability_hand_computed():
    pts = np.array([[-1.0, 0], [-3, 0], [1, 0], [3, 0]])
    labels = np.array([0, 0, 1, 1])
    acc, ratio = latent.separability(pts, labels)
    assert acc == 1.0 and ratio == pytest.approx(4.0)  # between 4, within 1
    acc, _ = latent.separability(np.array([[0.0], [1], [0.9], [0.1]]), np.array([0, 0, 1, 1]))
    assert acc == 0.5


def test_shape_spread():
    same = {0: (np.zeros(2), np.eye(2)), 1: (np.ones(2), np.eye(2))}
    assert latent.shape_spread(same) == pytest.approx((0.0, 0.0), abs=1e-9)
    scaled = {0: (np.zeros(2), np.eye(2)), 1: (np.zeros(2), math.e * np.eye(2))}
    assert latent.shape_spread(scaled)[0] == pytest.approx(2.0, rel=1e-5)
    elongated = {0: (np.zeros(2), np.diag([1.0, 1.0])), 1: (np.zeros(2), np.diag([math.e**2, 1]))}
    assert latent.shape_spread(elongated)[1] == pytest.approx(1.0, rel=1e-5)  # sd of {0, 2}


def test_posterior_health():
    h = latent.posterior_health(np.zeros((50, 2)), np.ones((50, 2)))
    assert h["kl_per_dim"] == pytest.approx([0, 0]) and h["active_units"] == 0
    assert h["aggregate_kl_to_prior"] == pytest.approx(0, abs=1e-5)
    rng = np.random.default_rng(0)
    mu = np.stack([rng.normal(0, 1, 500), np.zeros(500)], 1)
    h = latent.posterior_health(mu, np.full((500, 2), 0.1))
    assert h["active_units"] == 1
    expected = 0.5 * (mu[:, 0] ** 2 + 0.01 - 1).mean() - math.log(0.1)
    assert h["kl_per_dim"][0] == pytest.approx(expected)


def test_corner_distances():
    act = np.array([[0.0, 0, 0], [0.1, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]])
    labels = np.array([0, 0, 1, 1])
    c = latent.corner_distances(act, labels)
    assert c["0"]["mean_distance"] == pytest.approx(0.05) and c["0"]["corner"] == "000"
    assert c["0"]["share_at_corner"] == 1.0
    assert c["1"]["mean_distance"] == pytest.approx(math.sqrt(3) * 0.25)


def test_snapshot_metrics_on_constructed_recordings():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 100)
    centres = np.array([[0.0, 0], [0.0, 0], [30, 0]])  # classes 0 and 1 identical, 2 far away
    mu = centres[labels] + rng.normal(0, 1, (300, 2))
    rec = Recording(
        np.array([5]),
        np.array([0.1]),
        labels,
        np.arange(300),
        "test",
        points=mu[None],
        sd=np.full((1, 300, 2), 0.5),
    )
    m = latent.snapshot_metrics(rec, 0)
    assert m["top_overlaps"][0]["pair"] == "0-1" and m["overlap_max"] > 0.98
    assert dict((p["pair"], p["coefficient"]) for p in m["top_overlaps"])["0-2"] < 1e-6
    assert m["active_units"] == 2 and m["step"] == 5  # both coordinates vary over the data
    act = np.clip(np.eye(3)[labels] + rng.normal(0, 0.02, (300, 3)), 0, 1)
    crec = Recording(
        np.array([0, 9]),
        np.zeros(2),
        labels,
        np.arange(300),
        "test",
        points=np.stack([np.full((300, 3), 0.5), act]),
    )
    end = latent.trend(crec)["end"]
    assert end["ncm_accuracy"] == 1.0 and end["corner_distance_mean"] < 0.05
    assert [end["corners"][str(c)]["corner"] for c in range(3)] == ["100", "010", "001"]
    s = latent.series(crec)
    assert s["step"].tolist() == [0, 9] and s["corner_distance_mean"][0] == pytest.approx(
        math.sqrt(0.75)
    )


def _brute_force_bc(mu, sd, labels, a, b, n=500):
    """The Bhattacharyya coefficient of two class mixtures by direct evaluation of every
    component at every point of a fine grid (no separability, no refinement)."""
    lo, hi = (mu - 6 * sd).min(0), (mu + 6 * sd).max(0)
    xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)

    def density(c):
        m, s = mu[labels == c], sd[labels == c]
        z = (pts[:, None, :] - m[None]) / s[None]
        comp = np.exp(-0.5 * (z**2).sum(-1)) / (2 * np.pi * s.prod(-1))[None]
        return comp.mean(1)

    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    return float(np.sqrt(density(a) * density(b)).sum() * cell)


def test_mixture_overlap_matches_a_brute_force_integral():
    rng = np.random.default_rng(0)
    # class 0: two clusters; class 1: one cluster between them; class 2: far away
    centres = {0: [[-1.5, 0.0], [1.5, 0.3]], 1: [[0.0, 0.2]], 2: [[8.0, 8.0]]}
    mu, sd, labels = [], [], []
    for c, cs in centres.items():
        for centre in cs:
            mu.append(rng.normal(centre, 0.3, (40, 2)))
            sd.append(rng.uniform(0.2, 0.5, (40, 2)))
            labels += [c] * 40
    mu, sd, labels = np.concatenate(mu), np.concatenate(sd), np.array(labels)
    pairs, coverage = latent.mixture_overlaps(mu, sd, labels)
    assert abs(coverage - 1) <= latent.COVERAGE_TOLERANCE
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert pairs[f"{a}-{b}"] == pytest.approx(_brute_force_bc(mu, sd, labels, a, b), abs=1e-3)
    assert pairs["0-2"] < 1e-6 and pairs["1-2"] < 1e-6  # distant mixtures: ~0
    # the Gaussians overstate the overlap of the two-cluster class with the middle one
    gauss = latent.overlaps(latent.class_gaussians(_rec(mu, sd, labels), 0))
    assert gauss["0-1"] > pairs["0-1"] + 0.1


def test_mixture_overlap_of_identical_mixtures_is_one():
    rng = np.random.default_rng(1)
    mu = rng.normal(0, 1, (30, 2))
    sd = rng.uniform(0.05, 0.3, (30, 2))  # narrow components: the grid is refined
    pairs, coverage = latent.mixture_overlaps(
        np.concatenate([mu, mu]), np.concatenate([sd, sd]), np.repeat([0, 1], 30)
    )
    assert pairs["0-1"] == pytest.approx(1.0, abs=1e-3) and abs(coverage - 1) <= 1e-3


def _rec(mu, sd, labels):
    return Recording(
        np.array([0]),
        np.array([0.0]),
        labels,
        np.arange(len(labels)),
        "test",
        points=mu[None],
        sd=sd[None],
    )


def test_summary_trend_has_both_overlaps_for_2d_vaes():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 20)
    mu = rng.normal(labels[:, None], 0.5, (60, 2))
    sd = np.full((60, 2), 0.3)
    end = latent.trend(_rec(mu, sd, labels))["end"]
    assert {"mixture_overlap_max", "overlap_max", "top_mixture_overlaps"} <= set(end)
    assert "mixture_overlap_max" not in latent.snapshot_metrics(_rec(mu, sd, labels), 0)
