"""What training does with any family's network: initialising, the penalty, the loss,
the optimiser, the parameter table, and encoding a batch in chunks."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from nnlab import families
from nnlab.families.family import Config


@torch.no_grad()
def initialise(model: nn.Module, how: str, activation: str = "relu") -> nn.Module:
    """Re-draw every linear layer's weights and biases (from the global torch RNG).

    default: leave PyTorch's uniform(+-1/sqrt(fan_in)); normal: N(0, 1) for weights and
    biases, as Nielsen's network.py; scaled: weights N(0, 1/fan_in), biases N(0, 1), his
    chapter 3 improvement; kaiming: weights uniform(+-gain * sqrt(3 / fan_in)) with the
    activation's gain on hidden layers and 1 on the others, biases 0 (Dohare et al.'s code).
    """
    if how == "default":
        return model
    if how == "kaiming":
        from nnlab.families.networks import kaiming_gain

        hidden = {id(m) for m in model.hidden_linears()}
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                gain = kaiming_gain(activation) if id(layer) in hidden else 1.0
                bound = gain * (3 / layer.in_features) ** 0.5
                layer.weight.uniform_(-bound, bound)
                layer.bias.zero_()
        return model
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            std = 1.0 if how == "normal" else layer.in_features**-0.5
            layer.weight.normal_(0.0, std)
            layer.bias.normal_(0.0, 1.0)
    return model


def penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | None:
    """l1 * sum|w| + (l2 / 2) * sum w^2 over every layer's weights (biases are not
    penalised: Nielsen, chapter 3); None when both are 0."""
    if not l1 and not l2:
        return None
    kinds = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    weights = [m.weight for m in model.modules() if isinstance(m, kinds)]
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
    """The batch-mean loss and the terms logged beside it, for training and evaluation alike:
    the family's terms (the first key is always "loss"), plus the weight penalty."""
    out = families.of(cfg).loss_terms(model, cfg, x, y, generator)
    # The penalty is part of the loss that is minimised (and logged as its own term); it
    # is the same for every image, so an evaluation's per-image mean includes it once.
    extra = penalty(model, cfg.l1, cfg.l2)
    if extra is not None:
        out["penalty"] = extra
        out["loss"] = out["loss"] + extra
    return out


def build_model(cfg: Config) -> nn.Module:
    """A freshly initialised model for cfg (seed the RNG first for reproducible weights)."""
    return initialise(families.of(cfg).build(cfg), cfg.init, cfg.activation)


def make_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    """The optimizer named by cfg (fused Adam/AdamW where torch supports it)."""
    params = list(params)
    if cfg.optimizer == "adadelta":  # pytorch/examples' CNN: rho 0.9, eps 1e-6 (torch's)
        # foreach: one kernel per step for all tensors (torch picks the per-tensor loop on CPU)
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if families.of(cfg).replaces_units(cfg) and cfg.cbp_adam_steps:  # adam(w) only
        from nnlab.training.cbp import StepwiseAdam

        return StepwiseAdam(params, cfg.lr, cfg.weight_decay, decoupled=cfg.optimizer == "adamw")
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
    """What encode_latents returns: the recorded points and, where the family has one,
    their spread."""

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

    What each family records (families.Family.encode): a VAE's (mean, std), each
    (N, latent_dim); a classifier's activations of layer `layer` of sizes (default the
    recorded layer; the output layer gives class scores) and None. on_batch: called after
    each chunk (progress).
    """
    was_training = model.training
    model.eval()
    try:
        family = families.of(cfg)
        outs_a, outs_b = [], []
        for start in range(0, len(x), batch):
            a, b = family.encode(model, cfg, x[start : start + batch], layer)
            outs_a.append(a)
            if b is not None:
                outs_b.append(b)
            if on_batch is not None:
                on_batch()
        a = torch.cat(outs_a) if outs_a else x.new_zeros((0, 0))
        return Encoded(a, torch.cat(outs_b) if outs_b else None)
    finally:
        model.train(was_training)
