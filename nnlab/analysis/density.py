"""The maths behind the latent pictures: class mixtures of Gaussian posteriors, their
moment-matched Gaussians, densities on a grid, and PCA projections.

A VAE maps each image to a posterior N(mu_i, diag(sd_i^2)); a class's latent distribution
is the equal-weight mixture of its images' posteriors.
"""

from __future__ import annotations

import math

import numpy as np


def mixture_moments(mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the mixture (1/K) sum_i N(mu_i, diag(sd_i^2)).

    mean = avg mu_i; cov = avg diag(sd_i^2) + avg mu_i mu_i^T - mean mean^T
    (the law of total covariance). mu, sd: (K, D). Returns (D,), (D, D).
    """
    mean, cov = moments_over_time(np.asarray(mu)[None], np.asarray(sd)[None])
    return mean[0], cov[0]


def one_sigma_density(cov: np.ndarray) -> float:
    """Density of a 2-D Gaussian N(m, cov) at Mahalanobis distance 1 from its mean."""
    det = float(np.linalg.det(cov))
    return math.exp(-0.5) / (2 * math.pi * math.sqrt(max(det, 1e-300)))


# Table entries below this are set to zero. A subnormal float (below 1.2e-38 in float32)
# makes the matrix product of grid_density an order of magnitude slower on x86, and far
# tails of exp(-z^2/2) are full of them; no colour level can show 1e-30 of a density.
FLUSH_BELOW = 1e-30


def axis_table(points: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Normal densities N(points_j; mu_i, sd_i) as a (K, n) table (tails below
    FLUSH_BELOW are exact zeros, never subnormal floats)."""
    z = (points[None, :] - mu[:, None]) / sd[:, None]
    table = np.exp(-0.5 * z * z) / (sd[:, None] * math.sqrt(2 * math.pi))
    table[table < FLUSH_BELOW] = 0
    return table


def grid_density(
    mu: np.ndarray, sd: np.ndarray, xs: np.ndarray, ys: np.ndarray, dtype=np.float64
) -> np.ndarray:
    """Mixture density on the grid ys x xs: an (len(ys), len(xs)) array.

    A diagonal Gaussian factorises over the two axes, so the mixture's density on the grid
    is one matrix product of two (K, n) tables: D = B^T A / K, with A[i, j] = N(x_j; mu_i0,
    sd_i0) and B[i, k] = N(y_k; mu_i1, sd_i1). That is K*n*(n + 2) work instead of K*n^2
    full evaluations.
    """
    mu = np.asarray(mu, dtype=dtype)
    sd = np.asarray(sd, dtype=dtype)
    a = axis_table(np.asarray(xs, dtype), mu[:, 0], sd[:, 0])
    b = axis_table(np.asarray(ys, dtype), mu[:, 1], sd[:, 1])
    # The product sums in float64: BLAS picks other kernels for other thread counts, and
    # in float32 their rounding differed enough to flip a pixel at a density's contour
    # between a serial and a parallel render (in float64, by ~1e-16 of the density).
    return (b.T.astype(np.float64) @ a.astype(np.float64)) / len(mu)


def moments_over_time(mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mixture_moments for every snapshot at once: mu, sd (S, K, D) -> (S, D), (S, D, D)."""
    mu = np.asarray(mu, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    mean = mu.mean(axis=1)
    second = np.einsum("ski,skj->sij", mu, mu) / mu.shape[1]
    cov = second - np.einsum("si,sj->sij", mean, mean)
    idx = np.arange(mu.shape[2])
    cov[:, idx, idx] += (sd**2).mean(axis=1)
    return mean, cov


def pca_basis(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, top-k principal directions (k, D) and their explained-variance ratios."""
    x = np.asarray(x, dtype=np.float64)
    centre = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - centre, full_matrices=False)
    var = s**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    # Fix each direction's sign (largest component positive) so reruns give the same picture.
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1, signs)[:, None]
    return centre, vt[:k], ratio[:k]
