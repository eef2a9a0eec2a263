"""Unit health: effective rank, dead and saturated units, weight norm and sparsity, on
constructed layers whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from nnlab.config.config import build
from nnlab.store import metrics
from nnlab.training import health
from nnlab.training.models import build_model


@pytest.mark.parametrize("k", [1, 3, 7])
def test_effective_rank_of_a_rank_k_matrix(k):
    g = torch.Generator().manual_seed(k)
    # equal singular values: exactly k
    q, _ = torch.linalg.qr(torch.randn(200, k, generator=g, dtype=torch.float64))
    r, _ = torch.linalg.qr(torch.randn(30, k, generator=g, dtype=torch.float64))
    assert health.effective_rank(q @ r.T) == pytest.approx(k, rel=1e-9)
    # a random rank-k matrix: at most k, and about k
    a = torch.randn(200, k, generator=g) @ torch.randn(k, 30, generator=g)
    er = health.effective_rank(a)
    assert 0.6 * k <= er <= k + 1e-6


def test_effective_rank_by_hand_and_of_zeros():
    # singular values 3 and 1: p = (0.75, 0.25), exp(H) = exp(-(.75 ln .75 + .25 ln .25))
    a = torch.diag(torch.tensor([3.0, 1.0]))
    hand = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert health.effective_rank(a) == pytest.approx(hand, rel=1e-9)
    assert health.effective_rank(torch.zeros(5, 4)) == 0.0


def test_dead_units_on_a_constructed_relu_layer_are_counted_exactly():
    pre = torch.randn(100, 10)
    pre[:, [1, 4, 8]] = -pre[:, [1, 4, 8]].abs() - 0.1  # never positive: dead
    pre[0, 4] = 0.0  # zero is not active either
    pre[:, 6] = -1.0
    pre[17, 6] = 0.5  # active on one image: alive
    assert health.dead_share(pre) == pytest.approx(3 / 10)


def test_saturated_units():
    act = torch.full((10, 4), 0.5)
    act[:, 0] = 0.999  # saturated on every image
    act[:6, 1] = 0.001  # on 6 of 10: most
    act[:4, 2] = 0.999  # on 4 of 10: not most
    assert health.saturated_share(act, "sigmoid") == pytest.approx(2 / 4)
    t = torch.zeros(10, 2)
    t[:, 1] = -0.995
    assert health.saturated_share(t, "tanh") == pytest.approx(1 / 2)


def test_weight_norm_and_sparsity():
    w = torch.tensor([[3.0, 0.0, 0.02], [4.0, -0.029, 1.0]])
    norm, sparse = health.weight_stats(w)
    assert norm == pytest.approx(math.sqrt(9 + 0.0004 + 16 + 0.029**2 + 1))
    # 1% of the largest |w| (4) is 0.04: 0, 0.02 and -0.029 are below it
    assert sparse == pytest.approx(3 / 6)


def test_measure_a_classifier_layer_by_layer():
    cfg = build("classifier", overrides={"sizes": "[784,8,5,10]", "activation": "relu"})
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.layers[0].bias[:3] = -1e3  # three dead units in h1
    x = torch.rand(50, 784)
    out = health.measure(model, "relu", x)
    with torch.no_grad():
        never = (model.layers[0](x) <= 0).all(dim=0)
    assert never[:3].all()  # the three forced ones are dead, and counted with the rest
    assert out["h1_dead"] == pytest.approx(float(never.float().mean()))
    assert set(out) == {
        f"h{i}_{k}" for i in (1, 2) for k in metrics.HEALTH_NUMBERS if k != "saturated"
    }
    act = torch.relu(model.layers[0](x))
    assert out["h1_effective_rank"] == pytest.approx(health.effective_rank(act))
    assert out["h2_weight_norm"] == pytest.approx(
        float(model.layers[1].weight.detach().norm()), rel=1e-6
    )
    sig = health.measure(build_model(build("classifier")), "sigmoid", x)
    assert "h1_saturated" in sig and "h1_dead" not in sig
    ident = health.measure(
        build_model(build("classifier", overrides={"activation": "identity"})), "identity", x
    )
    assert "h1_saturated" not in ident and "h1_dead" not in ident


def test_measure_a_vae_names_encoder_and_decoder_layers_and_moves_no_rng():
    cfg = build("vae", overrides={"hidden_dims": "[16,8]"})
    model = build_model(cfg)
    x = torch.rand(20, 784)
    state = torch.get_rng_state()
    out = health.measure(model, cfg.activation, x)
    assert torch.equal(state, torch.get_rng_state())
    names = {k.rsplit("_", 2)[0] for k in out if k.endswith("_sparsity")}
    assert names == {"enc1", "enc2", "dec1", "dec2"}
    assert model.training  # left as it was
