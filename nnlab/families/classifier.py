"""The classifier family: an MLP from the pixels to the classes, or convolutions first
(arch=conv). A snapshot records one layer's activations; the first layer's weights (an
MLP's) or filters (a CNN's) are drawn as masks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nnlab.families.family import (
    ACTIVATIONS,
    NOT_NEGATIVE,
    Column,
    Config,
    Family,
)
from nnlab.families.geometry import (
    CNN_KERNEL,
    cnn_maps,
    cnn_min_side,
    conv_params,
    dense_params,
    flat,
)
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import added_later, option

LOSSES = ("mse", "ce")


@dataclass
class ClassifierConfig(Config):
    """A classifier; sizes lists every fully connected layer's width, inputs to classes."""

    model: str = "classifier"
    sizes: list[int] = option(
        [784, 30, 10],
        "every layer's width, from the pixels (784 for 28x28 grey) to the classes; the ends "
        "follow the dataset (784 and 10 are replaced by its own); arch=conv: the inner widths "
        "are the fully connected layers after the pool",
        check=(lambda v: not v or min(v) >= 1, "every layer needs at least 1 unit"),
    )
    activation: str = option("sigmoid", "hidden-layer activation", choices=ACTIVATIONS)
    loss: str = option(
        "mse",
        "mse: quadratic cost on one-hot targets (sigmoid outputs); ce: softmax cross-entropy",
        choices=LOSSES,
    )
    input_norm: list[float] = added_later(
        [],
        "standardise the pixels before the network, (x - mean) / std: [mean, std] for every "
        "channel, or the channels' means then their stds; empty: pixels in [0, 1] as they are",
        legacy=[],
        check=(
            lambda v: len(v) % 2 == 0 and all(s > 0 for s in v[len(v) // 2 :]),
            "give [mean, std] or per-channel means then stds, each std above 0",
        ),
    )
    standardise: bool = added_later(
        False,
        "standardise the pixels by the training split's own per-channel mean and std, "
        "computed when the run starts and saved as input_norm (an input_norm given is kept)",
        legacy=False,
    )
    latent_layer: int | None = option(
        None, "arch=mlp: index into sizes of the recorded layer (none: the narrowest hidden layer)"
    )
    record_layer: str = added_later(
        "",
        "arch=conv: the recorded layer by name (conv1.., pool, fc1..; feature maps flattened); "
        "empty: the last hidden layer",
        legacy="",
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

    def layer_names(self) -> list[str]:
        """arch=conv: every layer's name, inputs to outputs (conv1.., pool, fc1..)."""
        convs = [f"conv{i + 1}" for i in range(len(self.channels))]
        return convs + ["pool"] + [f"fc{i + 1}" for i in range(len(self.sizes) - 1)]

    def all_layer_widths(self) -> dict[str, int]:
        """Each layer --record_layers may name and its width as kept, inputs to outputs:
        an MLP's hidden layers h1.. and its outputs (out); a CNN's named layers (its last
        fc: the outputs), a convolution's map as kept_width says."""
        if self.arch != "conv":
            hidden = {f"h{i}": w for i, w in enumerate(self.sizes[1:-1], start=1)}
            return {**hidden, "out": self.sizes[-1]}
        widths = self.layer_widths()
        for name, m in zip(widths, cnn_maps(self.image_shape, self.channels), strict=False):
            widths[name] = self.kept_width(m)  # conv1.., pool: the maps before the fcs
        return widths

    def layer_widths(self) -> dict[str, int]:
        """arch=conv: the units of each named layer (feature maps flattened)."""
        maps = cnn_maps(self.image_shape, self.channels)
        widths = [flat(m) for m in maps] + list(self.sizes[1:])
        return dict(zip(self.layer_names(), widths, strict=True))

    @property
    def recorded_layer(self) -> int | str:
        """The recorded layer: an index into sizes (arch=mlp; the narrowest hidden layer by
        default) or a name (arch=conv; the last hidden layer by default)."""
        if self.arch == "conv":
            names = self.layer_names()
            return self.record_layer or names[-2]
        if self.latent_layer is not None:
            return self.latent_layer
        hidden = range(1, len(self.sizes) - 1)
        if not hidden:
            return len(self.sizes) - 1  # no hidden layer: record the outputs
        return min(hidden, key=lambda i: (self.sizes[i], i))

    def parameter_count(self) -> int:
        """How many parameters the model of this config has (without building it)."""
        if self.arch == "conv":
            pooled = flat(cnn_maps(self.image_shape, self.channels)[-1])
            convs = conv_params(self.image_shape[0], self.channels, CNN_KERNEL)
            return convs + dense_params([pooled, *self.sizes[1:]])
        return dense_params(self.sizes)

    def hidden_layers(self) -> int:
        """The layers dropout applies to: between the inputs and the outputs (arch=conv:
        the pool and the hidden fully connected layers)."""
        return len(self.sizes) - 2 + (self.arch == "conv")

    def latent_width(self) -> int:
        """The widest layer (any layer can be recorded or embedded)."""
        if self.arch == "conv":
            return max(self.layer_widths().values())
        return max(self.sizes)


class ClassifierFamily(Family):
    """The MLP classifier: accuracy, one layer's activations recorded, masks."""

    def tasks_every(self, cfg: ClassifierConfig) -> int:
        """permute_every: epochs per Permuted-MNIST task (0: one task, the images as they are)."""
        return cfg.permute_every

    def replaces_units(self, cfg: ClassifierConfig) -> bool:
        """Continual backprop, when cbp_rate is above 0."""
        return cfg.cbp_rate > 0

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

    def objective_terms(self, cfg: ClassifierConfig) -> dict[str, str]:
        """The loss (lower is better) and the accuracy."""
        return {"loss": "min", "acc": "max"}

    def check(self, cfg: ClassifierConfig, bad, choice) -> None:
        """What one field's range cannot say: the layer sizes' ends, the recorded layer
        within them, continual backprop only with hidden units."""
        pixels, classes = cfg.input_dim(), cfg.num_classes
        if len(cfg.sizes) < 2 or cfg.sizes[0] != pixels or cfg.sizes[-1] != classes:
            c, h, w = cfg.image_shape
            bad(
                "sizes",
                f"must start at {pixels} (the {c}x{h}x{w} images' pixels) and end at {classes} "
                f"(the classes), e.g. [{pixels},30,{classes}]",
            )
        if cfg.input_norm and len(cfg.input_norm) not in (2, 2 * cfg.image_shape[0]):
            bad("input_norm", f"give [mean, std] or {cfg.image_shape[0]} means then as many stds")
        if cfg.arch == "conv":
            side = cnn_min_side(cfg.channels)
            if min(cfg.image_shape[1:]) < side:
                _, h, w = cfg.image_shape
                bad(
                    "arch",
                    f"{len(cfg.channels)} 3x3 convolutions and a 2x2 pool need images of at "
                    f"least {side}x{side}; these are {h}x{w} (fewer --channels, or --arch=mlp)",
                )
            names = cfg.layer_names()
            if cfg.record_layer and cfg.record_layer not in names:
                raise NnlabError(
                    f"--record_layer: no layer '{cfg.record_layer}' in this network (its layers: "
                    f"{', '.join(names)})"
                )
            if cfg.latent_layer is not None:
                bad("latent_layer", "indexes an MLP's sizes; with --arch=conv use --record_layer")
            if cfg.cbp_rate:
                bad("cbp_rate", "continual backprop is implemented for MLPs (--arch=mlp)")
        elif cfg.record_layer:
            bad("record_layer", "names a layer of a CNN (--arch=conv); an MLP's is --latent_layer")
        if cfg.latent_layer is not None and not 1 <= cfg.latent_layer < len(cfg.sizes):
            bad("latent_layer", f"must index a layer of sizes: 1 to {len(cfg.sizes) - 1}")
        if cfg.cbp_rate and cfg.hidden_layers() == 0:
            bad("cbp_rate", "continual backprop replaces hidden units; this network has none")
        if cfg.cbp_adam_steps and cfg.optimizer == "sgd":
            bad("cbp_adam_steps", "counts Adam's steps: use it with --optimizer=adam or adamw")

    def fit(self, values: dict, before: dict) -> None:
        """The first and last widths of sizes follow the dataset when they are MNIST's (784,
        10: the defaults) or the previous dataset's."""
        sizes = list(values.get("sizes", ClassifierConfig().sizes))
        if len(sizes) >= 2:
            pixels = math.prod(values["image_shape"])
            if sizes[0] in (784, math.prod(before["image_shape"])):
                sizes[0] = pixels
            if sizes[-1] in (10, before["num_classes"]):
                sizes[-1] = values["num_classes"]
            values["sizes"] = sizes

    def fit_splits(self, cfg: ClassifierConfig, splits) -> ClassifierConfig:
        """With standardise and no input_norm: input_norm from the training split's own
        per-channel statistics, so the saved config rebuilds the same network."""
        if not cfg.standardise or cfg.input_norm:
            return cfg
        means, stds = splits.channel_statistics()
        return dataclasses.replace(cfg, input_norm=[*means, *stds])

    def latent_tap(self, cfg: ClassifierConfig):
        """The recorded layer's tap as encode gives it: a feature map flattened, the
        output layer as class scores in [0, 1] (softmax of the logits for ce)."""
        import torch

        layer = cfg.recorded_layer
        last = cfg.layer_names()[-1] if cfg.arch == "conv" else len(cfg.sizes) - 1
        name = layer if cfg.arch == "conv" else ("out" if layer == last else f"h{layer}")

        def tap(taps):
            x = taps[name]
            if layer == last and cfg.loss == "ce":
                return torch.softmax(x, dim=1)
            return x.flatten(1)

        return tap

    def collapse_layer(self, cfg: ClassifierConfig) -> str | None:
        """The last hidden layer (none without hidden layers)."""
        names = cfg.recordable_layers()
        return names[-2] if len(names) > 1 else None

    def size_key(self, cfg: ClassifierConfig) -> str:
        """The layer sizes."""
        return "sizes"

    def label(self, cfg: ClassifierConfig) -> str:
        """Layer sizes (a CNN's channels), recorded layer and dataset."""
        sizes = "-".join(map(str, cfg.sizes))
        if cfg.arch == "conv":
            convs = "-".join(map(str, cfg.channels))
            return f"CNN conv {convs} · fc {sizes} · {cfg.recorded_layer} · {cfg.dataset}"
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
        """The MLP of cfg.sizes, or the CNN of cfg.channels then cfg.sizes."""
        from nnlab.families.networks import Classifier, ConvClassifier

        if cfg.arch == "conv":
            return ConvClassifier(
                cfg.image_shape,
                cfg.channels,
                cfg.sizes,
                cfg.activation,
                cfg.loss,
                cfg.dropout,
                cfg.input_norm,
            )
        return Classifier(
            cfg.sizes, cfg.activation, cfg.loss, cfg.dropout, cfg.input_norm, cfg.image_shape[0]
        )

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
        if cfg.arch == "conv":
            if layer == cfg.layer_names()[-1]:
                return model.probabilities(x), None
            return model(x, upto=layer), None
        if layer == len(cfg.sizes) - 1:
            return model.probabilities(x), None
        return model(x, upto=layer), None

    def embed_layer(self, cfg: ClassifierConfig, layer) -> int | None:
        """An index into sizes, or None for the recorded layer."""
        if layer is None:
            return None
        if cfg.arch == "conv":
            names = cfg.layer_names()
            if str(layer) not in names:
                raise NnlabError(f"--layer={layer}: no such layer (layers: {', '.join(names)})")
            return str(layer)
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

        return {"layer": np.array(cfg.recorded_layer if layer is None else layer)}, None


CLASSIFIER = ClassifierFamily()
