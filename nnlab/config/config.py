"""Run configurations: dataclasses per model family, presets, merging and validation.

Order of precedence: dataclass defaults < preset or --config YAML < command-line flags.
The defaults live here and nowhere else: a preset lists only what it changes. The resolved
config is saved verbatim in the run as config.yaml and is the only thing later commands use
to rebuild the model.

The module is long (~440 lines) because it is the whole schema in one place: every field
with its default, meaning and allowed values (the help pages are generated from them),
the presets, merging and validation.

Format evolution. A field added after a run format's first release is declared with
`added_later(default, legacy)`: `legacy` is the value that reproduces what nnlab did
before the field existed, and a run whose config.yaml lacks the field is read with it
(`default` is what new runs get). A missing field declared any other way is damage, and a
run of a newer format than this nnlab knows is refused (store.Run.meta).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nnlab.helpers.errors import NnlabError, did_you_mean
from nnlab.helpers.options import parse_value

MODELS = ("classifier", "vae")
DATASETS = ("mnist", "fashion-mnist", "kmnist", "mnist-sample")
ACTIVATIONS = ("sigmoid", "relu", "tanh", "silu", "softplus", "identity", "gelu", "leaky_relu")
INITS = ("default", "normal", "scaled")
POSTERIOR_SCALES = ("std", "variance")
OPTIMIZERS = ("sgd", "adam", "adamw")
SPLITS = ("test", "val", "train")
LOSSES = ("mse", "ce")
INPUT_DIM = 784  # every dataset nnlab knows is 28x28 grey images
NUM_CLASSES = 10
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
_NONE = object()  # no legacy value declared


def option(default, help: str, *, choices: tuple | None = None, **extra):
    """A config field with its one-line meaning (and allowed values) for `--help`."""
    meta = {"help": help, **({"choices": choices} if choices else {}), **extra}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def added_later(default, help: str, *, legacy, choices: tuple | None = None):
    """A field added after runs were first written: new runs get `default`, a run saved
    without the field is read with `legacy` (the value that reproduces the old behaviour)."""
    return option(default, help, choices=choices, legacy=legacy)


@dataclass
class Config:
    """Fields shared by every model family: data, optimisation, recording, checkpoints.

    A subclass redeclares a field only to change its default (its meaning stays here).
    """

    model: str = option("", "the model family, chosen by the first argument", choices=MODELS)
    name: str = option("", "a tag appended to the run id (letters, digits, . - _)")
    dataset: str = option("mnist", "the images to train on", choices=DATASETS)
    data_dir: str = option("", 'where IDX files live; "" means $NNLAB_DATA or ~/.cache/nnlab/data')
    val_fraction: float = option(0.1, "share of the train split held out for validation")
    seed: int = option(0, "seeds the weights, the batch order and the VAE's sampling")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    deterministic: bool = option(True, "deterministic kernels, so a resume is bit-exact on CPU")
    epochs: int = option(1, "passes over the train split")
    batch_size: int = option(32, "images per optimisation step")
    optimizer: str = option("adamw", "the optimiser", choices=OPTIMIZERS)
    lr: float = option(1e-3, "learning rate")
    weight_decay: float = option(0.0, "the optimiser's weight decay (decoupled for adamw)")
    momentum: float = option(0.0, "momentum (sgd only)")
    log_every: int = option(50, "steps between training-loss lines in metrics.jsonl")
    snapshot_every: int = option(4, "steps between latent snapshots; 0 turns recording off")
    probe_split: str = option("test", "the split whose images are recorded", choices=SPLITS)
    probe_size: int = option(10000, "most probe images recorded (class-stratified when capped)")
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
    checkpoint_every: int = option(0, "keep a checkpoint every N epochs (0: latest and final)")
    checkpoint_every_steps: int = option(500, "refresh the latest checkpoint every N steps")
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
    )
    l2: float = added_later(
        0.0,
        "L2 penalty (l2 / 2) * sum w^2 on every layer's weights (not biases), added to the loss "
        "(unlike weight_decay, which the optimiser applies)",
        legacy=0.0,
    )
    dropout: list[float] = added_later(
        [],
        "dropout probability on the hidden layers' outputs in training: one value for every "
        "hidden layer or one per layer (VAE: per encoder layer, mirrored in the decoder); "
        "empty: off",
        legacy=[],
    )
    init: str = added_later(
        "default",
        "weights and biases: default (PyTorch's uniform), normal (N(0, 1), as network.py), "
        "scaled (weights N(0, 1/fan_in), biases N(0, 1))",
        choices=INITS,
        legacy="default",  # runs from before it existed used PyTorch's
    )

    def parameter_count(self) -> int:
        """How many parameters the model of this config has (without building it)."""
        if self.model == "vae":
            widths = [INPUT_DIM, *self.hidden_dims]
            enc = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
            head = widths[-1] * 2 * self.latent_dim + 2 * self.latent_dim
            dec_widths = [self.latent_dim, *reversed(self.hidden_dims), INPUT_DIM]
            dec = sum(a * b + b for a, b in zip(dec_widths[:-1], dec_widths[1:], strict=True))
            return enc + head + dec
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))


@dataclass
class VAEConfig(Config):
    """A beta-VAE with MLP encoder and decoder and a diagonal Gaussian posterior."""

    model: str = "vae"
    hidden_dims: list[int] = option([256, 128], "encoder layer widths; the decoder mirrors them")
    latent_dim: int = option(2, "latent dimensions")
    activation: str = option("silu", "hidden-layer activation", choices=ACTIVATIONS)
    recon: str = option("bce", "reconstruction term, summed over pixels", choices=("bce", "mse"))
    beta: float = option(1.0, "weight of KL(q(z|x) || N(0, I))")
    posterior_scale: str = added_later(
        "std",
        "what softplus(raw) is: the posterior's std, or its variance (the seed project's)",
        choices=POSTERIOR_SCALES,
        legacy="std",  # runs from before it existed used std
    )
    weight_decay: float = 1e-2  # AdamW's decoupled decay, as in the reference experiment


@dataclass
class ClassifierConfig(Config):
    """An MLP classifier; sizes lists every layer's width from 784 inputs to 10 outputs."""

    model: str = "classifier"
    sizes: list[int] = option([784, 30, 10], "every layer's width, from 784 inputs to 10 outputs")
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
    )
    cbp_maturity: int = added_later(
        100, "continual backprop: steps a unit lives before it may be replaced", legacy=100
    )
    cbp_decay: float = added_later(
        0.99, "continual backprop: decay of each unit's running contribution utility", legacy=0.99
    )
    permute_every: int = added_later(
        0,
        "a continual task: every K epochs the pixels are shuffled by a new seeded permutation "
        "(Permuted MNIST; task 0 is the images as they are); 0: off",
        legacy=0,
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


CONFIG_CLASSES: dict[str, type[Config]] = {"vae": VAEConfig, "classifier": ClassifierConfig}
DEFAULT_PRESET = {"vae": "vae", "classifier": "classifier"}


def field_info(cls: type[Config], name: str) -> dict:
    """A field's help metadata (help, choices, legacy), from the class that declared its
    meaning: a subclass that only changes a default inherits the base's help."""
    for klass in cls.__mro__:
        fields = getattr(klass, "__dataclass_fields__", {})
        if name in fields and "help" in fields[name].metadata:
            return dict(fields[name].metadata)
    return {}


def preset_names() -> list[str]:
    """Names of the presets shipped in configs/."""
    return sorted(
        p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml")
    )


def _preset_dir():
    return resources.files("nnlab.configs")


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        loaded = OmegaConf.create(text)
    except Exception as e:  # omegaconf wraps yaml errors in several types
        raise NnlabError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(OmegaConf.to_container(loaded), dict):
        raise NnlabError(f"{where}: expected a mapping of config keys")
    return OmegaConf.to_container(loaded)


def load_preset(name: str) -> dict[str, Any]:
    """Read a preset's YAML as a plain dict."""
    names = preset_names()
    if name not in names:
        raise NnlabError(f"unknown preset '{name}'{did_you_mean(name, names)}")
    return _read_yaml((_preset_dir() / f"{name}.yaml").read_text(), f"preset {name}")


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a user's --config YAML file as a plain dict."""
    p = Path(path)
    if not p.is_file():
        raise NnlabError(f"config file not found: {p}")
    return _read_yaml(p.read_text(), str(p))


def field_types(cls: type[Config]) -> dict[str, Any]:
    """Map each field of a config class to its (resolved) type."""
    return typing.get_type_hints(cls)


def check_keys(cls: type[Config], keys, where: str) -> None:
    """Refuse keys the config class does not have, suggesting the closest one."""
    known = [f.name for f in dataclasses.fields(cls)]
    for k in keys:
        if k not in known:
            owners = [
                name
                for name, other in CONFIG_CLASSES.items()
                if other is not cls and k in {f.name for f in dataclasses.fields(other)}
            ]
            if owners:  # a real key of the other model: say so rather than "unknown"
                raise NnlabError(
                    f"'{k}' in {where} is a setting of the {owners[0]}; the {cls.model} has none"
                )
            raise NnlabError(f"unknown config key '{k}' in {where}{did_you_mean(k, known)}")


def coerce(cls: type[Config], data: dict[str, Any], where: str) -> dict[str, Any]:
    """Type-check YAML or JSON values (ints are accepted for floats, nothing else is
    converted)."""
    types = field_types(cls)
    out = {}
    for k, v in data.items():
        typ = types[k]
        origin, args = typing.get_origin(typ), typing.get_args(typ)
        ok = True
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif typ is float:
            ok = isinstance(v, float)
        elif typ is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif typ is bool:
            ok = isinstance(v, bool)
        elif typ is str:
            ok = isinstance(v, str)
        elif origin is list and args[0] is float:
            ok = isinstance(v, list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
            )
            v = [float(x) for x in v] if ok else v
        elif origin is list:
            ok = isinstance(v, list) and all(
                isinstance(x, int) and not isinstance(x, bool) for x in v
            )
        elif type(None) in args:
            ok = v is None or (isinstance(v, int) and not isinstance(v, bool))
        if not ok:
            raise NnlabError(f"{where}: '{k}' should be {_type_name(typ)}, got {v!r}")
        out[k] = v
    return out


def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) is list:
        return (
            "a list of numbers" if typing.get_args(typ)[0] is float else "a list of whole numbers"
        )
    if type(None) in typing.get_args(typ):
        return "a whole number or null"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(
        typ, str(typ)
    )


def build(
    model: str | None,
    *,
    preset: str | None = None,
    config_file: str | None = None,
    overrides: dict[str, str] | None = None,
) -> Config:
    """Resolve a config: defaults < preset or YAML file < flags (raw text), then validate."""
    cls, values = base_values(model, preset=preset, config_file=config_file)
    values.update(parse_overrides(cls, overrides or {}))
    return make(cls, values)


def base_values(
    model: str | None, *, preset: str | None = None, config_file: str | None = None
) -> tuple[type[Config], dict[str, Any]]:
    """The config class of `model` and the values its preset or YAML file sets (the model's
    default preset when neither is given), type-checked but not yet validated."""
    if preset and config_file:
        raise NnlabError("give either --preset or --config, not both")
    layer: dict[str, Any] = {}
    where = "the command line"
    if preset:
        layer, where = load_preset(str(preset)), f"preset '{preset}'"
    elif config_file:
        layer, where = load_yaml_file(config_file), str(config_file)
    layer_model = layer.get("model")
    if model is None:
        model = layer_model
    if model is None:
        raise NnlabError("name the model to train: nnlab train classifier|vae")
    model = str(model)
    if model not in MODELS:
        raise NnlabError(f"unknown model '{model}'{did_you_mean(model, MODELS)}")
    if layer_model is not None and layer_model != model:
        raise NnlabError(f"{where} is for model '{layer_model}', not '{model}'")
    if not preset and not config_file:
        layer, where = load_preset(DEFAULT_PRESET[model]), f"preset '{DEFAULT_PRESET[model]}'"
    cls = CONFIG_CLASSES[model]
    check_keys(cls, layer, where)
    values = coerce(cls, layer, where)
    values["model"] = model
    return cls, values


def parse_overrides(cls: type[Config], overrides: dict[str, str]) -> dict[str, Any]:
    """Command-line flags (the text typed) as typed values of cls's fields."""
    check_keys(cls, overrides, "the command line")
    types = field_types(cls)
    values = {}
    for k, text in overrides.items():
        if k == "model":
            raise NnlabError("the model is chosen by the first argument, not --model")
        values[k] = parse_value(k, text, types[k])
    return values


def make(cls: type[Config], values: dict[str, Any]) -> Config:
    """A validated config of class cls from field values (the rest at their defaults)."""
    cfg = cls(**values)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Check ranges and choices; raise NnlabError naming the first bad key."""

    def bad(key: str, why: str):
        raise NnlabError(f"--{key}={getattr(cfg, key)!r}: {why}")

    def choice(key: str):
        v, options = getattr(cfg, key), field_info(type(cfg), key)["choices"]
        if v not in options:
            raise NnlabError(f"--{key}: unknown value '{v}'{did_you_mean(v, options)}")

    for f in dataclasses.fields(cfg):  # NaN, infinities and huge numbers pass range checks
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            bad(f.name, "must be a finite number")
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            bad(f.name, "must hold finite numbers")
        if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**31 for v in items):
            bad(f.name, "too large (whole numbers here stay below 2**31)")
    if not 0 <= cfg.seed < 2**32:
        bad("seed", "use a whole number from 0 to 4294967295")
    if not NAME_RE.match(cfg.name):
        bad("name", "use up to 64 letters, digits, '.', '-' or '_'")
    choice("dataset")
    if not re.match(r"^(auto|cpu|cuda|cuda:\d+|mps)$", cfg.device):
        bad("device", "use auto, cpu, cuda or cuda:N")
    if not 0.0 <= cfg.val_fraction < 0.5:
        bad("val_fraction", "must be at least 0 and below 0.5")
    if cfg.epochs < 1:
        bad("epochs", "must be at least 1")
    if cfg.batch_size < 1:
        bad("batch_size", "must be at least 1")
    choice("optimizer")
    if not 0 < cfg.lr <= 1e6:  # beyond float32's range the optimiser step overflows
        bad("lr", "must be positive and at most 1e6")
    if cfg.weight_decay < 0:
        bad("weight_decay", "must not be negative")
    if not 0 <= cfg.momentum < 1:
        bad("momentum", "must be in [0, 1)")
    if cfg.log_every < 1:
        bad("log_every", "must be at least 1")
    if cfg.snapshot_every < 0:
        bad("snapshot_every", "must be 0 (off) or a number of steps")
    choice("probe_split")
    if cfg.probe_split == "val" and cfg.val_fraction == 0:
        bad("probe_split", "there is no validation split with --val_fraction=0")
    if cfg.probe_size < 1:
        bad("probe_size", "must be at least 1")
    choice("record_dtype")
    choice("record_precision")
    if cfg.checkpoint_every < 0:
        bad("checkpoint_every", "must not be negative")
    if cfg.checkpoint_every_steps < 0:
        bad("checkpoint_every_steps", "must not be negative")
    choice("activation")
    choice("init")
    for key in ("l1", "l2"):
        if not 0 <= getattr(cfg, key) <= 1e3:
            bad(key, "must be at least 0 (off) and at most 1e3")
    hidden = len(cfg.hidden_dims) if cfg.model == "vae" else len(cfg.sizes) - 2
    if cfg.dropout:
        if not all(0 <= p < 1 for p in cfg.dropout):
            bad("dropout", "each probability must be at least 0 and below 1")
        if hidden == 0:
            bad("dropout", "the network has no hidden layer to drop units from")
        if len(cfg.dropout) not in (1, hidden):
            bad("dropout", f"give one probability, or one per hidden layer ({hidden})")
    if cfg.model == "vae":
        if not cfg.hidden_dims or min(cfg.hidden_dims) < 1:
            bad("hidden_dims", "give at least one layer width, each at least 1")
        if cfg.latent_dim < 1:
            bad("latent_dim", "must be at least 1")
        choice("recon")
        choice("posterior_scale")
        if cfg.beta < 0:
            bad("beta", "must not be negative")
    else:
        if len(cfg.sizes) < 2 or cfg.sizes[0] != INPUT_DIM or cfg.sizes[-1] != NUM_CLASSES:
            bad("sizes", f"must start at {INPUT_DIM} and end at {NUM_CLASSES}, e.g. [784,30,10]")
        if min(cfg.sizes) < 1:
            bad("sizes", "every layer needs at least 1 unit")
        choice("loss")
        if cfg.latent_layer is not None and not 1 <= cfg.latent_layer < len(cfg.sizes):
            bad("latent_layer", f"must index a layer of sizes: 1 to {len(cfg.sizes) - 1}")
        if not 0 <= cfg.cbp_rate < 1:
            bad("cbp_rate", "must be in [0, 1): a fraction of each hidden layer per step")
        if cfg.cbp_rate and hidden == 0:
            bad("cbp_rate", "continual backprop replaces hidden units; this network has none")
        if cfg.cbp_maturity < 0:
            bad("cbp_maturity", "must not be negative")
        if not 0 <= cfg.cbp_decay < 1:
            bad("cbp_decay", "must be in [0, 1)")
        if cfg.permute_every < 0:
            bad("permute_every", "must be 0 (off) or a number of epochs per task")
    _check_size(cfg, bad)


def _check_size(cfg: Config, bad) -> None:
    """Refuse a model too big to train here, before anything is allocated: weights,
    gradients and two optimiser moments at 4 bytes each must fit in half the memory."""
    need = 16 * cfg.parameter_count()
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > memory / 2:
        key = "sizes"
        if cfg.model == "vae":
            key = "latent_dim" if cfg.latent_dim > max(cfg.hidden_dims) else "hidden_dims"
        bad(
            key,
            f"a model of {cfg.parameter_count():,} parameters needs ~{need / 2**30:,.0f} GiB "
            f"to train; this machine has {memory / 2**30:,.0f} GiB",
        )


def to_yaml(cfg: Config) -> str:
    """The config as YAML text, every field written out."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(dataclasses.asdict(cfg)))


def from_yaml(text: str, where: str = "config.yaml") -> Config:
    """Rebuild a config from a run's saved YAML (fields added later filled with their
    legacy values); refuse unknown keys, other missing keys, or bad values."""
    data = _read_yaml(text, where)
    model = data.get("model")
    if model not in CONFIG_CLASSES:
        raise NnlabError(f"{where}: unknown model {model!r}")
    cls = CONFIG_CLASSES[model]
    check_keys(cls, data, where)
    for f in dataclasses.fields(cls):
        legacy = field_info(cls, f.name).get("legacy", _NONE)
        if f.name not in data and legacy is not _NONE:
            data[f.name] = legacy  # a run from before the field was added
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
    if missing:
        raise NnlabError(f"{where}: missing keys {', '.join(missing)}")
    cfg = cls(**coerce(cls, data, where))
    validate(cfg)
    return cfg
