"""The families' torch networks and their losses, against independent computations (torch
distributions, the formulas written out by hand)."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal, kl_divergence

from nnlab.config.config import build
from nnlab.families.networks import (
    VAE,
    Classifier,
    classifier_loss,
    kl_to_standard_normal,
    vae_loss,
)
from nnlab.training.models import build_model


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 3, generator=g) * 2
    std = torch.rand(64, 3, generator=g) * 3 + 0.05
    ours = kl_to_standard_normal(mu, std).sum(1)
    q = Independent(Normal(mu, std), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(std)), 1)
    torch.testing.assert_close(ours, kl_divergence(q, p), rtol=1e-5, atol=1e-5)
    assert torch.all(kl_to_standard_normal(torch.zeros(2, 2), torch.ones(2, 2)) == 0)


def test_vae_loss_terms():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 784, generator=g)
    logits = torch.randn(8, 784, generator=g)
    mu, std = torch.randn(8, 2, generator=g), torch.rand(8, 2, generator=g) + 0.1
    t = vae_loss(x, logits, mu, std, beta=10.0)
    p = torch.sigmoid(logits)
    bce = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1).mean()
    torch.testing.assert_close(t["recon"], bce, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(t["loss"], t["recon"] + 10.0 * t["kl"])


def test_nielsen_quadratic_cost():
    out = torch.tensor([[0.2, 0.9], [0.5, 0.5]])
    y = torch.tensor([1, 0])
    # 1/(2n) sum ||y - a||^2 = ((0.04 + 0.01) + (0.25 + 0.25)) / 4
    torch.testing.assert_close(classifier_loss(out, y, "mse"), torch.tensor(0.1375))
    logits = torch.tensor([[2.0, 0.0]])
    expected = -torch.log_softmax(logits, 1)[0, 0]
    torch.testing.assert_close(classifier_loss(logits, torch.tensor([0]), "ce"), expected)


def test_vae_std_positive_and_encode_shapes():
    torch.manual_seed(0)
    vae = VAE([32], latent_dim=3)
    mu, std = vae.encode(torch.rand(4, 784))
    assert mu.shape == std.shape == (4, 3) and torch.all(std > 0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = torch.rand(4, 784)
    torch.testing.assert_close(vae(x, g1)[0], vae(x, g2)[0])  # sampling follows the generator
    assert isinstance(Classifier([784, 10]).layers[0], torch.nn.Linear)


def test_posterior_variance_matches_the_seed_projects_multivariate_normal():
    """posterior_scale=variance: softplus(raw) is the covariance's diagonal, so KL and
    reparameterised samples equal MultivariateNormal(mu, covariance_matrix=diag(...))."""
    from torch.distributions import MultivariateNormal
    from torch.nn import functional as F

    torch.manual_seed(0)
    cfg = build("vae", overrides={"hidden_dims": "16", "posterior_scale": "variance"})
    model = build_model(cfg)
    x = torch.rand(64, 784)
    mu, std = model.encode(x)
    raw = model.to_latent(model.encoder(x)).chunk(2, dim=1)[1]
    q = MultivariateNormal(mu, covariance_matrix=torch.diag_embed(F.softplus(raw)))
    prior = MultivariateNormal(torch.zeros(2), torch.eye(2))
    kl = kl_to_standard_normal(mu, std).sum(1)
    torch.testing.assert_close(kl, kl_divergence(q, prior), rtol=1e-5, atol=1e-5)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    z = model.reparameterize(mu, std, torch.Generator().manual_seed(1))
    # MultivariateNormal.rsample is loc + scale_tril @ eps: the same noise, the same sample
    torch.testing.assert_close(z, mu + torch.einsum("nij,nj->ni", q.scale_tril, eps))
    torch.testing.assert_close(std**2, F.softplus(raw), rtol=1e-5, atol=1e-6)
    std_model = build_model(build("vae", overrides={"hidden_dims": "16"}))
    std_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(std_model.encode(x)[1], F.softplus(raw) + 1e-6)  # the default
