from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal

from nnlab.analysis.density import (
    axis_table,
    grid_density,
    mixture_moments,
    one_sigma_density,
    pca_basis,
)


def test_mixture_moments_match_monte_carlo():
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 2, size=(7, 2))
    sd = rng.uniform(0.2, 1.5, size=(7, 2))
    mean, cov = mixture_moments(mu, sd)
    comp = rng.integers(0, 7, size=400_000)
    samples = mu[comp] + sd[comp] * rng.standard_normal((400_000, 2))
    np.testing.assert_allclose(mean, samples.mean(0), atol=0.02)
    np.testing.assert_allclose(cov, np.cov(samples.T), atol=0.05)


def test_single_component_moments_are_its_own():
    mean, cov = mixture_moments(np.array([[1.0, -2.0]]), np.array([[0.5, 3.0]]))
    np.testing.assert_allclose(mean, [1.0, -2.0])
    np.testing.assert_allclose(cov, np.diag([0.25, 9.0]))


def test_grid_density_matches_torch_distributions():
    rng = np.random.default_rng(1)
    mu = rng.normal(0, 1, size=(5, 2))
    sd = rng.uniform(0.3, 1.2, size=(5, 2))
    xs, ys = np.linspace(-3, 3, 7), np.linspace(-2, 2, 5)
    grid = grid_density(mu, sd, xs, ys)
    assert grid.shape == (5, 7)
    for k, j in [(0, 0), (2, 3), (4, 6), (1, 5)]:
        point = torch.tensor([xs[j], ys[k]], dtype=torch.float64)
        comps = [
            MultivariateNormal(torch.tensor(m), torch.diag(torch.tensor(s) ** 2)).log_prob(point)
            for m, s in zip(mu, sd, strict=True)
        ]
        expected = torch.stack(comps).exp().mean().item()
        assert math.isclose(grid[k, j], expected, rel_tol=1e-9)
    t = axis_table(np.array([0.3]), np.array([0.0]), np.array([2.0]))
    assert math.isclose(
        t[0, 0], Normal(0.0, 2.0).log_prob(torch.tensor(0.3)).exp().item(), rel_tol=1e-6
    )


def test_grid_density_integrates_to_one():
    mu, sd = np.array([[0.0, 0.5], [1.0, -1.0]]), np.array([[0.5, 0.4], [0.7, 0.3]])
    xs = ys = np.linspace(-6, 6, 601)
    dx = xs[1] - xs[0]
    assert abs(grid_density(mu, sd, xs, ys).sum() * dx * dx - 1.0) < 1e-6


def test_one_sigma_density():
    cov = np.array([[2.0, 0.3], [0.3, 0.5]])
    dist = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.tensor(cov))
    # a point at Mahalanobis distance 1: mean + L e1 where cov = L L^T
    point = torch.linalg.cholesky(torch.tensor(cov)) @ torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert math.isclose(one_sigma_density(cov), dist.log_prob(point).exp().item(), rel_tol=1e-9)


def test_pca_matches_torch_svd():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    centre, basis, ratio = pca_basis(x, 2)
    _, s, v = torch.linalg.svd(torch.tensor(x - x.mean(0)), full_matrices=False)
    for i in range(2):
        assert abs(abs(float(np.dot(basis[i], v[i].numpy()))) - 1) < 1e-9  # same direction
    np.testing.assert_allclose(ratio, (s**2 / (s**2).sum())[:2].numpy(), rtol=1e-9)
    np.testing.assert_allclose(centre, x.mean(0))


def test_far_tails_are_zeros_never_subnormal_floats():
    points = np.linspace(-40, 40, 801, dtype=np.float32)
    table = axis_table(points, np.array([0.0], np.float32), np.array([0.5], np.float32))
    tiny = np.finfo(np.float32).tiny
    assert not ((table > 0) & (table < tiny)).any()
    assert (table == 0).sum() > 600 and table.max() > 0.79  # the bulk is untouched


def test_flushing_changes_no_pixel_by_more_than_one_colour_level(monkeypatch):
    """On a real recording (the frozen fixture run), density images with and without the
    flush of far tails agree within one of the 256 levels of every colour channel (a
    flush at 1e-2 instead of 1e-30 fails this)."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.analysis import density
    from nnlab.render.panels import DensityPanel
    from nnlab.render.sources import load_source, shared_limits
    from nnlab.render.style import class_colors

    fixture = Path(__file__).parent / "fixtures" / "store-format1"
    src = load_source("vae-20261129-022720-format1", fixture, "auto")
    limits = shared_limits([src], list(range(10)))[0]
    names = list("0123456789")

    def images(flush: float) -> list[np.ndarray]:
        monkeypatch.setattr(density, "FLUSH_BELOW", flush)
        fig, ax = plt.subplots()
        panel = DensityPanel(ax, src.rec, list(range(10)), class_colors(), names, limits)
        out = []
        for s in range(len(src.rec)):
            panel.update(s)
            out.append(np.asarray(panel.image.get_array(), dtype=np.int16))
        plt.close(fig)
        return out

    for a, b in zip(images(density.FLUSH_BELOW), images(0.0), strict=True):
        assert np.abs(a - b).max() <= 1
