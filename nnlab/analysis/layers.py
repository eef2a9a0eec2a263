"""How each recorded layer's representation forms over training: class separation (a
nearest-class-mean rule and a linear probe, both fitted on one half of the probe set and
scored on the other), linear CKA between layers and to each layer's own final state
(Kornblith, Norouzi, Lee and Hinton 2019), and neural collapse NC1-NC4 of the last hidden
layer (Papyan, Han and Donoho 2020). Everything here is numpy in float64, on arrays the
recording holds: nothing imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROBE_RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # relative to the mean eigenvalue of its Gram matrix
PINV_RCOND = 1e-6  # NC1's pseudo-inverse drops singular values below this share of the largest
PROBE_SEED = 39  # fixed: the halves of a probe set are the same at every snapshot


@dataclass(frozen=True)
class Measure:
    """One per-layer measure: its key and what it is called."""

    key: str
    label: str


MEASURES = (
    Measure("probe", "linear-probe accuracy (held-out half)"),
    Measure("ncm", "nearest-class-mean accuracy (held-out half)"),
    Measure("cka_final", "linear CKA to the layer's final state"),
)
COLLAPSE = (
    Measure("nc1", "NC1: Tr(Σ_W Σ_B⁺)/C, within-class variability"),
    Measure("nc2", "NC2: distance of the class means' Gram matrix to a simplex ETF's"),
    Measure("nc3", "NC3: ‖W/‖W‖ − M/‖M‖‖², distance to self-duality"),
    Measure("nc4", "NC4: share of images where the network and the nearest class mean disagree"),
)


NC_KEYS = tuple(m.key for m in COLLAPSE)  # the four measures
# what --json and the cache keep of collapse(): the four measures, NC2's parts, the error
COLLAPSE_KEYS = (*NC_KEYS, "nc2_norms", "nc2_angles", "nc2_max_angle", "error")


def _centred(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def linear_cka(x, y) -> float:
    """Linear CKA of two representations (n, p) and (n, q) of the same n examples, in its
    feature-space form ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) of centred X and Y; 0 when either is
    constant."""
    return float(cka_matrix([x, y])[0, 1])


def gram_cka(k, m) -> float:
    """CKA of two n x n Gram matrices: HSIC(K, M) / sqrt(HSIC(K, K) HSIC(M, M)), with
    HSIC(K, M) = tr(KHMH) (H the centring matrix; the 1/(n-1)² cancels)."""
    n = len(k)
    h = np.eye(n) - 1.0 / n
    kc, mc = h @ np.asarray(k, np.float64) @ h, h @ np.asarray(m, np.float64) @ h
    denominator = np.sqrt((kc * kc).sum() * (mc * mc).sum())
    return float((kc * mc).sum() / denominator) if denominator > 0 else 0.0


def _self_norm(x: np.ndarray) -> float:
    # ‖XᵀX‖_F = ‖XXᵀ‖_F: the smaller of the two products
    g = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    return float(np.sqrt((g * g).sum()))


def cka_matrix(layers: list, others: list | None = None) -> np.ndarray:
    """Linear CKA between every layer of `layers` and every one of `others` (default: the
    same list), each centred and its ‖XᵀX‖_F computed once."""
    xs = [_centred(x) for x in layers]
    ys = None if others is None else [_centred(y) for y in others]
    return _cka_centred(xs, [_self_norm(x) for x in xs], ys, ys and [_self_norm(y) for y in ys])


def _cka_centred(xs, nx, ys=None, ny=None) -> np.ndarray:
    # centred layers and their ‖XᵀX‖_F; ys None: xs against themselves (symmetric)
    same = ys is None
    ys, ny = (xs, nx) if same else (ys, ny)
    out = np.zeros((len(xs), len(ys)))
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            if same and j < i:
                out[i, j] = out[j, i]
                continue
            cross = y.T @ x
            denominator = nx[i] * ny[j]
            out[i, j] = (cross * cross).sum() / denominator if denominator > 0 else 0.0
    return out


def halves(labels: np.ndarray, seed: int = PROBE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, class-stratified split of the probe set into the half the probe and the
    class means are fitted on and the half they are scored on."""
    rng = np.random.default_rng(seed)
    fit = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        fit.extend(rng.permutation(members)[: len(members) // 2])
    mask = np.zeros(len(labels), bool)
    mask[fit] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def probe_accuracy(x, labels, fit: np.ndarray, test: np.ndarray) -> float:
    """A linear probe's accuracy: ridge regression onto one-hot targets in closed form
    (features standardised on the fit half, with a bias), fitted on `fit`, its argmax
    scored on `test`. The ridge is chosen from PROBE_RIDGES (times the mean eigenvalue of
    the Gram matrix) by fitting on one half of `fit` and scoring on the other: a layer
    wider than the probe set would otherwise fit the noise of its fit half."""
    x = np.asarray(x, np.float64)
    mean, sd = x[fit].mean(0), x[fit].std(0)
    sd[sd == 0] = 1.0
    a = np.hstack([(x - mean) / sd, np.ones((len(x), 1))])
    inner_fit, inner_test = (fit[k] for k in halves(labels[fit], PROBE_SEED + 1))
    scores = [_ridge_accuracy(a, labels, inner_fit, inner_test, r) for r in PROBE_RIDGES]
    best = PROBE_RIDGES[int(np.argmax(scores))]  # the first (least ridge) of equals
    return _ridge_accuracy(a, labels, fit, test, best)


def _ridge_accuracy(a, labels, fit, test, ridge: float) -> float:
    classes = np.unique(labels[fit])
    af, y = a[fit], (labels[fit][:, None] == classes[None]).astype(np.float64)
    if af.shape[1] <= af.shape[0]:  # primal: (AᵀA + λI) W = AᵀY
        g = af.T @ af
        lam = ridge * max(np.trace(g) / len(g), 1e-12)
        w = np.linalg.solve(g + lam * np.eye(len(g)), af.T @ y)
    else:  # wider than the fit half: the dual, W = Aᵀ(AAᵀ + λI)⁻¹Y, the same solution
        g = af @ af.T
        lam = ridge * max(np.trace(g) / len(g), 1e-12)
        w = af.T @ np.linalg.solve(g + lam * np.eye(len(g)), y)
    return float((classes[(a[test] @ w).argmax(1)] == labels[test]).mean())


def ncm_accuracy(x, labels, fit: np.ndarray, test: np.ndarray) -> float:
    """The nearest-class-mean rule's accuracy: means of the fit half, scored on `test`."""
    x = np.asarray(x, np.float64)
    classes = np.unique(labels[fit])
    means = np.stack([x[fit][labels[fit] == c].mean(0) for c in classes])
    return float((classes[_nearest(x[test], means)] == labels[test]).mean())


def _nearest(x: np.ndarray, means: np.ndarray) -> np.ndarray:
    # ‖x − μ‖² = ‖x‖² − 2x·μ + ‖μ‖²; ‖x‖² is the same for every class
    return (-2 * x @ means.T + (means * means).sum(1)[None]).argmin(1)


def collapse(h, labels, weight=None, bias=None) -> dict[str, float | None]:
    """Neural collapse of features h (n, d) with their labels, as Papyan et al. define it:
    NC1 = Tr(Σ_W Σ_B⁺)/C; NC2 = ‖G/‖G‖_F − (I − 11ᵀ/C)/√(C−1)‖_F for the Gram matrix G of
    the centred class means, with its parts: the spread of their norms (std/mean) and of
    their cosines (std), and the mean |cos + 1/(C−1)| (maximal angles); given the last
    layer's weights (C, d) and bias: NC3 = ‖W/‖W‖_F − M/‖M‖_F‖²_F and NC4, the share of
    images whose prediction argmax(Wh + b) differs from the nearest class mean's, and
    `error`, the share the network misclassifies."""
    h = np.asarray(h, np.float64)
    classes = np.unique(labels)
    c = len(classes)
    means = np.stack([h[labels == k].mean(0) for k in classes])
    m = means - h.mean(0)  # centred on the global mean of every example
    within = h - means[np.searchsorted(classes, labels)]
    # Tr(Σ_W Σ_B⁺) with Σ_B = MᵀM/C, so Σ_B⁺ = C M⁺M⁺ᵀ: a C x C product, not d x d
    m_pinv = np.linalg.pinv(m, rcond=PINV_RCOND)  # (d, C)
    projected = within @ m_pinv  # (n, C)
    nc1 = float((projected * projected).sum() / len(h))  # (C/n)‖within M⁺‖²_F, over C
    norms = np.linalg.norm(m, axis=1)
    unit = m / np.maximum(norms[:, None], 1e-300)
    cos = unit @ unit.T
    off = cos[~np.eye(c, dtype=bool)]
    gram = m @ m.T
    etf = (np.eye(c) - 1.0 / c) / np.sqrt(c - 1)
    out: dict[str, float | None] = {
        "nc1": nc1,
        "nc2": float(np.linalg.norm(gram / np.linalg.norm(gram) - etf)),
        "nc2_norms": float(norms.std() / norms.mean()),
        "nc2_angles": float(off.std()),
        "nc2_max_angle": float(np.abs(off + 1.0 / (c - 1)).mean()),
        "nc3": None,
        "nc4": None,
        "error": None,
    }
    if weight is not None:
        w = np.asarray(weight, np.float64)
        out["nc3"] = float(np.square(w / np.linalg.norm(w) - m / np.linalg.norm(m)).sum())
        b = np.zeros(len(w)) if bias is None else np.asarray(bias, np.float64)
        network = (h @ w.T + b).argmax(1)
        out["nc4"] = float((network != classes[_nearest(h, means)]).mean())
        # the network's own error on these images (on a training-split probe: the
        # training error, whose reaching 0 starts Papyan et al.'s terminal phase)
        out["error"] = float((network != labels).mean())
    return out


SERIES_POINTS = 200  # the most snapshots measured (evenly spaced, always the first and last)


def measure(rec, nc_layer: str | None, on_step=None) -> dict:
    """Every measure of every recorded layer at up to SERIES_POINTS snapshots of a
    store.layers.LayerRecording: for each layer its probe and NCM accuracies and its CKA to
    its own final state, the CKA matrix between layers at each snapshot, and (a
    classifier's last hidden layer, `nc_layer`, with the output layer's weights) NC1-NC4.
    on_step(k, total): progress."""
    from nnlab.analysis.latent import series_indices

    picks = series_indices(len(rec), SERIES_POINTS)
    labels = rec.labels
    fit, test = halves(labels)
    names = rec.names
    # neural collapse needs the output layer's weights and the layer below it recorded
    collapsing = rec.head_weight is not None and nc_layer in rec.layers
    finals = [_centred(rec.layers[name][-1]) for name in names]  # centred once
    final_norms = [_self_norm(f) for f in finals]
    out: dict = {
        "names": names,
        "steps": rec.steps[picks].tolist(),
        "epochs": rec.epochs[picks].tolist(),
        "probe": {name: [] for name in names},
        "ncm": {name: [] for name in names},
        "cka_final": {name: [] for name in names},
        "cka": [],
        "collapse_layer": nc_layer if collapsing else None,
        "collapse": {k: [] for k in COLLAPSE_KEYS} if collapsing else None,
    }
    for k, s in enumerate(picks):
        acts = [rec.layers[name][s] for name in names]
        for name, x in zip(names, acts, strict=True):
            out["probe"][name].append(probe_accuracy(x, labels, fit, test))
            out["ncm"][name].append(ncm_accuracy(x, labels, fit, test))
        centred = [_centred(x) for x in acts]
        norms = [_self_norm(x) for x in centred]
        out["cka"].append(_cka_centred(centred, norms).tolist())
        to_final = [
            _cka_centred([x], [nx], [f], [nf])[0, 0]
            for x, nx, f, nf in zip(centred, norms, finals, final_norms, strict=True)
        ]
        for name, v in zip(names, to_final, strict=True):
            out["cka_final"][name].append(float(v))
        if collapsing:
            nc = collapse(rec.layers[nc_layer][s], labels, rec.head_weight[s], rec.head_bias[s])
            for key in COLLAPSE_KEYS:
                out["collapse"][key].append(nc[key])
        if on_step:
            on_step(k + 1, len(picks))
    return out
