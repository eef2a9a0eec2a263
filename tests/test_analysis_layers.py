"""Per-layer measures against independent computations (#39): CKA, the probe, collapse."""

from __future__ import annotations

import numpy as np
import pytest

from nnlab.analysis import layers


def cka_reference(x, y) -> float:
    """Kornblith et al.'s linear CKA written out from the paper's HSIC, in float64:
    HSIC(K, M) = tr(KHMH)/(n-1)², K = XXᵀ, M = YYᵀ, H = I - 11ᵀ/n."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, m = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


@pytest.fixture
def reps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7))
    y = np.tanh(x @ rng.normal(size=(7, 5))) + 0.3 * rng.normal(size=(60, 5))
    return x, y


def test_cka_equals_the_papers_formula_and_the_gram_form(reps):
    x, y = reps
    expected = cka_reference(x, y)
    assert layers.linear_cka(x, y) == pytest.approx(expected, abs=1e-6)
    assert layers.gram_cka(x @ x.T, y @ y.T) == pytest.approx(expected, abs=1e-6)
    assert layers.linear_cka(x.astype(np.float32), y) == pytest.approx(expected, abs=1e-6)


def test_cka_invariances(reps):
    """1 under any orthogonal transform and isotropic scaling; centring changes nothing."""
    x, _ = reps
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(7, 7)))
    assert layers.linear_cka(x, 3.5 * x @ q) == pytest.approx(1.0, abs=1e-9)
    assert layers.linear_cka(x, x + 10.0) == pytest.approx(1.0, abs=1e-9)
    y = np.random.default_rng(2).normal(size=(60, 4))
    assert layers.linear_cka(x, y) == pytest.approx(layers.linear_cka(x - 5, y + 2), abs=1e-12)
    assert layers.linear_cka(x, np.ones((60, 3))) == 0.0  # constant: nothing shared
    # not invariant to a non-isotropic scaling (what tells CKA from CCA)
    assert layers.linear_cka(x, x * np.arange(1, 8)) < 0.99


def test_cka_matrix_is_symmetric_and_matches_pairs(reps):
    x, y = reps
    z = np.random.default_rng(3).normal(size=(60, 300))  # wider than n: the Gram side
    m = layers.cka_matrix([x, y, z])
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    assert m[0, 2] == pytest.approx(cka_reference(x, z), abs=1e-6)
    cross = layers.cka_matrix([x, y], [z])
    assert cross[:, 0] == pytest.approx(m[:2, 2], abs=1e-12)


def test_the_probe_separates_separable_data_and_not_shuffled_labels():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(5), 80)
    x = rng.uniform(-1, 1, size=(400, 20)) + 4.0 * np.eye(5, 20)[labels]  # separable
    fit, test = layers.halves(labels)
    assert len(np.intersect1d(fit, test)) == 0 and len(fit) + len(test) == 400
    assert np.bincount(labels[fit]).tolist() == [40] * 5  # stratified
    assert layers.probe_accuracy(x, labels, fit, test) == 1.0
    assert layers.ncm_accuracy(x, labels, fit, test) == 1.0
    shuffled = np.random.default_rng(5).permutation(labels)
    assert layers.probe_accuracy(x, shuffled, fit, test) < 0.35  # chance is 0.2
    wide = np.repeat(x, 45, axis=1) + 0.01 * rng.normal(size=(400, 900))  # the dual form
    assert layers.probe_accuracy(wide, labels, fit, test) == 1.0


def _etf_features(c=4, d=6, n=30, noise=0.0, seed=0):
    """Features whose class means are a simplex ETF in d dimensions, plus noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, c)))
    means = (np.eye(c) - 1.0 / c) @ basis.T * 3.0  # (c, d): centred, equal norms and angles
    labels = np.repeat(np.arange(c), n)
    return means[labels] + noise * rng.normal(size=(c * n, d)), labels, means


def test_collapse_goes_to_zero_as_features_collapse_onto_an_etf():
    values = []
    for noise in (1.0, 0.1, 0.01, 0.0):
        h, labels, means = _etf_features(noise=noise)
        values.append(layers.collapse(h, labels, weight=means, bias=np.zeros(4)))
    nc1 = [v["nc1"] for v in values]
    assert nc1 == sorted(nc1, reverse=True) and nc1[-1] == pytest.approx(0, abs=1e-12)
    assert nc1[0] / nc1[2] > 1e3  # ~noise²
    last = values[-1]
    for key in ("nc2", "nc2_norms", "nc2_angles", "nc2_max_angle", "nc3", "nc4"):
        assert last[key] == pytest.approx(0, abs=1e-9), key
    assert values[0]["nc4"] >= 0  # noisy: a share
    # far from collapse: weights unrelated to the means, unequal means
    h, labels, means = _etf_features(noise=0.1)
    skewed = layers.collapse(h * [1, 5, 1, 1, 1, 1], labels, weight=np.eye(4, 6))
    assert skewed["nc2"] > 0.1 and skewed["nc3"] > 0.1


def test_collapse_matches_a_hand_computation():
    """Two classes on a line: μ₀ = 1, μ₁ = 5, μ_G = 3; Σ_W = 1, Σ_B = 4; NC1 = (1/4)/2."""
    h = np.array([[0.0], [2.0], [4.0], [6.0]])
    labels = np.array([0, 0, 1, 1])
    # a weight pointing the wrong way for class 1: the network says 0 for every image
    out = layers.collapse(h, labels, weight=np.array([[1.0], [0.0]]), bias=np.array([0, 0.0]))
    assert out["nc1"] == pytest.approx(0.125)
    assert out["nc2"] == pytest.approx(0.0, abs=1e-12)  # two opposite means are an ETF
    # W/‖W‖ = [1, 0]; M/‖M‖ = [-2, 2]/√8: (1 + 1/√2)² + 1/2
    assert out["nc3"] == pytest.approx((1 + 2 / np.sqrt(8)) ** 2 + 0.5)
    assert out["nc4"] == pytest.approx(0.5)  # h = 0, 2 agree with the nearest mean; 4, 6 not
    assert out["error"] == pytest.approx(0.5)  # the network says 0 for all four
