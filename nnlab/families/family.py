"""What every model family has: the config fields all families share, and the behaviour
each family defines (`Family`): a small core it must define (`Core`: names, config class,
recorded arrays, headline, build, loss, encode) and the parts with defaults it overrides
where it differs (`Display`, `Search`). A family is one module beside this one (its config
class, its Family object), one line in the registry (nnlab/families/__init__.py) and, for
one `nnlab train` builds, a preset YAML in configs/.

Everything outside the family modules asks the family (`families.of(cfg)`) instead of
testing a model's name: what a snapshot records, which pictures apply, its headline
metric, its loss terms. The torch parts (building, losses, encoding) are methods that
import torch when called, so the light commands read families without loading it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnlab.data import catalog
from nnlab.helpers.errors import NnlabError, did_you_mean
from nnlab.helpers.options import added_later, option

if TYPE_CHECKING:  # annotations only: importing torch here would load it everywhere
    import torch

ACTIVATIONS = ("sigmoid", "relu", "tanh", "silu", "softplus", "identity", "gelu", "leaky_relu")
INITS = ("default", "normal", "scaled", "kaiming")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SPLITS = ("test", "val", "train")
ARCHS = ("mlp", "conv")
MNIST_SHAPE = [1, 28, 28]  # the images of every run from before other datasets existed
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{0,64}\Z")  # \Z: "$" would let a newline end it
DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
# Range checks of fields (config.validate applies them): (test, what a value must be).
AT_LEAST_1 = (lambda v: v >= 1, "must be at least 1")
NOT_NEGATIVE = (lambda v: v >= 0, "must not be negative")
PENALTY = (lambda v: 0 <= v <= 1e3, "must be at least 0 (off) and at most 1e3")


def _count(value) -> int:
    """A non-negative whole number read from meta.json, or 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _shown(value) -> str:
    """A setting's value as typed: 0.001 as 0.001, [784, 30, 10] as 784-30-10."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "-".join(_shown(v) for v in value) or "[]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cap(text: str, most: int = 80) -> str:
    """Text of at most `most` characters (an ellipsis where it was cut)."""
    return text if len(text) <= most else text[: most - 1] + "…"


CEILING_SLACK = 16 * 2**20  # headers, RNG states, small arrays: generous on top of the sums


@dataclass
class Config:
    """Fields shared by every model family: data, optimisation, recording, checkpoints.

    A subclass redeclares a field only to change its default (its meaning stays here).
    """

    model: str = option("", "the model family, chosen by the first argument")
    name: str = option(
        "",
        "a tag appended to the run id (letters, digits, . - _)",
        check=(NAME_RE.match, "use up to 64 letters, digits, '.', '-' or '_'"),
    )
    dataset: str = option(
        "mnist",
        "the images to train on: " + ", ".join(catalog.NAMES) + ", folder:PATH (one "
        "sub-folder of PNG/JPEG images per class) or npz:PATH (arrays x, y, optional classes, "
        "x_test, y_test)",
        check=(catalog.is_valid_name, catalog.name_problem),
    )
    data_dir: str = option("", 'where IDX files live; "" means $NNLAB_DATA or ~/.cache/nnlab/data')
    image_size: int = added_later(
        0,
        "folder datasets: resize every image to this square size; 0: keep their size (all "
        "images must then share one)",
        legacy=0,
        check=NOT_NEGATIVE,
    )
    image_shape: list[int] = added_later(
        MNIST_SHAPE,
        "the images' channels, height and width: read from the dataset when a run starts",
        legacy=MNIST_SHAPE,
        derived=True,
        check=(lambda v: len(v) == 3 and min(v) >= 1, "must be [channels, height, width]"),
    )
    num_classes: int = added_later(
        10,
        "how many classes the dataset has: read from the dataset when a run starts",
        legacy=10,
        derived=True,
    )
    val_fraction: float = option(
        0.1,
        "share of the train split held out for validation",
        check=(lambda v: 0.0 <= v < 0.5, "must be at least 0 and below 0.5"),
    )
    seed: int = option(
        0,
        "seeds the weights, the batch order and the VAE's sampling",
        check=(lambda v: 0 <= v < 2**32, "use a whole number from 0 to 4294967295"),
    )
    device: str = option(
        "auto",
        "auto (CUDA when present), cpu, cuda or cuda:N",
        check=(DEVICE_RE.match, "use auto, cpu, cuda or cuda:N"),
    )
    deterministic: bool = option(True, "deterministic kernels, so a resume is bit-exact on CPU")
    epochs: int = option(1, "passes over the train split", check=AT_LEAST_1)
    batch_size: int = option(32, "images per optimisation step", check=AT_LEAST_1)
    optimizer: str = option("adamw", "the optimiser", choices=OPTIMIZERS)
    lr: float = option(  # beyond float32's range the optimiser step overflows
        1e-3, "learning rate", check=(lambda v: 0 < v <= 1e6, "must be positive and at most 1e6")
    )
    weight_decay: float = option(
        0.0, "the optimiser's weight decay (decoupled for adamw)", check=NOT_NEGATIVE
    )
    lr_decay: float = added_later(
        1.0,
        "multiply the learning rate by this after every epoch (StepLR with step 1); 1: constant",
        legacy=1.0,
        check=(lambda v: 0 < v <= 1, "must be above 0 and at most 1"),
    )
    lr_milestones: list[int] = added_later(
        [],
        "epochs after which the learning rate is divided by 10 (MultiStepLR, gamma 0.1; "
        "Papyan et al. decay at a third and two thirds of training), as well as lr_decay",
        legacy=[],
        check=(
            lambda v: all(m >= 1 for m in v) and list(v) == sorted(set(v)),
            "give increasing epochs, each at least 1, e.g. [100,200]",
        ),
    )
    precision: str = added_later(
        "float32",
        "training arithmetic: bfloat16 runs the forward pass under autocast (weights, "
        "gradients and optimiser stay float32): the cnn preset trained 1.3x faster on a CPU "
        "with AMX/AVX-512 bf16; slower on CPUs without them",
        choices=("float32", "bfloat16"),
        legacy="float32",
    )
    momentum: float = option(
        0.0, "momentum (sgd only)", check=(lambda v: 0 <= v < 1, "must be in [0, 1)")
    )
    log_every: int = option(
        50, "steps between training-loss lines in metrics.jsonl", check=AT_LEAST_1
    )
    snapshot_every: int = option(
        4,
        "steps between latent snapshots; 0 turns recording off",
        check=(lambda v: v >= 0, "must be 0 (off) or a number of steps"),
    )
    probe_split: str = option("test", "the split whose images are recorded", choices=SPLITS)
    probe_size: int = option(
        10000, "most probe images recorded (class-stratified when capped)", check=AT_LEAST_1
    )
    record_dtype: str = option(
        "float16", "storage of recorded latents", choices=("float16", "float32")
    )
    record_precision: str = added_later(
        "float32",
        "snapshot arithmetic: bfloat16 is ~3x faster on CPUs with AMX/AVX-512 bf16 (and much "
        "slower without them), relative error ~0.5%",
        choices=("float32", "bfloat16"),
        legacy="float32",  # runs from before it existed recorded in float32
    )
    record_layers: str = added_later(
        "",
        "record several layers at each snapshot, in one pass (nnlab layers draws them): all, "
        "or names (a classifier's h1,h2,..,out, or a CNN's conv1,..,pool,fc1,..; a VAE's "
        "encoder enc1,.. (conv1,.. first for arch=conv) and mu); empty: none",
        legacy="",
    )
    layer_reduction: str = added_later(
        "mean",
        "record_layers: a convolution's feature maps as the mean over positions of each "
        "channel (mean: what a global pool sees, C numbers an image) or every value (raw)",
        legacy="mean",
        choices=("mean", "raw"),
    )
    checkpoint_every: int = option(
        0, "keep a checkpoint every N epochs (0: latest and final)", check=NOT_NEGATIVE
    )
    checkpoint_every_steps: int = option(
        500, "refresh the latest checkpoint every N steps", check=NOT_NEGATIVE
    )
    tensorboard: bool = added_later(
        False,
        "also write TensorBoard event files into <run>/tensorboard/ while training "
        "(pip install tensorboard)",
        legacy=False,
    )
    l1: float = added_later(
        0.0,
        "L1 penalty l1 * sum|w| on every layer's weights (not biases), added to the loss",
        legacy=0.0,
        check=PENALTY,
    )
    l2: float = added_later(
        0.0,
        "L2 penalty (l2 / 2) * sum w^2 on every layer's weights (not biases), added to the loss "
        "(unlike weight_decay, which the optimiser applies)",
        legacy=0.0,
        check=PENALTY,
    )
    dropout: list[float] = added_later(
        [],
        "dropout probability on the hidden layers' outputs in training: one value for every "
        "hidden layer or one per layer (VAE: per encoder layer, mirrored in the decoder); "
        "empty: off",
        legacy=[],
        check=(
            lambda v: all(0 <= p < 1 for p in v),
            "each probability must be at least 0 and below 1",
        ),
    )
    arch: str = added_later(
        "mlp",
        "mlp: fully connected layers; conv: convolutions first (classifier: 3x3, stride 1, "
        "then a 2x2 max-pool; VAE: 4x4, stride 2, mirrored by transposed convolutions)",
        choices=ARCHS,
        legacy="mlp",
    )
    channels: list[int] = added_later(
        [32, 64],
        "arch=conv: the output channels of each convolution",
        legacy=[32, 64],
        check=(
            lambda v: v and min(v) >= 1,
            "give at least one convolution, each 1 channel or more",
        ),
    )
    init: str = added_later(
        "default",
        "weights and biases: default (PyTorch's uniform), normal (N(0, 1), as network.py), "
        "scaled (weights N(0, 1/fan_in), biases N(0, 1)), kaiming (weights uniform within "
        "+-gain*sqrt(3/fan_in), the gain of the activation for hidden layers and 1 for the "
        "output, biases 0: the continual-backprop authors' init); fully connected layers "
        "only, convolutions keep PyTorch's",
        choices=INITS,
        legacy="default",  # runs from before it existed used PyTorch's
    )

    def input_dim(self) -> int:
        """The pixels of one image: channels x height x width."""
        c, h, w = self.image_shape
        return c * h * w

    def parameter_count(self) -> int:
        """How many parameters the model of this config has (without building it)."""
        raise NotImplementedError

    def hidden_layers(self) -> int:
        """How many hidden layers the network has (dropout gives one value per layer)."""
        raise NotImplementedError

    def latent_width(self) -> int:
        """The widest layer a snapshot can record (its files' size ceilings follow)."""
        raise NotImplementedError

    def recordable_layers(self) -> list[str]:
        """The layers --record_layers may name, inputs to outputs."""
        return list(self.all_layer_widths())

    def all_layer_widths(self) -> dict[str, int]:
        """Each recordable layer's width as --record_layers keeps it, in network order."""
        return {}

    def recorded_layers(self) -> list[str]:
        """The layers --record_layers asks for, in network order ([] when none)."""
        text = self.record_layers.strip()
        if not text:
            return []
        names = self.recordable_layers()
        if text == "all":
            return names
        return [n for n in names if n in layer_list(text)]

    def kept_width(self, feature_map) -> int:
        """A feature map's (C, H, W) width as --record_layers keeps it: C (each channel's
        mean over positions, layer_reduction=mean) or every value (raw)."""
        c, h, w = feature_map
        return c if self.layer_reduction == "mean" else c * h * w

    def recorded_layer_widths(self) -> dict[str, int]:
        """Each recorded layer's width as recorded."""
        widths = self.all_layer_widths()
        return {name: widths[name] for name in self.recorded_layers()}


def layer_list(text: str) -> list[str]:
    """--record_layers as typed (h1,h2 or [h1,h2]) into its names."""
    return [n.strip() for n in text.strip().strip("[]").split(",") if n.strip()]


def check_record_layers(cfg: Config, bad) -> None:
    """Every name --record_layers gives is a layer of the network (listed, with the nearest
    one, when not), there are two or more of them, and snapshots to record them at."""
    text = cfg.record_layers.strip()
    if not text:
        return
    names = cfg.recordable_layers()
    if text != "all":
        for n in layer_list(text):
            if n not in names:
                raise NnlabError(
                    f"--record_layers: no layer '{n}' in this network"
                    f"{did_you_mean(n, [*names, 'all'])}"
                )
    if len(cfg.recorded_layers()) < 2:
        bad("record_layers", "records several layers: name two or more (or all)")
    if cfg.snapshot_every == 0:
        bad("record_layers", "layers are recorded at the snapshots: give --snapshot_every too")


@dataclass(frozen=True)
class Column:
    """One metric column of a sweep's table."""

    key: str
    label: str
    fmt: str
    latent: bool = False  # from the recording's last snapshot, not the last epoch line


class Core:
    """What a family must define: its names and config class, the arrays a snapshot
    records, its headline metric, and how to build, train and encode its network. The other
    members here have defaults that fit any family; a family overrides those that differ.
    """

    name: str  # the first argument of `nnlab train`, and `model` in config.yaml
    noun: str  # the family in a sentence: "a classifier"
    config_class: type[Config]
    default_preset: str  # the preset a run starts from when none is given
    # The arrays one snapshot records, each (probe images, width): the points first, then
    # their spread (a posterior's sd) when the family has one; the chunk files use these names.
    arrays: tuple[str, ...]
    headline_key: str  # the final metric a run is known by, and its label
    headline_label: str
    rebuildable: bool = True  # nnlab can rebuild the network from the run's config

    # Torch: imported when called.

    def build(self, cfg: Config) -> torch.nn.Module:
        """A freshly constructed network for cfg (initialised by training.models)."""
        raise NotImplementedError

    def loss_terms(self, model, cfg: Config, x, y, generator=None) -> dict[str, Any]:
        """The batch-mean loss (first key "loss") and the terms logged beside it."""
        raise NotImplementedError

    def encode(self, model, cfg: Config, x, layer: int | None = None):
        """The recorded arrays of a batch of images, in `arrays` order (no grad, eval)."""
        raise NotImplementedError

    def evaluation(self, cfg: Config, means: dict[str, float]) -> dict[str, float]:
        """The numbers an evaluation logs, from the per-image means of the loss terms."""
        return means

    def headline(self, final: dict) -> tuple[str, float | None]:
        """A run's headline metric name and value."""
        return self.headline_label, final.get(self.headline_key)

    @property
    def spread(self) -> bool:
        """Whether a snapshot records each point's spread (then densities apply)."""
        return len(self.arrays) > 1

    # Light behaviour: no torch.

    def check(self, cfg: Config, bad, choice) -> None:
        """Refuse values of the family's own fields (bad(key, why), choice(key))."""

    def fit(self, values: dict, before: dict) -> None:
        """Adjust field values that follow the dataset (values holds its image_shape and
        num_classes; before, those the values came with)."""

    def fit_splits(self, cfg: Config, splits) -> Config:
        """The config with the fields that follow the loaded training images filled in
        (called once, before the run's config is saved; splits: training.data.Splits)."""
        return cfg

    def size_key(self, cfg: Config) -> str:
        """The field to name when the model is too big for this machine."""
        return "hidden_dims" if hasattr(cfg, "hidden_dims") else "model"

    def class_names(self, cfg: Config) -> list[str]:
        """Display names of the classes of the run's images (its probe may say otherwise:
        store.record.class_names asks it first)."""
        return catalog.class_names(cfg.dataset) or [str(i) for i in range(cfg.num_classes)]

    def latent_tap(self, cfg):
        """A function from a forward pass's taps (the network's outputs by layer name) to
        the latent recording's points, so that a run recording several layers records its
        latent from the same pass; None when the family cannot (then two passes)."""
        return None

    def tap_pass(self, model, x):
        """Pass a batch through the layers --record_layers taps (the whole network; a
        family whose forward draws random numbers passes it through the part it needs)."""
        return model(x)

    def collapse_layer(self, cfg) -> str | None:
        """The layer whose neural collapse is measured (a classifier's last hidden layer,
        beside the output layer's weights), None where the family has none."""
        return None

    def recorded_layers(self, cfg) -> list[str]:
        """The layers recorded together at each snapshot (--record_layers), [] for none."""
        return cfg.recorded_layers() if isinstance(cfg, Config) else []

    def tasks_every(self, cfg) -> int:
        """Epochs per permuted task (Permuted-MNIST), 0 for a family without tasks."""
        return 0

    def replaces_units(self, cfg) -> bool:
        """Whether training replaces hidden units as it goes (continual backprop)."""
        return False

    def unrecorded(self, cfg: Config) -> str:
        """Why a run of this family may have no latent recording, for the error saying so."""
        return "trained with snapshot_every=0" if cfg.snapshot_every == 0 else "none written yet"

    def ceilings(self, cfg: Config, meta) -> tuple[int, int]:
        """(checkpoint bytes, chunk-array bytes): the most a run's files can rightly hold,
        from its config and meta.json. Readers refuse a file claiming more before reading.

        A checkpoint holds the weights and at most three tensors as large again (gradients
        are not saved; Adam's two moments are) and the epoch's permutation; a chunk array
        holds at most every snapshot of the run, of every probe image, in the widest
        recorded layer. `meta` is the run's nnlab.store.meta.Meta.
        """
        train = _count(meta.train_size)
        checkpoint = 4 * 4 * cfg.parameter_count() + 8 * train + CEILING_SLACK
        return checkpoint, 4 * self._recorded_rows(cfg, meta) * cfg.latent_width() + CEILING_SLACK

    def layers_ceiling(self, cfg: Config, meta) -> int:
        """The most bytes one array of a run's recording of several layers can rightly
        hold: every snapshot of every probe image in the widest recorded layer (or the
        output layer's weights, as wide as the layer below it), in float32."""
        widths = cfg.recorded_layer_widths() if self.recorded_layers(cfg) else {}
        widest = max([*widths.values(), cfg.num_classes, 1])
        return 4 * self._recorded_rows(cfg, meta) * widest + CEILING_SLACK

    @staticmethod
    def _recorded_rows(cfg: Config, meta) -> int:
        # snapshots (every snapshot_every steps of every epoch, step 0 and the end) x probe
        epochs = max(cfg.epochs, _count(meta.epochs_done))
        steps = _count(meta.steps_per_epoch) * epochs
        snapshots = (steps // cfg.snapshot_every if cfg.snapshot_every else 0) + 2
        probe = _count(meta.probe.get("size")) or cfg.probe_size
        return snapshots * probe

    def metrics_ceiling(self, cfg: Config, meta) -> int:
        """The most bytes a run's metrics.jsonl can rightly hold: a line of at most 4 KiB
        per log window and per epoch, and room for a few more."""
        epochs = max(cfg.epochs, _count(meta.epochs_done))
        steps = _count(meta.steps_per_epoch) * epochs
        return 4096 * (steps // max(cfg.log_every, 1) + epochs + 64)


class Display:
    """How a family's runs are shown (optional: every member has a default that fits any
    family; the classifier and the VAE override what they draw differently)."""

    symbol: str = "u"  # the letter of a latent unit in axis labels: z1 or h1
    pictures: frozenset[str] = frozenset()  # family-only pictures: "masks", "decode"
    # The epoch numbers that say how good a model is, plotted beside the loss by the report
    quality_title: str = ""
    quality_keys: tuple[str, ...] = ()

    @property
    def sweep_columns(self) -> tuple[Column, ...]:
        """The metric columns of a sweep's table: the headline alone, unless overridden."""
        return (Column(self.headline_key, self.headline_label, "{:.4g}"),)

    def label(self, cfg: Config) -> str:
        """A short description of a run's model, for titles."""
        return f"{self.name} · {cfg.dataset}"

    def format_headline(self, value: float | None) -> str:
        """The headline value as the runs table shows it."""
        return "-" if value is None else f"{value:.4g}"

    def epoch_headline(self, line: dict) -> str:
        """An epoch line in words, as training prints it."""
        value = line.get(self.headline_key)
        return "" if value is None else f"{self.headline_label} {self.format_headline(value)}"

    def differences(self, cfg) -> str:
        """The settings in which a run differs from its model's defaults, in a line for the
        runs table ("beta=10 epochs=10"): what tells two runs of a model apart."""
        import dataclasses

        base = self.config_class()
        skip = {"model", "name", "dataset", "data_dir", "device", "image_shape", "num_classes"}
        parts = [
            f"{f.name}={_shown(getattr(cfg, f.name))}"
            for f in dataclasses.fields(cfg)
            if f.name not in skip and getattr(cfg, f.name) != getattr(base, f.name)
        ]
        return _cap(" ".join(parts))

    def embed_layer(self, cfg: Config, layer) -> int | None:
        """`nnlab embed --layer`: the layer to encode (None: the recorded one), or refuse."""
        from nnlab.helpers.errors import NnlabError

        if layer is not None:
            raise NnlabError(f"--layer: {self.noun} records one layer only")
        return None

    def embed_extras(
        self, cfg: Config, encoded, layer: int | None, where: str
    ) -> tuple[dict, str | None]:
        """Arrays an embedding adds beside the recorded ones, and a line for stderr about
        the images encoded (`where`: e.g. "test (10,000 images)")."""
        return {}, None


class Search:
    """What a search may optimise for a family's runs (optional: without objective terms,
    the latent metrics alone)."""

    # What a search may optimise (--metric), each with its better direction: the epoch
    # line's terms (train_ for the loss terms, val_/test_ for the evaluation's numbers) and
    # the latent metrics of the last snapshot.
    latent_objectives: dict[str, str] = {
        "overlap_max": "min",
        "overlap_mean": "min",
        "ncm_accuracy": "max",
        "between_within": "max",
    }
    eval_only: tuple[str, ...] = ()  # evaluation terms not logged for train

    def objective_terms(self, cfg: Config) -> dict[str, str]:
        """The loss and evaluation terms of an epoch line (without split) and their better
        direction; those evaluation adds (not logged for train) are the family's eval_only."""
        return {}

    def objectives(self, cfg: Config) -> dict[str, str]:
        """Every metric a search may optimise (--metric) for runs of cfg, with its better
        direction (max or min): split_term of the last epoch, and the latent metrics of
        the last snapshot when the run records one."""
        out = {}
        splits = ("train", "val", "test") if cfg.val_fraction else ("train", "test")
        for split in splits:
            for term, better in self.objective_terms(cfg).items():
                if not (split == "train" and term in self.eval_only):
                    out[f"{split}_{term}"] = better
        if cfg.snapshot_every:
            out.update(self.latent_objectives)
        return out


class Family(Core, Display, Search):
    """One model family: its config class and everything nnlab does differently for it.

    A subclass defines the core (Core: names, config class, arrays, headline, build,
    loss_terms, encode) and overrides what it shows or searches differently (Display,
    Search); one instance of it is listed in the registry.
    """
