"""Unit health: the numbers the plasticity literature reads a network's hidden layers by.

Per hidden layer, measured on the probe images:
- dead: share of units never active on any probe image (ReLU-like activations: relu,
  leaky_relu, gelu, silu, softplus; "active" means a positive pre-activation, the side
  where the unit passes gradient at full strength);
- saturated: share of units beyond 0.99 of their range on most (over half) of the probe
  images (sigmoid: |2a - 1| > 0.99; tanh: |a| > 0.99);
- weight_norm: Frobenius norm of the layer's incoming weights;
- sparsity: share of incoming weights with |w| below 1% of the layer's largest |w|;
- effective_rank: exp of the entropy of the normalised singular values of the layer's
  activation matrix (probe images x units), as Dohare et al. (2024) and Roy & Vetterli
  (2007) define it: k for k equal non-zero singular values, 1 for a rank-one matrix.

dead is measured only for ReLU-like activations and saturated only for sigmoid and tanh
(identity has neither): a key that does not apply is left out.
"""

from __future__ import annotations

import torch
from torch import nn

RELU_LIKE = ("relu", "leaky_relu", "gelu", "silu", "softplus")
SATURATING = ("sigmoid", "tanh")
SATURATION = 0.99  # share of the range beyond which a unit counts as saturated
SPARSE_BELOW = 0.01  # |w| below this share of the layer's largest counts as zero


def effective_rank(act: torch.Tensor) -> float:
    """exp(H(p)) with p the singular values of act normalised to sum 1 (0 for all zeros).

    Singular values below the input's rounding noise (max(s) * max(shape) * eps of its
    dtype, numpy's matrix_rank tolerance) are left out: a rank-k float32 matrix has k."""
    eps = torch.finfo(act.dtype).eps if act.is_floating_point() else 0.0
    s = torch.linalg.svdvals(act.detach().to(torch.float64))
    if len(s):
        s = s[s > s.max() * max(act.shape) * eps]
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def dead_share(pre: torch.Tensor) -> float:
    """Share of units (columns) whose pre-activation is never positive on any row."""
    return float((pre <= 0).all(dim=0).float().mean())


def saturated_share(act: torch.Tensor, activation: str) -> float:
    """Share of units beyond SATURATION of their range on more than half of the rows."""
    centred = (2 * act - 1) if activation == "sigmoid" else act
    beyond = (centred.abs() > SATURATION).float().mean(dim=0)
    return float((beyond > 0.5).float().mean())


def weight_stats(weight: torch.Tensor) -> tuple[float, float]:
    """(Frobenius norm, share of |w| below SPARSE_BELOW of the largest |w|)."""
    w = weight.detach().abs().to(torch.float64)
    top = float(w.max()) if w.numel() else 0.0
    sparse = float((w < SPARSE_BELOW * top).double().mean()) if top > 0 else 1.0
    return float(torch.linalg.vector_norm(w)), sparse


def hidden_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """(name, incoming linear layer) of every fully connected hidden layer: h1, h2... for a
    classifier (after any convolutions); enc1.., dec1.. for a VAE's encoder and decoder."""
    linears = model.hidden_linears()
    if hasattr(model, "layers"):  # a classifier
        return [(f"h{i + 1}", layer) for i, layer in enumerate(linears)]
    encoder = {id(m) for m in model.encoder}
    enc = [m for m in linears if id(m) in encoder]
    dec = [m for m in linears if id(m) not in encoder]
    return [(f"enc{i + 1}", m) for i, m in enumerate(enc)] + [
        (f"dec{i + 1}", m) for i, m in enumerate(dec)
    ]


@torch.no_grad()
def measure(model: nn.Module, activation: str, x: torch.Tensor) -> dict[str, float]:
    """Every hidden layer's health on the images x, as flat keys <layer>_<number> (e.g.
    h1_dead, h1_effective_rank) for a metrics line; the model is left as it was."""
    was = model.training
    model.eval()
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
        for name, layer in hidden_layers(model)
    ]
    try:
        if hasattr(model, "layers"):
            model(x)
        else:  # the posterior mean decoded: no sample drawn, no RNG moved
            model.decode(model.encode(x)[0])
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    act_fn = model.act if hasattr(model, "act") else None
    out: dict[str, float] = {}
    for name, layer in hidden_layers(model):
        pre = captured[name].float()
        act = act_fn(pre) if act_fn is not None else _vae_activation(model, layer)(pre)
        norm, sparse = weight_stats(layer.weight)
        if activation in RELU_LIKE:
            out[f"{name}_dead"] = dead_share(pre)
        if activation in SATURATING:
            out[f"{name}_saturated"] = saturated_share(act, activation)
        out[f"{name}_weight_norm"] = norm
        out[f"{name}_sparsity"] = sparse
        out[f"{name}_effective_rank"] = effective_rank(act)
    return out


def _vae_activation(model: nn.Module, layer: nn.Linear) -> nn.Module:
    """The activation module that follows `layer` in the VAE's encoder or decoder."""
    for seq in (model.encoder, model.decoder):
        mods = list(seq)
        for k, m in enumerate(mods):
            if m is layer:
                return mods[k + 1]
    raise ValueError("not a hidden layer of this model")
