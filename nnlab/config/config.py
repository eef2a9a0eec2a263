"""Run configurations: presets, merging, type checks, validation, YAML.

Order of precedence: dataclass defaults < preset or --config YAML < command-line flags.
The defaults live in the config classes (nnlab/families: the fields every family shares in
family.py, each family's own in its module) and nowhere else: a preset lists only what it
changes. The resolved config is saved verbatim in the run as config.yaml and is the only
thing later commands use to rebuild the model.

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
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from nnlab import families
from nnlab.families.family import Config, check_record_layers
from nnlab.helpers.errors import NnlabError, did_you_mean
from nnlab.helpers.options import parse_value

_NONE = object()  # no legacy value declared


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
                f.name
                for f in families.FAMILIES.values()
                if f.config_class is not cls
                and k in {field.name for field in dataclasses.fields(f.config_class)}
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
        elif typ is dict:
            ok = isinstance(v, dict)
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
    return {
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        str: "text",
        dict: "a mapping",
    }.get(typ, str(typ))


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
    family = families.get(model, families.TRAINED)
    if not family.rebuildable:
        raise NnlabError(
            f"'{model}' runs are written by your own training code through nnlab's Python API "
            f"(README: Use nnlab from your own code); nnlab trains {' or '.join(families.TRAINED)}"
        )
    if layer_model is not None and layer_model != model:
        raise NnlabError(f"{where} is for model '{layer_model}', not '{model}'")
    if not preset and not config_file:
        layer, where = load_preset(family.default_preset), f"preset '{family.default_preset}'"
    cls = family.config_class
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
        if field_info(cls, k).get("derived"):
            raise NnlabError(
                f"--{k} is read from the dataset: choose the images with --dataset "
                "(and --image_size for a folder)"
            )
        values[k] = parse_value(k, text, types[k])
    return values


def make(cls: type[Config], values: dict[str, Any]) -> Config:
    """A validated config of class cls from field values (the rest at their defaults),
    fitted to its dataset's images and classes."""
    cfg = cls(**fit_to_data(cls, values))
    validate(cfg)
    return cfg


def fit_to_data(cls: type[Config], values: dict[str, Any]) -> dict[str, Any]:
    """The values with the dataset's image shape and class count filled in (read from
    the dataset's facts or headers, not its images), and the family's fields that follow
    them (a classifier's first and last widths). A bad dataset is refused here, before a
    run folder exists."""
    from nnlab.data import catalog

    base = cls()
    name = values.get("dataset", base.dataset)
    size = values.get("image_size", base.image_size)
    if not catalog.is_valid_name(name):
        raise NnlabError(f"--dataset={name!r}: {catalog.name_problem(name)}")
    if name.startswith(catalog.PREFIXES):  # saved absolute: later commands run from anywhere
        prefix, path = name.split(":", 1)
        name = values["dataset"] = f"{prefix}:{Path(path).expanduser().resolve()}"
    if not isinstance(size, int) or size < 0:
        return values  # validate() names the bad value
    d = catalog.describe(name, values.get("data_dir", base.data_dir) or None, size)
    before = {k: values.get(k, getattr(base, k)) for k in ("image_shape", "num_classes")}
    fitted = {**values, "image_shape": list(d.shape), "num_classes": len(d.classes)}
    families.FAMILIES[base.model].fit(fitted, before)
    return fitted


def validate(cfg: Config) -> None:
    """Check values: finite, each field's choices and range (declared with the field), then
    what involves several fields; raise NnlabError naming the first bad key."""

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
    for f in dataclasses.fields(cfg):  # each field's allowed values and range, in order
        info = field_info(type(cfg), f.name)
        if "choices" in info:
            choice(f.name)
        test, why = info.get("check", (None, ""))
        if test is not None and not test(getattr(cfg, f.name)):
            bad(f.name, why(getattr(cfg, f.name)) if callable(why) else why)
    if not isinstance(cfg, Config):  # a family nnlab does not train (a user's own run)
        return
    if cfg.probe_split == "val" and cfg.val_fraction == 0:
        bad("probe_split", "there is no validation split with --val_fraction=0")
    hidden = cfg.hidden_layers()
    if cfg.dropout:
        if hidden == 0:
            bad("dropout", "the network has no hidden layer to drop units from")
        if len(cfg.dropout) not in (1, hidden):
            bad("dropout", f"give one probability, or one per hidden layer ({hidden})")
    families.of(cfg).check(cfg, bad, choice)
    check_record_layers(cfg, bad)
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
        bad(
            families.of(cfg).size_key(cfg),
            f"a model of {cfg.parameter_count():,} parameters needs ~{need / 2**30:,.0f} GiB "
            f"to train; this machine has {memory / 2**30:,.0f} GiB",
        )


def to_yaml(cfg: Config) -> str:
    """The config as YAML text, every field written out."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(dataclasses.asdict(cfg)))


def from_yaml(text: str, where: str = "the config") -> Config:
    """Rebuild a config from a run's saved YAML (fields added later filled with their
    legacy values); refuse unknown keys, other missing keys, or bad values."""
    data = _read_yaml(text, where)
    model = data.get("model")
    if model not in families.FAMILIES:
        raise NnlabError(f"{where}: unknown model {model!r}")
    cls = families.FAMILIES[model].config_class
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
