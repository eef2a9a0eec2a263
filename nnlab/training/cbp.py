"""Continual backprop (Dohare et al., "Loss of plasticity in deep continual learning",
Nature 632, 2024): keep a network plastic by re-initialising its least useful hidden units.

For each hidden unit i of layer l, after every optimisation step:

    u_i <- decay * u_i + (1 - decay) * mean_batch|h_i| * sum_k |W_next[k, i]|

(its contribution utility: how much it adds to the next layer), read bias-corrected as
u_i / (1 - decay^age_i), as Adam corrects its moments. Units older than `maturity` steps
are eligible; rate * (eligible units) replacements accumulate per step, and each whole one
re-initialises the eligible unit of lowest corrected utility: its incoming weights are
re-drawn from the layer's initial distribution, its bias set to 0, its outgoing weights
set to 0 (so the network's output does not jump) with the next layer's bias absorbing the
unit's mean contribution, and its utility, mean activation and age reset to 0. The
optimiser's running moments of those weights are zeroed too.

Everything here (utilities, mean activations, ages, the fractional count, the generator
that draws new weights) is in the checkpoint, so a resumed run replaces the same units.
"""

from __future__ import annotations

import torch
from torch import nn

from nnlab.families.classifier import ClassifierConfig


class ContinualBackprop:
    """The generate-and-test state of a classifier's hidden layers."""

    def __init__(self, model: nn.Module, cfg: ClassifierConfig, seed: int):
        self.model = model
        self.rate, self.maturity, self.decay = cfg.cbp_rate, cfg.cbp_maturity, cfg.cbp_decay
        self.init, self.activation = cfg.init, cfg.activation
        self.utility = cfg.cbp_utility
        widths = cfg.sizes[1:-1]
        self.util = [torch.zeros(n) for n in widths]
        self.mean_act = [torch.zeros(n) for n in widths]
        self.age = [torch.zeros(n, dtype=torch.long) for n in widths]
        self.owed = [0.0 for _ in widths]  # fractional replacements carried to the next step
        self.replaced = 0  # units replaced so far (all layers)
        self.gen = torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Everything that decides the next replacement (tensors and plain values)."""
        return {
            "util": [u.clone() for u in self.util],
            "mean_act": [m.clone() for m in self.mean_act],
            "age": [a.clone() for a in self.age],
            "owed": list(self.owed),
            "replaced": self.replaced,
            "rng": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore state_dict()'s values."""
        self.util = [u.clone() for u in state["util"]]
        self.mean_act = [m.clone() for m in state["mean_act"]]
        self.age = [a.clone() for a in state["age"]]
        self.owed = [float(x) for x in state["owed"]]
        self.replaced = int(state["replaced"])
        self.gen.set_state(state["rng"])

    # ------------------------------------------------------------ the step

    def corrected_utility(self, layer: int) -> torch.Tensor:
        """Layer `layer`'s (0-based hidden layer) utilities, bias-corrected for their age."""
        age = self.age[layer].to(torch.float64)
        correction = 1 - torch.pow(torch.tensor(self.decay, dtype=torch.float64), age)
        # a unit of age 0 has no measurement yet: its utility reads as 0, not 0/0
        return torch.where(age > 0, self.util[layer] / correction.clamp_min(1e-300), 0.0).to(
            self.util[layer].dtype
        )

    @torch.no_grad()
    def update_utility(self, hidden: list[torch.Tensor]) -> None:
        """Age every unit by one step and fold this batch's contributions into utilities."""
        layers = self.model.layers
        for i, h in enumerate(hidden):
            h = h.detach().to("cpu", torch.float32)
            self.age[i] += 1
            self.mean_act[i].mul_(self.decay).add_((1 - self.decay) * h.mean(dim=0))
            if self.utility == "adaptable_contribution":
                # |h - its bias-corrected mean| * mean |outgoing w| / mean |incoming w|, as
                # the authors' util_type='adaptable_contribution'
                correction = 1 - self.decay ** self.age[i].to(torch.float64)
                mean = (self.mean_act[i].to(torch.float64) / correction).to(h.dtype)
                outgoing = layers[i + 1].weight.detach().to("cpu").abs().mean(dim=0)
                incoming = layers[i].weight.detach().to("cpu").abs().mean(dim=1)
                contribution = (h - mean).abs().mean(dim=0) * outgoing / incoming
            else:  # mean |h| * sum |outgoing w|: the paper's Eq. 1
                outgoing = layers[i + 1].weight.detach().to("cpu").abs().sum(dim=0)
                contribution = h.abs().mean(dim=0) * outgoing
            self.util[i].mul_(self.decay).add_((1 - self.decay) * contribution)

    @torch.no_grad()
    def step(self, hidden: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> int:
        """After an optimisation step: update utilities, replace what is owed; returns the
        number of units replaced now."""
        if not self.rate:
            return 0
        self.update_utility(hidden)
        layers = self.model.layers
        done = 0
        for i in range(len(self.util)):
            eligible = torch.nonzero(self.age[i] > self.maturity).flatten()
            if not len(eligible):
                continue
            self.owed[i] += self.rate * len(eligible)
            n = int(self.owed[i] + 1e-9)  # 50 * 0.02 summed may read 0.99999999...
            if n == 0:
                continue
            self.owed[i] -= n
            n = min(n, len(eligible))
            util = self.corrected_utility(i)[eligible]
            # lowest utility first; ties broken by unit index, so the choice is reproducible
            order = torch.argsort(util, stable=True)
            units = eligible[order[:n]]
            self._replace(layers[i], layers[i + 1], i, units, optimizer)
            done += n
        self.replaced += done
        return done

    def _replace(self, layer: nn.Linear, after: nn.Linear, i: int, units, optimizer) -> None:
        """Re-initialise `units` of hidden layer i (incoming `layer`, outgoing `after`)."""
        device = layer.weight.device
        idx = units.to(device)
        # The next layer's bias takes over the unit's mean contribution (its outgoing
        # weights times its running mean activation), before those weights are zeroed.
        correction = 1 - self.decay ** self.age[i][units].to(torch.float64)
        mean = (self.mean_act[i][units].to(torch.float64) / correction).to(after.bias.dtype)
        after.bias += (after.weight[:, idx] * mean.to(device)).sum(dim=1)
        after.weight[:, idx] = 0
        layer.weight[idx] = self._fresh(len(units), layer.in_features).to(device)
        layer.bias[idx] = 0
        self.util[i][units] = 0
        self.mean_act[i][units] = 0
        self.age[i][units] = 0
        _reset_moments(optimizer, layer.weight, rows=idx)
        _reset_moments(optimizer, layer.bias, rows=idx)
        _reset_moments(optimizer, after.weight, cols=idx)

    def _fresh(self, n: int, fan_in: int) -> torch.Tensor:
        """n rows of incoming weights from the distribution the layer was first drawn from
        (nnlab's `init`): PyTorch's uniform(+-1/sqrt(fan_in)), N(0, 1), N(0, 1/fan_in) or
        Kaiming's uniform(+-gain*sqrt(3/fan_in))."""
        if self.init == "kaiming":
            from nnlab.families.networks import kaiming_gain

            bound = kaiming_gain(self.activation) * (3 / fan_in) ** 0.5
            return (torch.rand(n, fan_in, generator=self.gen) * 2 - 1) * bound
        if self.init == "normal":
            return torch.randn(n, fan_in, generator=self.gen)
        if self.init == "scaled":
            return torch.randn(n, fan_in, generator=self.gen) * fan_in**-0.5
        bound = fan_in**-0.5
        return (torch.rand(n, fan_in, generator=self.gen) * 2 - 1) * bound


def _reset_moments(optimizer: torch.optim.Optimizer, param, rows=None, cols=None) -> None:
    """Zero the optimiser's running values (Adam's moments and, with StepwiseAdam, its step
    counts; SGD's momentum) of some rows or columns of a parameter: a new unit starts
    without its predecessor's history."""
    state = optimizer.state.get(param, {})
    keys = ["exp_avg", "exp_avg_sq", "momentum_buffer"]
    if isinstance(optimizer, StepwiseAdam):
        keys.append("step")
    for key in keys:
        buf = state.get(key)
        if buf is None:
            continue
        if rows is not None:
            buf[rows] = 0
        else:
            buf[:, cols] = 0


class StepwiseAdam(torch.optim.Optimizer):
    """Adam (or AdamW, `decoupled`) with one step count per weight, as the continual
    backprop authors' AdamGnT: when a unit is replaced, its weights' counts are reset with
    their moments, so its first updates are bias-corrected as a fresh start. torch's Adam
    keeps one count per tensor, which scales a new unit's early updates up (about 2.5x after
    one step for beta = 0.9/0.999). Otherwise the same update as torch's Adam/AdamW."""

    def __init__(self, params, lr, weight_decay=0.0, decoupled=False, betas=(0.9, 0.999), eps=1e-8):
        defaults = {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps}
        super().__init__(params, defaults)
        self.decoupled = decoupled

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient."""
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros_like(p)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                if wd and self.decoupled:
                    p.mul_(1 - lr * wd)
                elif wd:
                    grad = grad.add(p, alpha=wd)
                state["step"] += 1
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bc1 = 1 - beta1 ** state["step"]
                bc2 = 1 - beta2 ** state["step"]
                denom = (state["exp_avg_sq"] / bc2).sqrt_().add_(eps)
                p.addcdiv_(state["exp_avg"] / bc1, denom, value=-lr)
        return loss
