"""The classifier family: an MLP from 784 pixels to 10 classes. A snapshot records one
layer's activations; the first layer's weights are drawn as masks."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.families.family import (
    ACTIVATIONS,
    INPUT_DIM,
    NOT_NEGATIVE,
    NUM_CLASSES,
    Column,
    Config,
    Family,
)
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import added_later, option

LOSSES = ("mse", "ce")


@dataclass
class ClassifierConfig(Config):
    """An MLP classifier; sizes lists every layer's width from 784 inputs to 10 outputs."""

    model: str = "classifier"
    sizes: list[int] = option(
        [784, 30, 10],
        "every layer's width, from 784 inputs to 10 outputs",
        check=(lambda v: not v or min(v) >= 1, "every layer needs at least 1 unit"),
    )
    activation: str = option("sigmoid", "hidden-layer activation", choices=ACTIVATIONS)
    loss: str = option(
        "mse",
        "mse: quadratic cost on one-hot targets (sigmoid outputs); ce: softmax cross-entropy",
        choices=LOSSES,
    )
    latent_layer: int | None = option(
        None, "index into sizes of the recorded layer (none: the narrowest hidden layer)"
    )
    cbp_rate: float = added_later(
        0.0,
        "continual backprop: mature units replaced per step, as a fraction of each hidden "
        "layer (Dohare et al. 2024; e.g. 1e-4); 0: off",
        legacy=0.0,
        check=(lambda v: 0 <= v < 1, "must be in [0, 1): a fraction of each hidden layer per step"),
    )
    cbp_maturity: int = added_later(
        100,
        "continual backprop: steps a unit lives before it may be replaced",
        legacy=100,
        check=NOT_NEGATIVE,
    )
    cbp_utility: str = added_later(
        "contribution",
        "continual backprop: contribution (mean |h| x outgoing |w|, the paper's Eq. 1) or "
        "adaptable_contribution (|h - mean h| x mean outgoing |w| / mean incoming |w|, what "
        "the authors' Permuted-MNIST and ImageNet experiments used)",
        choices=("contribution", "adaptable_contribution"),
        legacy="contribution",
    )
    cbp_adam_steps: bool = added_later(
        False,
        "continual backprop with adam/adamw: count Adam's steps per weight and reset a "
        "replaced unit's count with its moments, so its first updates are bias-corrected as "
        "a fresh start (the authors' AdamGnT); false: one count per tensor (torch's Adam)",
        legacy=False,  # runs from before it existed used torch's Adam
    )
    cbp_decay: float = added_later(
        0.99,
        "continual backprop: decay of each unit's running contribution utility",
        legacy=0.99,
        check=(lambda v: 0 <= v < 1, "must be in [0, 1)"),
    )
    permute_every: int = added_later(
        0,
        "a continual task: every K epochs the pixels are shuffled by a new seeded permutation "
        "(Permuted MNIST; task 0 is the images as they are); 0: off",
        legacy=0,
        check=(lambda v: v >= 0, "must be 0 (off) or a number of epochs per task"),
    )
    optimizer: str = "sgd"
    lr: float = 3.0
    batch_size: int = 10
    epochs: int = 30
    snapshot_every: int = 500

    @property
    def recorded_layer(self) -> int:
        """Index into sizes of the recorded layer (the narrowest hidden layer by default)."""
        if self.latent_layer is not None:
            return self.latent_layer
        hidden = range(1, len(self.sizes) - 1)
        if not hidden:
            return len(self.sizes) - 1  # no hidden layer: record the outputs
        return min(hidden, key=lambda i: (self.sizes[i], i))

    def parameter_count(self) -> int:
        """How many parameters the model of this config has (without building it)."""
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def hidden_layers(self) -> int:
        """The layers between the inputs and the outputs."""
        return len(self.sizes) - 2

    def latent_width(self) -> int:
        """The widest layer (any layer can be recorded or embedded)."""
        return max(self.sizes)


class ClassifierFamily(Family):
    """The MLP classifier: accuracy, one layer's activations recorded, masks."""

    name = "classifier"
    noun = "a classifier"
    config_class = ClassifierConfig
    default_preset = "classifier"
    arrays = ("act",)
    symbol = "h"
    pictures = frozenset({"masks"})
    headline_key, headline_label = "test_acc", "test acc"
    quality_title, quality_keys = "accuracy", ("train_acc", "val_acc", "test_acc")
    sweep_columns = (
        Column("train_loss", "train loss", "{:.4f}"),
        Column("test_loss", "test loss", "{:.4f}"),
        Column("test_acc", "test acc", "{:.2%}"),
        Column("overlap_max", "top overlap", "{:.3f}", True),
        Column("ncm_accuracy", "NCM acc", "{:.1%}", True),
    )

    def check(self, cfg: ClassifierConfig, bad, choice) -> None:
        """What one field's range cannot say: the layer sizes' ends, the recorded layer
        within them, continual backprop only with hidden units."""
        if len(cfg.sizes) < 2 or cfg.sizes[0] != INPUT_DIM or cfg.sizes[-1] != NUM_CLASSES:
            bad("sizes", f"must start at {INPUT_DIM} and end at {NUM_CLASSES}, e.g. [784,30,10]")
        if cfg.latent_layer is not None and not 1 <= cfg.latent_layer < len(cfg.sizes):
            bad("latent_layer", f"must index a layer of sizes: 1 to {len(cfg.sizes) - 1}")
        if cfg.cbp_rate and cfg.hidden_layers() == 0:
            bad("cbp_rate", "continual backprop replaces hidden units; this network has none")
        if cfg.cbp_adam_steps and cfg.optimizer == "sgd":
            bad("cbp_adam_steps", "counts Adam's steps: use it with --optimizer=adam or adamw")

    def size_key(self, cfg: ClassifierConfig) -> str:
        """The layer sizes."""
        return "sizes"

    def label(self, cfg: ClassifierConfig) -> str:
        """Layer sizes, recorded layer and dataset."""
        sizes = "-".join(map(str, cfg.sizes))
        return f"classifier {sizes} · layer {cfg.recorded_layer} · {cfg.dataset}"

    def format_headline(self, value: float | None) -> str:
        """Accuracy in percent."""
        return "-" if value is None else f"{100 * value:.2f}%"

    def epoch_headline(self, line: dict) -> str:
        """Test accuracy and loss."""
        if not line:
            return ""
        return f"test accuracy {100 * line['test_acc']:.2f}% (loss {line['test_loss']:.4f})"

    def build(self, cfg: ClassifierConfig):
        """The MLP of cfg.sizes."""
        from nnlab.families.networks import Classifier

        return Classifier(cfg.sizes, cfg.activation, cfg.loss, cfg.dropout)

    def loss_terms(self, model, cfg: ClassifierConfig, x, y, generator=None) -> dict:
        """The loss (quadratic or cross-entropy) and the accuracy."""
        from nnlab.families.networks import classifier_loss

        scores = model(x)
        return {
            "loss": classifier_loss(scores, y, cfg.loss),
            "acc": (scores.argmax(1) == y).float().mean(),
        }

    def encode(self, model, cfg: ClassifierConfig, x, layer: int | None = None):
        """One layer's activations (the output layer: class scores in [0, 1])."""
        layer = cfg.recorded_layer if layer is None else layer
        if layer == len(cfg.sizes) - 1:
            return model.probabilities(x), None
        return model(x, upto=layer), None

    def embed_layer(self, cfg: ClassifierConfig, layer) -> int | None:
        """An index into sizes, or None for the recorded layer."""
        if layer is None:
            return None
        try:
            layer = int(str(layer))
        except ValueError:
            raise NnlabError(f"--layer={layer}: expected a layer index into sizes") from None
        if not 1 <= layer < len(cfg.sizes):
            raise NnlabError(
                f"--layer={layer}: choose 1 to {len(cfg.sizes) - 1} (sizes {cfg.sizes})"
            )
        return layer

    def embed_extras(self, cfg: ClassifierConfig, encoded, layer, where: str) -> tuple[dict, None]:
        """The layer encoded."""
        import numpy as np

        return {"layer": np.array(layer or cfg.recorded_layer)}, None


CLASSIFIER = ClassifierFamily()
