"""The two model families, their losses, and building them from a run's config."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nnlab.config.config import Config

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,  # no non-linearity: the whole network is one linear map
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01
}
STD_FLOOR = 1e-6  # keeps log(std) finite when softplus underflows for very negative inputs


@torch.no_grad()
def initialise(model: nn.Module, how: str) -> nn.Module:
    """Re-draw every linear layer's weights and biases (from the global torch RNG).

    default: leave PyTorch's uniform(+-1/sqrt(fan_in)); normal: N(0, 1) for weights and
    biases, as Nielsen's network.py; scaled: weights N(0, 1/fan_in), biases N(0, 1), his
    chapter 3 improvement.
    """
    if how == "default":
        return model
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            std = 1.0 if how == "normal" else layer.in_features**-0.5
            layer.weight.normal_(0.0, std)
            layer.bias.normal_(0.0, 1.0)
    return model


def dropout_per_layer(dropout: list[float], hidden: int) -> list[float]:
    """The dropout probability of each of `hidden` layers: one value for all, or one each."""
    if not dropout:
        return [0.0] * hidden
    return list(dropout) * hidden if len(dropout) == 1 else list(dropout)


class Classifier(nn.Module):
    """An MLP from 784 inputs to 10 outputs; can return any layer's activations.

    With `keep_hidden` set, a forward pass keeps each hidden layer's activations (before
    dropout, detached) in `hidden`: continual backprop measures its units' utility on them.
    """

    def __init__(
        self,
        sizes: list[int],
        activation: str = "sigmoid",
        loss: str = "mse",
        dropout: list[float] | None = None,
    ):
        super().__init__()
        self.sizes = list(sizes)
        self.loss_name = loss
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.ModuleList(
            nn.Dropout(p) for p in dropout_per_layer(dropout or [], len(sizes) - 2)
        )
        self.keep_hidden = False
        self.hidden: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Outputs for x; with `upto`=k, the activations of layer k of sizes instead.

        Hidden layers use the configured activation (then dropout, in training mode); the
        output layer gives sigmoid activations for the mse loss (targets are one-hot) and
        logits for ce.
        """
        last = len(self.layers)
        upto = last if upto is None else upto
        kept = []
        for i, layer in enumerate(self.layers[:upto], start=1):
            x = layer(x)
            if i < last:
                x = self.act(x)
                if self.keep_hidden:
                    kept.append(x.detach())
                if i < upto:  # a recorded layer is read before dropout
                    x = self.drop[i - 1](x)
            elif self.loss_name == "mse":
                x = torch.sigmoid(x)
        if self.keep_hidden:
            self.hidden = kept
        return x

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores in [0, 1]: softmax of the logits (ce) or the sigmoid outputs (mse)."""
        out = self(x)
        return torch.softmax(out, dim=1) if self.loss_name == "ce" else out


def classifier_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Batch-mean loss: 0.5*||a - onehot(y)||^2 (Nielsen's quadratic cost) or cross-entropy."""
    if loss == "ce":
        return F.cross_entropy(out, y)
    target = F.one_hot(y, out.shape[1]).to(out.dtype)
    # The 1/2 and the mean over the batch match Nielsen's C = 1/(2n) sum ||y - a||^2, so
    # his learning rate (eta = 3.0) carries over unchanged.
    return 0.5 * (out - target).pow(2).sum(dim=1).mean()


class VAE(nn.Module):
    """A beta-VAE with MLP encoder/decoder and posterior N(mu, diag(std^2)), where
    softplus(raw) is std (posterior_scale="std") or std^2 ("variance")."""

    def __init__(
        self,
        hidden_dims: list[int],
        latent_dim: int = 2,
        activation: str = "silu",
        input_dim: int = 784,
        posterior_scale: str = "std",
        dropout: list[float] | None = None,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.posterior_scale = posterior_scale
        act = ACTIVATIONS[activation]
        probs = dropout_per_layer(dropout or [], len(hidden_dims))
        enc, width = [], input_dim
        for h, p in zip(hidden_dims, probs, strict=True):
            enc += [nn.Linear(width, h), act(), *([nn.Dropout(p)] if p else [])]
            width = h
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Linear(width, 2 * latent_dim)  # mean and raw std, side by side
        dec, width = [], latent_dim
        for h, p in zip(reversed(hidden_dims), reversed(probs), strict=True):
            dec += [nn.Linear(width, h), act(), *([nn.Dropout(p)] if p else [])]
            width = h
        dec.append(nn.Linear(width, input_dim))
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of z given x."""
        mu, raw = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        if self.posterior_scale == "variance":  # softplus(raw) is the variance
            return mu, torch.sqrt(F.softplus(raw) + STD_FLOOR**2)
        return mu, F.softplus(raw) + STD_FLOOR

    def reparameterize(self, mu, std, generator: torch.Generator | None = None):
        """A sample z = mu + std * eps, with eps drawn from `generator` (seeded, resumable)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + std * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits for latent points z."""
        return self.decoder(z)

    def forward(self, x, generator: torch.Generator | None = None):
        """Reconstruction logits, mean and std for x."""
        mu, std = self.encode(x)
        return self.decode(self.reparameterize(mu, std, generator)), mu, std


def kl_to_standard_normal(mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(std^2)) || N(0, I)) per latent dimension, shape like mu.

    Closed form from Kingma & Welling (2014), Appendix B:
    -KL = 1/2 * sum(1 + log std^2 - mu^2 - std^2).
    """
    return 0.5 * (mu.pow(2) + std.pow(2) - 1.0) - torch.log(std)


def vae_loss(x, logits, mu, std, beta: float, recon: str = "bce") -> dict[str, torch.Tensor]:
    """Per-batch-mean terms: recon (summed over pixels), kl, and loss = recon + beta * kl."""
    if recon == "bce":
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        rec = (torch.sigmoid(logits) - x).pow(2)
    rec = rec.sum(dim=1).mean()
    kl = kl_to_standard_normal(mu, std).sum(dim=1).mean()
    return {"recon": rec, "kl": kl, "loss": rec + beta * kl}


def penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | None:
    """l1 * sum|w| + (l2 / 2) * sum w^2 over every linear layer's weights (biases are not
    penalised: Nielsen, chapter 3); None when both are 0."""
    if not l1 and not l2:
        return None
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    total = weights[0].new_zeros(())
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + (l2 / 2) * w.pow(2).sum()
    return total


def loss_terms(
    model: nn.Module,
    cfg: Config,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The batch-mean loss and the terms logged beside it, for training and evaluation alike.

    VAE: loss = recon + beta * kl, with the reconstruction term under its name (bce or
    mse) and kl. Classifier: loss and accuracy. The first key is always "loss".
    """
    if cfg.model == "vae":
        logits, mu, std = model(x, generator)
        terms = vae_loss(x, logits, mu, std, cfg.beta, cfg.recon)
        out = {"loss": terms["loss"], cfg.recon: terms["recon"], "kl": terms["kl"]}
    else:
        scores = model(x)
        out = {
            "loss": classifier_loss(scores, y, cfg.loss),
            "acc": (scores.argmax(1) == y).float().mean(),
        }
    # The penalty is part of the loss that is minimised (and logged as its own term); it
    # is the same for every image, so an evaluation's per-image mean includes it once.
    extra = penalty(model, cfg.l1, cfg.l2)
    if extra is not None:
        out["penalty"] = extra
        out["loss"] = out["loss"] + extra
    return out


def build_model(cfg: Config) -> nn.Module:
    """A freshly initialised model for cfg (seed the RNG first for reproducible weights)."""
    if cfg.model == "vae":
        model = VAE(
            cfg.hidden_dims,
            cfg.latent_dim,
            cfg.activation,
            posterior_scale=cfg.posterior_scale,
            dropout=cfg.dropout,
        )
    else:
        model = Classifier(cfg.sizes, cfg.activation, cfg.loss, cfg.dropout)
    return initialise(model, cfg.init)


def make_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    """The optimizer named by cfg (fused Adam/AdamW where torch supports it)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        # Fused kernels cut a small model's step time by about a fifth on CPU.
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def parameter_table(model: nn.Module) -> list[dict]:
    """One row per parameter tensor: name, shape, count."""
    return [
        {"name": n, "shape": list(p.shape), "count": p.numel()} for n, p in model.named_parameters()
    ]


class Encoded(NamedTuple):
    """What encode_latents returns: the recorded points and, for a VAE, their std."""

    points: torch.Tensor  # VAE posterior means, or a classifier layer's activations (N, D)
    sd: torch.Tensor | None  # VAE posterior standard deviations (N, D); None for classifiers


@torch.no_grad()
def encode_latents(
    model: nn.Module,
    cfg: Config,
    x: torch.Tensor,
    *,
    layer: int | None = None,
    batch: int = 4096,
    on_batch=None,
) -> Encoded:
    """The recorded latent of every row of x, in one no-grad pass per chunk.

    Chunks of 4,096 rows keep the hidden activations in cache: a quarter faster than one
    10,000-row pass on the benchmark machine, and still large enough for full-speed GEMMs.

    VAE: (mean, std), each (N, latent_dim). Classifier: (activations of layer `layer` of
    sizes, default the recorded layer; the output layer gives class scores, None).
    on_batch: called after each chunk (progress).
    """
    was_training = model.training
    model.eval()
    try:
        outs_a, outs_b = [], []
        for start in range(0, len(x), batch):
            xb = x[start : start + batch]
            if cfg.model == "vae":
                mu, std = model.encode(xb)
                outs_a.append(mu)
                outs_b.append(std)
            else:
                layer = cfg.recorded_layer if layer is None else layer
                if layer == len(cfg.sizes) - 1:
                    outs_a.append(model.probabilities(xb))
                else:
                    outs_a.append(model(xb, upto=layer))
            if on_batch is not None:
                on_batch()
        a = torch.cat(outs_a) if outs_a else x.new_zeros((0, 0))
        return Encoded(a, torch.cat(outs_b) if outs_b else None)
    finally:
        model.train(was_training)
