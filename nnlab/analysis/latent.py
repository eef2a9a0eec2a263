"""Numbers behind the pictures: latent-space metrics per snapshot, from the recording.

Every class is summarised by a Gaussian: for the VAE the moment-matched Gaussian of the
mixture of its images' posteriors, for the classifier the mean and covariance of its
activations. The metrics compare those Gaussians and the points themselves.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from nnlab.analysis.density import grid_density, mixture_moments
from nnlab.store.record import Recording

RIDGE = 1e-6  # added to covariances so saturated (flat) classes stay invertible
MIXTURE_GRIDS = (256, 512, 1024)  # grid points per axis tried for the mixture overlap
COVERAGE_TOLERANCE = 1e-3  # each class's mass on the grid must be 1 within this
ACTIVE_UNIT_VARIANCE = 0.01  # a latent dimension is active when Var_x(E[z|x]) exceeds this


def bhattacharyya(m1, s1, m2, s2) -> float:
    """Bhattacharyya coefficient exp(-D_B) of N(m1, s1) and N(m2, s2): 1 identical, ~0 apart.

    D_B = 1/8 d^T S^-1 d + 1/2 ln(det S / sqrt(det s1 det s2)), S = (s1 + s2) / 2.
    """
    s1 = np.asarray(s1, np.float64) + RIDGE * np.eye(len(m1))
    s2 = np.asarray(s2, np.float64) + RIDGE * np.eye(len(m1))
    s = (s1 + s2) / 2
    d = np.asarray(m1, np.float64) - np.asarray(m2, np.float64)
    _, ld = np.linalg.slogdet(s)
    _, ld1 = np.linalg.slogdet(s1)
    _, ld2 = np.linalg.slogdet(s2)
    db = d @ np.linalg.solve(s, d) / 8 + 0.5 * (ld - 0.5 * (ld1 + ld2))
    return float(math.exp(-db))


def class_gaussians(rec: Recording, s: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per class present in the probe set: (mean, covariance) at snapshot s."""
    out = {}
    for c in np.unique(rec.labels):
        sel = rec.labels == c
        if rec.sd is not None:  # each point a Gaussian: the class is their mixture
            out[int(c)] = mixture_moments(rec.points[s, sel], rec.sd[s, sel])
        else:
            x = rec.points[s, sel].astype(np.float64)
            mean = x.mean(0)
            out[int(c)] = (mean, (x - mean).T @ (x - mean) / len(x))
    return out


def overlaps(gauss: dict) -> dict[str, float]:
    """Bhattacharyya coefficient of every class pair, keyed 'a-b' (a < b)."""
    return {
        f"{a}-{b}": bhattacharyya(*gauss[a], *gauss[b])
        for a, b in itertools.combinations(sorted(gauss), 2)
    }


def mixture_overlaps(
    mu: np.ndarray, sd: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, float], float]:
    """Bhattacharyya coefficient BC = integral of sqrt(p_a p_b) of every pair of real class
    mixtures (2-D latents), keyed 'a-b', and the grid's worst coverage.

    Each class's density p_c = mean_i N(mu_i, diag(sd_i^2)) is evaluated on one grid over
    5 standard deviations around every component (the separable grid density), and the
    integral is the grid sum times the cell area. The grid is refined until every class
    integrates to 1 within COVERAGE_TOLERANCE; the coverage returned is the smallest
    class mass found on the final grid.
    """
    mu, sd = np.asarray(mu, np.float64), np.asarray(sd, np.float64)
    lo, hi = (mu - 5 * sd).min(0), (mu + 5 * sd).max(0)
    classes = [int(c) for c in np.unique(labels)]
    for n in MIXTURE_GRIDS:
        xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
        dens = {c: grid_density(mu[labels == c], sd[labels == c], xs, ys) for c in classes}
        mass = [float(d.sum() * cell) for d in dens.values()]
        if max(abs(m - 1) for m in mass) <= COVERAGE_TOLERANCE:
            break
    roots = {c: np.sqrt(d) for c, d in dens.items()}
    pairs = {
        f"{a}-{b}": float((roots[a] * roots[b]).sum() * cell)
        for a, b in itertools.combinations(classes, 2)
    }
    return pairs, min(mass)


def separability(points: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy of the nearest-class-mean rule, between/within spread ratio) on the points."""
    classes = np.unique(labels)
    means = np.stack([points[labels == c].mean(0) for c in classes])
    d2 = ((points[:, None, :] - means[None]) ** 2).sum(-1)
    acc = float((classes[d2.argmin(1)] == labels).mean())
    grand = points.mean(0)
    idx = np.searchsorted(classes, labels)
    within = float(((points - means[idx]) ** 2).sum(-1).mean())
    between = float(((means[idx] - grand) ** 2).sum(-1).mean())
    return acc, between / max(within, 1e-12)


def shape_spread(gauss: dict) -> tuple[float, float]:
    """How differently shaped the class Gaussians are.

    (mean |ln det S_a - ln det S_b| over class pairs: spread of sizes,
     standard deviation over classes of ln(largest / smallest eigenvalue): spread of
     elongations). Both are 0 when every class has the same covariance shape.
    """
    covs = [g[1] + RIDGE * np.eye(len(g[0])) for g in gauss.values()]
    logdets = [np.linalg.slogdet(c)[1] for c in covs]
    pairs = [abs(a - b) for a, b in itertools.combinations(logdets, 2)]
    eig = [np.linalg.eigvalsh(c) for c in covs]
    ratios = [math.log(e[-1] / max(e[0], 1e-300)) for e in eig]
    return float(np.mean(pairs)) if pairs else 0.0, float(np.std(ratios))


def posterior_health(mu: np.ndarray, sd: np.ndarray) -> dict:
    """VAE: KL per dimension, active units, and the aggregate posterior against N(0, I)."""
    mu = mu.astype(np.float64)
    sd = sd.astype(np.float64)
    kl = (0.5 * (mu**2 + sd**2 - 1.0) - np.log(sd)).mean(0)
    active = int((mu.var(0) > ACTIVE_UNIT_VARIANCE).sum())
    mean, cov = mixture_moments(mu, sd)
    dim = len(mean)
    _, logdet = np.linalg.slogdet(cov + RIDGE * np.eye(dim))
    agg_kl = 0.5 * (np.trace(cov) + mean @ mean - dim - logdet)
    return {
        "kl_per_dim": kl.tolist(),
        "active_units": active,
        "aggregate_mean": mean.tolist(),
        "aggregate_cov": cov.tolist(),
        "aggregate_kl_to_prior": float(agg_kl),
    }


def corner_distances(act: np.ndarray, labels: np.ndarray) -> dict:
    """Classifier in the unit cube: per class, the mean distance of its points to their
    nearest corner, and the corner most of them are nearest to."""
    corners = np.clip(np.round(act), 0, 1)
    dist = np.linalg.norm(act - corners, axis=1)
    out = {}
    for c in np.unique(labels):
        sel = labels == c
        keys, counts = np.unique(corners[sel].astype(int), axis=0, return_counts=True)
        out[str(int(c))] = {
            "mean_distance": float(dist[sel].mean()),
            "corner": "".join(map(str, keys[counts.argmax()])),
            "share_at_corner": float(counts.max() / sel.sum()),
        }
    return out


def snapshot_metrics(rec: Recording, s: int, top: int = 3, mixtures: bool = False) -> dict:
    """All metrics for snapshot s of a recording; with `mixtures`, also the overlap of the
    real class mixtures of a 2-D VAE latent (a grid integral: slower)."""
    gauss = class_gaussians(rec, s)
    pairs = overlaps(gauss)
    worst = sorted(pairs.items(), key=lambda kv: -kv[1])[:top]
    points = rec.points[s].astype(np.float64)
    acc, ratio = separability(points, rec.labels)
    out = {
        "step": int(rec.steps[s]),
        "epoch": float(rec.epochs[s]),
        "overlap_max": worst[0][1] if worst else 0.0,
        "overlap_mean": float(np.mean(list(pairs.values()))) if pairs else 0.0,
        "top_overlaps": [{"pair": k, "coefficient": v} for k, v in worst],
        "ncm_accuracy": acc,
        "between_within": ratio,
    }
    if mixtures and rec.sd is not None and rec.points.shape[2] == 2:
        mix, coverage = mixture_overlaps(rec.points[s], rec.sd[s], rec.labels)
        ranked = sorted(mix.items(), key=lambda kv: -kv[1])
        out["mixture_overlap_max"] = ranked[0][1] if ranked else 0.0
        out["mixture_overlap_mean"] = float(np.mean(list(mix.values()))) if mix else 0.0
        out["top_mixture_overlaps"] = [{"pair": k, "coefficient": v} for k, v in ranked[:top]]
        out["mixture_coverage"] = coverage
    if rec.sd is not None:
        out["shape_logdet_spread"], out["shape_elongation_spread"] = shape_spread(gauss)
        out.update(posterior_health(rec.points[s], rec.sd[s]))
    elif points.shape[1] == 3 and points.min() >= 0 and points.max() <= 1:
        corners = corner_distances(points, rec.labels)
        out["corners"] = corners
        out["corner_distance_mean"] = float(np.mean([v["mean_distance"] for v in corners.values()]))
    return out


def trend(rec: Recording) -> dict:
    """Metrics at the start, middle and end of the recording, for the summary."""
    n = len(rec)
    picks = {"start": 0, "middle": n // 2, "end": n - 1}
    return {name: snapshot_metrics(rec, s, mixtures=True) for name, s in picks.items()}


@dataclass(frozen=True)
class Metric:
    """One latent metric as the summary and the plot show it."""

    key: str  # its key in snapshot_metrics()
    label: str  # the summary's row label
    fmt: str  # how the summary formats a value (each value, for a vector)
    panel: str | None = None  # the plot panel it is drawn in (None: not plotted)
    vector: bool = False  # one value per latent dimension


# The latent metrics, in the order the summary lists them and the plot draws its panels.
METRICS = (
    Metric(
        "mixture_overlap_max", "most-overlapping pair (Bhattacharyya, class mixtures)", "{:.3f}"
    ),
    Metric("mixture_overlap_mean", "mean pairwise overlap (class mixtures)", "{:.3f}"),
    Metric(
        "overlap_max",
        "most-overlapping pair (Bhattacharyya, moment-matched Gaussians)",
        "{:.3f}",
        "overlap: Bhattacharyya coefficient of moment-matched Gaussians",
    ),
    Metric(
        "overlap_mean",
        "mean pairwise overlap (moment-matched Gaussians)",
        "{:.3f}",
        "overlap: Bhattacharyya coefficient of moment-matched Gaussians",
    ),
    Metric("ncm_accuracy", "nearest-class-mean accuracy", "{:.1%}", "nearest-class-mean accuracy"),
    Metric(
        "between_within", "between/within class spread", "{:.2f}", "between / within class spread"
    ),
    Metric(
        "shape_logdet_spread",
        "shape spread: mean |Δ ln det Σ|",
        "{:.3f}",
        "shape spread of class covariances",
    ),
    Metric(
        "shape_elongation_spread",
        "shape spread: sd of ln(λmax/λmin)",
        "{:.3f}",
        "shape spread of class covariances",
    ),
    Metric("active_units", "active units (Var E[z|x] > 0.01)", "{}"),
    Metric("aggregate_kl_to_prior", "aggregate posterior KL to N(0, I)", "{:.3f}"),
    Metric(
        "kl_per_dim",
        "KL to prior per dimension",
        "{:.2f}",
        "KL to prior per dimension",
        vector=True,
    ),
    Metric(
        "corner_distance_mean",
        "mean distance to nearest cube corner",
        "{:.3f}",
        "mean distance to nearest cube corner",
    ),
)


def format_metric(metric: Metric, value) -> str:
    """A metric's value as the summary shows it."""
    if metric.vector:
        return ", ".join(metric.fmt.format(v) for v in value)
    return metric.fmt.format(value)


def series_indices(n: int, max_points: int = 200) -> np.ndarray:
    """The snapshots `series` evaluates: at most max_points, evenly spread, first and last."""
    return np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))


def series(rec: Recording, max_points: int = 200, on_step=None) -> dict[str, np.ndarray]:
    """Every metric of METRICS over training (at most max_points snapshots, evenly spread):
    (snapshots,) arrays, (snapshots, dims) for vectors. on_step: called after each one."""
    idx = series_indices(len(rec), max_points)
    rows = []
    for s in idx:
        rows.append(snapshot_metrics(rec, int(s)))
        if on_step is not None:  # progress
            on_step()
    out = {"step": np.array([r["step"] for r in rows])}
    for m in METRICS:
        if m.key in rows[0]:
            out[m.key] = np.array([r[m.key] for r in rows], dtype=np.float64)
    return out
