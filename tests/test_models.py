from __future__ import annotations

import pytest
import torch

from nnlab.config.config import build
from nnlab.families.networks import (
    classifier_loss,
)
from nnlab.training.models import (
    build_model,
    encode_latents,
    loss_terms,
    parameter_table,
    penalty,
)


def test_vae_parameter_count_784_256_128_2():
    table = parameter_table(build_model(build("vae")))
    enc = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 4 + 4
    dec = 2 * 128 + 128 + 128 * 256 + 256 + 256 * 784 + 784
    assert sum(r["count"] for r in table) == enc + dec == 469268


def test_classifier_layers_and_recorded_latent():
    torch.manual_seed(0)
    cfg = build("classifier", preset="latent3")
    model = build_model(cfg)
    x = torch.rand(5, 784)
    h1 = torch.sigmoid(model.layers[0](x))
    h2 = torch.sigmoid(model.layers[1](h1))
    torch.testing.assert_close(model(x, upto=2), h2)
    a, b = encode_latents(model, cfg, x)
    assert b is None and a.shape == (5, 3) and torch.all((a > 0) & (a < 1))
    torch.testing.assert_close(a, h2)
    assert model(x).shape == (5, 10)


def test_loss_terms_one_function_for_training_and_evaluation():
    torch.manual_seed(0)
    vae_cfg = build("vae", overrides={"hidden_dims": "16", "beta": "4"})
    vae = build_model(vae_cfg)
    x = torch.rand(8, 784)
    terms = loss_terms(vae, vae_cfg, x, torch.zeros(8, dtype=torch.long), torch.Generator())
    assert list(terms) == ["loss", "bce", "kl"]
    assert torch.allclose(terms["loss"], terms["bce"] + 4 * terms["kl"])
    clf_cfg = build("classifier", overrides={"sizes": "784,10"})
    clf = build_model(clf_cfg)
    y = torch.arange(8)
    terms = loss_terms(clf, clf_cfg, x, y)
    assert list(terms) == ["loss", "acc"]
    assert torch.equal(terms["loss"], classifier_loss(clf(x), y, "mse"))
    enc = encode_latents(vae, vae_cfg, x)
    assert enc.points.shape == enc.sd.shape == (8, 2)
    assert encode_latents(clf, clf_cfg, x).sd is None


@pytest.mark.parametrize(
    "how,weight_std,bias_std",
    [("normal", 1.0, 1.0), ("scaled", 784**-0.5, 1.0), ("default", (1 / 784 / 3) ** 0.5, None)],
)
def test_init_draws_from_its_distribution(how, weight_std, bias_std):
    """A 784-30 layer's 23,520 weights (and 30 biases) have the moments of their law."""
    torch.manual_seed(0)
    cfg = build("classifier", overrides={"sizes": "784,30,10", "init": how})
    layer = build_model(cfg).layers[0]
    w, b = layer.weight.detach().double(), layer.bias.detach().double()
    n = w.numel()
    assert abs(w.mean()) < 4 * weight_std / n**0.5  # mean 0 within sampling error
    assert abs(w.std() / weight_std - 1) < 4 * (0.5 / n) ** 0.5 * (1.5 if how == "default" else 1)
    if bias_std is not None:
        assert abs(b.std() / bias_std - 1) < 0.5  # 30 draws: a loose check
        assert b.abs().max() > 1 / 784**0.5  # not PyTorch's uniform(+-1/sqrt(784))
    else:
        assert b.abs().max() <= 1 / 784**0.5


@pytest.mark.parametrize(
    "model,overrides",
    [
        ("vae", {}),
        ("vae", {"hidden_dims": "64", "latent_dim": "5"}),
        ("classifier", {"sizes": "784,10,3,10"}),
        ("classifier", {"sizes": "784,10"}),
    ],
)
def test_parameter_count_without_building_the_model(model, overrides):
    cfg = build(model, overrides=overrides)
    assert cfg.parameter_count() == sum(p.numel() for p in build_model(cfg).parameters())


# ---------------------------------------------------------------- regularisation


def _tiny_net(**overrides):
    cfg = build("classifier", overrides={"sizes": "[784,5,3,10]", "loss": "ce", **overrides})
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def test_l1_l2_penalty_and_its_gradient_equal_a_hand_computation():
    cfg, model = _tiny_net(l1="0.01", l2="0.1")
    weights = [layer.weight for layer in model.layers]
    by_hand = sum(0.01 * w.detach().abs().sum() + 0.05 * (w.detach() ** 2).sum() for w in weights)
    value = penalty(model, cfg.l1, cfg.l2)
    assert float(value.detach()) == pytest.approx(float(by_hand), rel=1e-6)
    value.backward()
    for layer in model.layers:
        w = layer.weight.detach()
        # d/dw [l1 |w| + l2/2 w^2] = l1 sign(w) + l2 w
        assert torch.allclose(layer.weight.grad, 0.01 * torch.sign(w) + 0.1 * w, atol=1e-7)
        assert layer.bias.grad is None  # biases are not penalised
    assert penalty(model, 0.0, 0.0) is None


def test_the_penalty_is_added_to_the_loss_and_logged_beside_it():
    x, y = torch.rand(8, 784), torch.randint(0, 10, (8,))
    plain_cfg, model = _tiny_net()
    l2_cfg = build("classifier", overrides={"sizes": "[784,5,3,10]", "loss": "ce", "l2": "0.5"})
    plain = loss_terms(model, plain_cfg, x, y)
    with_l2 = loss_terms(model, l2_cfg, x, y)
    assert "penalty" not in plain
    expected = 0.25 * sum((layer.weight.detach() ** 2).sum() for layer in model.layers)
    assert float(with_l2["penalty"].detach()) == pytest.approx(float(expected), rel=1e-6)
    assert float(with_l2["loss"].detach()) == pytest.approx(
        float(plain["loss"].detach() + expected), rel=1e-6
    )


def test_dropout_is_active_in_training_only():
    cfg, model = _tiny_net(dropout="0.5")
    assert [d.p for d in model.drop] == [0.5, 0.5]
    x = torch.rand(64, 784)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    b = model(x)
    assert not torch.equal(a, b)  # different units dropped each pass
    model.eval()
    assert torch.equal(model(x), model(x))
    # the recorded layer is read before dropout, and encode_latents is deterministic
    model.train()
    first = encode_latents(model, cfg, x, layer=1).points
    assert torch.equal(first, encode_latents(model, cfg, x, layer=1).points)
    assert model.training  # encode_latents leaves the mode as it was
    cfg2, _ = _tiny_net(dropout="[0.1,0.3]")
    assert [d.p for d in build_model(cfg2).drop] == [0.1, 0.3]


def test_vae_dropout_sits_after_each_hidden_layer_of_encoder_and_decoder():
    cfg = build("vae", overrides={"dropout": "[0.2,0.4]"})
    model = build_model(cfg)
    drops = [m.p for m in model.encoder if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.2, 0.4]
    assert [m.p for m in model.decoder if isinstance(m, torch.nn.Dropout)] == [0.4, 0.2]
    model.eval()
    x = torch.rand(4, 784)
    assert torch.equal(model.encode(x)[0], model.encode(x)[0])


@pytest.mark.parametrize("name", ["identity", "gelu", "leaky_relu"])
def test_new_activations(name):
    cfg, model = _tiny_net(activation=name)
    x = torch.randn(3, 784)
    h = model(x, upto=1)
    pre = model.layers[0](x)
    expected = {
        "identity": pre,
        "gelu": torch.nn.functional.gelu(pre),
        "leaky_relu": torch.nn.functional.leaky_relu(pre, 0.01),
    }[name]
    assert torch.allclose(h, expected)
