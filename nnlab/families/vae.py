"""The beta-VAE family: an MLP encoder and decoder and a diagonal Gaussian posterior. A
snapshot records each probe image's posterior mean and sd, so the class densities and
the mixture overlaps apply."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.families.family import (
    ACTIVATIONS,
    AT_LEAST_1,
    NOT_NEGATIVE,
    Column,
    Config,
    Family,
)
from nnlab.families.geometry import (
    VAE_KERNEL,
    conv_params,
    dense_params,
    flat,
    vae_maps,
    vae_min_side,
)
from nnlab.helpers.console import subscript
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import added_later, option

POSTERIOR_SCALES = ("std", "variance")


@dataclass
class VAEConfig(Config):
    """A beta-VAE with an MLP (or convolutional) encoder and decoder and a diagonal
    Gaussian posterior."""

    model: str = "vae"
    hidden_dims: list[int] = option(
        [256, 128],
        "encoder layer widths (arch=conv: the fully connected layers after the "
        "convolutions); the decoder mirrors them",
        check=(lambda v: v and min(v) >= 1, "give at least one layer width, each at least 1"),
    )
    latent_dim: int = option(2, "latent dimensions", check=AT_LEAST_1)
    activation: str = option("silu", "hidden-layer activation", choices=ACTIVATIONS)
    recon: str = option("bce", "reconstruction term, summed over pixels", choices=("bce", "mse"))
    beta: float = option(1.0, "weight of KL(q(z|x) || N(0, I))", check=NOT_NEGATIVE)
    posterior_scale: str = added_later(
        "std",
        "what softplus(raw) is: the posterior's std, or its variance (the seed project's)",
        choices=POSTERIOR_SCALES,
        legacy="std",  # runs from before it existed used std
    )
    weight_decay: float = 1e-2  # AdamW's decoupled decay, as in the reference experiment

    def parameter_count(self) -> int:
        """How many parameters the model of this config has (without building it)."""
        pixels, convs = self.input_dim(), 0
        if self.arch == "conv":
            pixels = flat(vae_maps(self.image_shape, self.channels)[-1])
            kernel = VAE_KERNEL
            # the encoder's convolutions, and the decoder's transposed ones: the same
            # weights, biases for the channels each produces (the image's, last)
            convs = conv_params(self.image_shape[0], self.channels, kernel)
            convs += convs - self.channels[-1] + self.image_shape[0]
        widths = [pixels, *self.hidden_dims]
        enc = dense_params(widths)
        head = widths[-1] * 2 * self.latent_dim + 2 * self.latent_dim
        dec = dense_params([self.latent_dim, *reversed(self.hidden_dims), pixels])
        return convs + enc + head + dec

    def hidden_layers(self) -> int:
        """Encoder layers (the decoder mirrors them; arch=conv: convolutions included, and
        dropout is on the encoder alone)."""
        return len(self.hidden_dims) + (len(self.channels) if self.arch == "conv" else 0)

    def all_layer_widths(self) -> dict[str, int]:
        """The encoder's layers as --record_layers keeps them (conv1.. for arch=conv, each
        reduced by layer_reduction; enc1.. for the fully connected ones) and the posterior
        mean (mu)."""
        widths: dict[str, int] = {}
        if self.arch == "conv":
            for i, m in enumerate(vae_maps(self.image_shape, self.channels), start=1):
                widths[f"conv{i}"] = self.kept_width(m)
        widths.update({f"enc{i}": h for i, h in enumerate(self.hidden_dims, start=1)})
        return {**widths, "mu": self.latent_dim}

    def latent_width(self) -> int:
        """The latent's dimensions."""
        return self.latent_dim


class VAEFamily(Family):
    """The beta-VAE: ELBO terms, the posterior recorded, decoder pictures."""

    name = "vae"
    noun = "a VAE"
    config_class = VAEConfig
    default_preset = "vae"
    arrays = ("mu", "sd")
    symbol = "z"
    pictures = frozenset({"decode"})
    headline_key, headline_label = "test_elbo", "test ELBO"
    quality_title, quality_keys = "ELBO (per image)", ("test_elbo", "val_elbo")
    sweep_columns = (
        Column("train_loss", "train loss", "{:.2f}"),
        Column("test_loss", "test loss", "{:.2f}"),
        Column("test_elbo", "test ELBO", "{:.2f}"),
        Column("overlap_max", "top overlap", "{:.3f}", True),
        Column("ncm_accuracy", "NCM acc", "{:.1%}", True),
        Column("aggregate_kl_to_prior", "KL to prior", "{:.3f}", True),
        Column("active_units", "active units", "{:.3g}", True),
    )

    latent_objectives = {
        **Family.latent_objectives,
        "aggregate_kl_to_prior": "min",
        "active_units": "max",
    }
    eval_only = ("elbo",)

    def objective_terms(self, cfg: VAEConfig) -> dict[str, str]:
        """The loss, its reconstruction and KL terms (lower is better), and the ELBO."""
        return {"loss": "min", cfg.recon: "min", "kl": "min", "elbo": "max"}

    def check(self, cfg: VAEConfig, bad, choice) -> None:
        """A convolutional encoder needs images large enough for its strides."""
        side = vae_min_side(cfg.channels)
        if cfg.arch == "conv" and min(cfg.image_shape[1:]) < side:
            _, h, w = cfg.image_shape
            bad(
                "arch",
                f"{len(cfg.channels)} stride-2 convolutions need images of at least "
                f"{side}x{side}; these are {h}x{w} (fewer --channels, or --arch=mlp)",
            )

    def size_key(self, cfg: VAEConfig) -> str:
        """The latent when it is the widest layer, else the hidden widths."""
        return "latent_dim" if cfg.latent_dim > max(cfg.hidden_dims) else "hidden_dims"

    def label(self, cfg: VAEConfig) -> str:
        """β, latent size and dataset."""
        conv = "conv " if cfg.arch == "conv" else ""
        return f"{conv}β-VAE · β = {cfg.beta:g} · {cfg.latent_dim}-D latent · {cfg.dataset}"

    def format_headline(self, value: float | None) -> str:
        """The ELBO in nats."""
        return "-" if value is None else f"{value:.2f}"

    def epoch_headline(self, line: dict) -> str:
        """Test ELBO and its terms."""
        if not line:
            return ""
        recon = "mse" if "test_mse" in line else "bce"  # the VAE's reconstruction term
        return (
            f"test ELBO {line['test_elbo']:.2f} ({recon} {line[f'test_{recon}']:.2f}, "
            f"KL {line['test_kl']:.2f})"
        )

    def build(self, cfg: VAEConfig):
        """The encoder, the posterior head and the mirrored decoder."""
        from nnlab.families.networks import VAE, ConvVAE

        if cfg.arch == "conv":
            return ConvVAE(
                cfg.image_shape,
                cfg.channels,
                cfg.hidden_dims,
                cfg.latent_dim,
                cfg.activation,
                cfg.posterior_scale,
                cfg.dropout,
            )
        return VAE(
            cfg.hidden_dims,
            cfg.latent_dim,
            cfg.activation,
            input_dim=cfg.input_dim(),
            posterior_scale=cfg.posterior_scale,
            dropout=cfg.dropout,
        )

    def loss_terms(self, model, cfg: VAEConfig, x, y, generator=None) -> dict:
        """loss = recon + beta * kl, the reconstruction term under its name (bce or mse)."""
        from nnlab.families.networks import vae_loss

        logits, mu, std = model(x, generator)
        terms = vae_loss(x, logits, mu, std, cfg.beta, cfg.recon)
        return {"loss": terms["loss"], cfg.recon: terms["recon"], "kl": terms["kl"]}

    def evaluation(self, cfg: VAEConfig, means: dict[str, float]) -> dict[str, float]:
        """Reconstruction, KL and loss, then the true ELBO (beta = 1) per image."""
        # metrics.jsonl keeps its key order (reconstruction, KL, loss), then the ELBO
        out = {cfg.recon: means[cfg.recon], "kl": means["kl"], "loss": means["loss"]}
        out["elbo"] = -(out[cfg.recon] + out["kl"])
        return out

    def encode(self, model, cfg: VAEConfig, x, layer: int | None = None):
        """The posterior's mean and sd."""
        return model.encode(x)

    def tap_pass(self, model, x):
        """The encoder only: the forward pass would draw the posterior's samples from the
        global generator (a recording must not change training)."""
        return model.encode(x)

    def embed_layer(self, cfg: VAEConfig, layer) -> None:
        """A VAE records its posterior: no layer to choose."""
        if layer is not None:
            raise NnlabError("--layer applies to classifier runs; a VAE's latent is its posterior")
        return None

    def embed_extras(self, cfg: VAEConfig, encoded, layer, where: str) -> tuple[dict, str]:
        """No extra arrays; the mean KL per latent dimension for stderr."""
        from nnlab.families.networks import kl_to_standard_normal

        kl = kl_to_standard_normal(encoded.points, encoded.sd).mean(0).tolist()
        return {}, (
            f"mean KL to N(0, I) per latent dimension on {where}: "
            + ", ".join(f"z{subscript(i + 1)}: {v:.3f}" for i, v in enumerate(kl))
            + f" · total {sum(kl):.3f} nats"
        )


VAE = VAEFamily()
