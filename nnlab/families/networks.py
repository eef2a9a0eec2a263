"""The families' networks in torch: the MLP classifier and the beta-VAE, and their losses.

Imported only by the families' torch methods and the training layer, never at the import
of nnlab.families.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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


def kaiming_gain(activation: str) -> float:
    """The gain torch recommends for an activation (sqrt 2 for relu); like the continual
    backprop authors' code, smooth relu-like ones (silu, gelu, softplus) take relu's."""
    from torch.nn.init import calculate_gain

    like = {"silu": "relu", "gelu": "relu", "softplus": "relu", "identity": "linear"}
    return calculate_gain(like.get(activation, activation))


def dropout_per_layer(dropout: list[float], hidden: int) -> list[float]:
    """The dropout probability of each of `hidden` layers: one value for all, or one each."""
    if not dropout:
        return [0.0] * hidden
    return list(dropout) * hidden if len(dropout) == 1 else list(dropout)


class Standardize(nn.Module):
    """(x - mean) / std per channel of flat rows (N, C*H*W): one [mean, std] pair for every
    channel, or C means then C stds; an empty list leaves x as it is."""

    def __init__(self, channels: int, values: list[float] | None):
        super().__init__()
        values = list(values or [])
        self.on = bool(values)
        half = len(values) // 2
        mean = values[:half] * (channels if half == 1 else 1) if values else [0.0] * channels
        std = values[half:] * (channels if half == 1 else 1) if values else [1.0] * channels
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, channels, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised rows."""
        if not self.on:
            return x
        n, c = x.shape
        per = self.mean.shape[1]
        return ((x.view(n, per, c // per) - self.mean) / self.std).view(n, c)


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
        norm: list[float] | None = None,
        channels: int = 1,
    ):
        super().__init__()
        self.norm = Standardize(channels, norm)
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
        self.taps: dict[str, torch.Tensor] | None = None  # a dict: every layer's output, by name

    def forward(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Outputs for x; with `upto`=k, the activations of layer k of sizes instead.

        Hidden layers use the configured activation (then dropout, in training mode); the
        output layer gives sigmoid activations for the mse loss (targets are one-hot) and
        logits for ce.
        """
        last = len(self.layers)
        upto = last if upto is None else upto
        kept = []
        x = self.norm(x)
        for i, layer in enumerate(self.layers[:upto], start=1):
            x = layer(x)
            if i < last:
                x = self.act(x)
                if self.keep_hidden:
                    kept.append(x.detach())
                if self.taps is not None:
                    self.taps[f"h{i}"] = x
                if i < upto:  # a recorded layer is read before dropout
                    x = self.drop[i - 1](x)
            elif self.loss_name == "mse":
                x = torch.sigmoid(x)
        if self.keep_hidden:
            self.hidden = kept
        if self.taps is not None:
            self.taps["out"] = x
        return x

    def hidden_linears(self) -> list[nn.Linear]:
        """The layers whose outputs go through the hidden activation (all but the last)."""
        return list(self.layers[:-1])

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
        self.taps: dict[str, torch.Tensor] | None = None  # a dict: every encoder layer, by name

    def hidden_linears(self) -> list[nn.Linear]:
        """The layers whose outputs go through the hidden activation: the encoder's, and the
        decoder's but its last (the posterior head and the pixel logits are linear)."""
        enc = [m for m in self.encoder if isinstance(m, nn.Linear)]
        dec = [m for m in self.decoder if isinstance(m, nn.Linear)]
        return enc + dec[:-1]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of z given x (with `taps` a dict: every
        encoder layer's activations too, conv1.. and enc1.., and mu)."""
        h = self.encoder(x) if self.taps is None else self._tapped(x)
        mu, raw = self.to_latent(h).chunk(2, dim=1)
        if self.taps is not None:
            self.taps["mu"] = mu
        if self.posterior_scale == "variance":  # softplus(raw) is the variance
            return mu, torch.sqrt(F.softplus(raw) + STD_FLOOR**2)
        return mu, F.softplus(raw) + STD_FLOOR

    def _tapped(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder layer by layer, each activation kept under its layer's name."""
        counts = {"conv": 0, "enc": 0}
        last = None
        for m in self.encoder:
            x = m(x)
            if isinstance(m, nn.Conv2d):
                last = "conv"
            elif isinstance(m, nn.Linear):
                last = "enc"
            elif last and not isinstance(m, (nn.Dropout, nn.Flatten, nn.Unflatten)):
                counts[last] += 1  # the activation after a convolution or linear layer
                self.taps[f"{last}{counts[last]}"] = x
                last = None
        return x

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


class ConvClassifier(Classifier):
    """3x3 convolutions (stride 1), a 2x2 max-pool, then fully connected layers: with
    channels [32, 64] and sizes [784, 128, 10], the network of pytorch/examples' mnist/main.py.

    Inputs are flat rows (N, C*H*W), viewed as images. Layers are named conv1.., pool,
    fc1..; forward(x, upto=name) returns that layer's activations, flattened. Dropout:
    dropout[0] after the pool, dropout[i] after hidden fc i (one value: everywhere).
    """

    def __init__(
        self, shape, channels, sizes, activation="relu", loss="ce", dropout=None, norm=None
    ):
        nn.Module.__init__(self)  # its own layers; hidden_linears and probabilities inherited
        from nnlab.families.geometry import CNN_KERNEL, cnn_maps, flat

        self.norm = Standardize(shape[0], norm)
        self.shape = tuple(shape)
        self.loss_name = loss
        c_in, convs = shape[0], []
        for c in channels:
            convs.append(nn.Conv2d(c_in, c, CNN_KERNEL))
            c_in = c
        self.convs = nn.ModuleList(convs)
        widths = [flat(cnn_maps(list(shape), list(channels))[-1]), *sizes[1:]]
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.ModuleList(
            nn.Dropout(p) for p in dropout_per_layer(dropout or [], len(sizes) - 1)
        )
        self.keep_hidden = False  # continual backprop is for MLPs (refused by the config)
        self.hidden: list[torch.Tensor] = []
        self.taps: dict[str, torch.Tensor] | None = None  # a dict: every layer's output, by name

    def forward(self, x: torch.Tensor, upto: str | None = None) -> torch.Tensor:
        """Outputs for x (sigmoid for the mse loss, logits for ce); with `upto`, the
        activations of that layer (before dropout), flattened."""
        taps = self.taps if self.taps is not None else {}  # feature maps kept as (N, C, H, W)
        x = self.norm(x).view(-1, *self.shape)
        for i, conv in enumerate(self.convs, start=1):
            x = taps[f"conv{i}"] = self.act(conv(x))
            if upto == f"conv{i}":
                return x.flatten(1)
        x = taps["pool"] = F.max_pool2d(x, 2)
        if upto == "pool":
            return x.flatten(1)
        x = self.drop[0](x).flatten(1)
        last = len(self.layers)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if i < last:
                x = taps[f"fc{i}"] = self.act(x)
                if upto == f"fc{i}":
                    return x
                x = self.drop[i](x)
            elif self.loss_name == "mse":
                x = torch.sigmoid(x)
        taps[f"fc{last}"] = x
        return x


class ConvVAE(VAE):
    """A beta-VAE whose encoder is strided 4x4 convolutions (each halves the side), then
    fully connected layers of hidden_dims to the posterior; the decoder mirrors it with
    transposed convolutions back to the images' own size. Rows in and logits out are flat
    (N, C*H*W), as the MLP VAE's, so the loss, the recording and decode are shared."""

    def __init__(
        self,
        shape,
        channels,
        hidden_dims,
        latent_dim=2,
        activation="silu",
        posterior_scale="std",
        dropout=None,
    ):
        nn.Module.__init__(self)
        from nnlab.families.geometry import VAE_KERNEL, VAE_PADDING, VAE_STRIDE, flat, vae_maps

        self.latent_dim = latent_dim
        self.posterior_scale = posterior_scale
        self.shape = tuple(shape)
        act = ACTIVATIONS[activation]
        maps = vae_maps(list(shape), list(channels))
        probs = dropout_per_layer(dropout or [], len(channels) + len(hidden_dims))
        enc, c_in = [nn.Unflatten(1, self.shape)], shape[0]
        for c, p in zip(channels, probs, strict=False):
            enc += [nn.Conv2d(c_in, c, VAE_KERNEL, VAE_STRIDE, VAE_PADDING), act()]
            enc += [nn.Dropout(p)] if p else []
            c_in = c
        enc.append(nn.Flatten())
        width = flat(maps[-1])
        for h, p in zip(hidden_dims, probs[len(channels) :], strict=True):
            enc += [nn.Linear(width, h), act(), *([nn.Dropout(p)] if p else [])]
            width = h
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Linear(width, 2 * latent_dim)
        dec, width = [], latent_dim
        for h in reversed(hidden_dims):
            dec += [nn.Linear(width, h), act()]
            width = h
        dec += [nn.Linear(width, flat(maps[-1])), act(), nn.Unflatten(1, maps[-1])]
        sides = [tuple(shape[1:])] + [m[1:] for m in maps]  # each convolution's input side
        outs = [shape[0], *channels]
        for k in range(len(channels), 0, -1):
            target, came = sides[k - 1], sides[k]
            # a strided convolution floors odd sides: output_padding gives the pixel back
            pad = (target[0] - 2 * came[0], target[1] - 2 * came[1])
            dec.append(
                nn.ConvTranspose2d(
                    outs[k], outs[k - 1], VAE_KERNEL, VAE_STRIDE, VAE_PADDING, output_padding=pad
                )
            )
            if k > 1:
                dec.append(act())
        dec.append(nn.Flatten())
        self.decoder = nn.Sequential(*dec)
        self.taps: dict[str, torch.Tensor] | None = None  # a dict: every encoder layer, by name

    def hidden_linears(self) -> list[nn.Linear]:
        """The fully connected layers followed by the activation (encoder and decoder)."""
        return [m for m in (*self.encoder, *self.decoder) if isinstance(m, nn.Linear)]
