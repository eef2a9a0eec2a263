from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nnlab import families
from nnlab.config import config
from nnlab.config.config import build, from_yaml, to_yaml
from nnlab.families.classifier import ClassifierConfig
from nnlab.families.vae import VAEConfig
from nnlab.helpers.errors import NnlabError


def test_vae_defaults_are_the_reference_experiment():
    cfg = build("vae")
    assert isinstance(cfg, VAEConfig)
    assert cfg.hidden_dims == [256, 128] and cfg.latent_dim == 2 and cfg.activation == "silu"
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size) == ("adamw", 1e-3, 1e-2, 32)
    assert cfg.beta == 1.0 and cfg.epochs == 1 and cfg.snapshot_every == 4


def test_presets():
    assert build("vae", preset="vae-beta10").beta == 10.0
    n = build("classifier", preset="nielsen")
    assert (n.sizes, n.activation, n.loss, n.lr, n.batch_size, n.epochs) == (
        [784, 30, 10],
        "sigmoid",
        "mse",
        3.0,
        10,
        30,
    )
    assert build("classifier") == dataclasses.replace(n, init="default")
    assert n.init == "normal"  # network.py's N(0, 1) weights and biases
    l3 = build(None, preset="latent3")
    assert l3.sizes == [784, 10, 3, 10] and l3.recorded_layer == 2 and l3.lr == 1.0
    assert build("classifier", preset="linear-ce").loss == "ce"
    assert build("classifier", preset="linear-mse").recorded_layer == 1  # outputs
    assert set(config.preset_names()) >= {
        "vae",
        "vae-beta10",
        "classifier",
        "nielsen",
        "latent3",
        "linear-mse",
        "linear-ce",
        "seed-vae",
    }
    assert build("vae", preset="seed-vae").posterior_scale == "variance"


@pytest.mark.parametrize(
    "key,text,expected",
    [
        ("name", "007", "007"),
        ("lr", "1e-3", 1e-3),
        ("beta", "10", 10.0),
        ("deterministic", "false", False),
        ("deterministic", "True", True),
        ("hidden_dims", "[256,128]", [256, 128]),
        ("hidden_dims", "256,128", [256, 128]),
        ("hidden_dims", "64", [64]),
        ("epochs", "3", 3),
    ],
)
def test_flags_are_parsed_by_field_type(key, text, expected):
    cfg = build("vae", overrides={key: text})
    value = getattr(cfg, key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "model,overrides,needle",
    [
        ("vae", {"bta": "10"}, "did you mean 'beta'"),
        ("vae", {"lr": "-1"}, "--lr"),
        ("vae", {"lr": "fast"}, "--lr: expected a number"),
        ("vae", {"batch_size": "0"}, "--batch_size"),
        ("vae", {"latent_dim": "0"}, "--latent_dim"),
        ("vae", {"beta": "-1"}, "--beta"),
        ("vae", {"dataset": "mnst"}, "did you mean 'mnist'"),
        ("vae", {"activation": "swish"}, "--activation: unknown value 'swish'"),
        ("vae", {"l1": "-0.1"}, "--l1=-0.1: must be at least 0"),
        ("classifier", {"l2": "-1"}, "--l2=-1.0: must be at least 0"),
        ("classifier", {"dropout": "1"}, "--dropout=[1.0]: each probability must be"),
        ("classifier", {"dropout": "[0.1,0.2]"}, "one per hidden layer (1)"),
        ("classifier", {"dropout": "0.5", "sizes": "[784,10]"}, "no hidden layer"),
        ("vae", {"dropout": "[0.1,0.1,0.1]"}, "one per hidden layer (2)"),
        ("vae", {"dropout": "nan"}, "--dropout"),
        ("classifier", {"cbp_rate": "1.5"}, "--cbp_rate=1.5: must be in [0, 1)"),
        ("classifier", {"permute_every": "-2"}, "--permute_every=-2"),
        ("vae", {"permute_every": "2"}, "is a setting of the classifier; the vae has none"),
        ("vae", {"deterministic": "maybe"}, "true or false"),
        ("vae", {"name": "a/b"}, "--name"),
        (
            "classifier",
            {"sizes": "[784,30,9]"},
            "must start at 784 (the 1x28x28 images' pixels) and end at 10",
        ),
        ("classifier", {"sizes": "[100,10]"}, "must start at 784"),
        ("classifier", {"latent_layer": "5"}, "--latent_layer"),
        (
            "vae",
            {"sizes": "[784,10]"},
            "'sizes' in the command line is a setting of the classifier",
        ),
        ("vae", {"sizs": "[784,10]"}, "unknown config key 'sizs'"),
    ],
)
def test_bad_values_name_the_key(model, overrides, needle):
    with pytest.raises(NnlabError) as e:
        build(model, overrides=overrides)
    assert needle in str(e.value)


def test_unknown_model_and_preset():
    with pytest.raises(NnlabError, match="did you mean 'vae'"):
        build("vea")
    with pytest.raises(NnlabError, match="did you mean 'latent3'"):
        build("classifier", preset="latnet3")
    with pytest.raises(NnlabError, match="is for model 'classifier'"):
        build("vae", preset="latent3")


def test_config_file_and_precedence(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("model: vae\nbeta: 4\nlatent_dim: 3\n")
    cfg = build(None, config_file=str(f), overrides={"beta": "5"})
    assert cfg.latent_dim == 3 and cfg.beta == 5.0  # flags beat the file, the file beats defaults
    f.write_text("model: vae\nlatent_dim: three\n")
    with pytest.raises(NnlabError, match="'latent_dim' should be a whole number"):
        build(None, config_file=str(f))


def test_yaml_round_trip_and_refusals():
    cfg = build("classifier", preset="latent3", overrides={"seed": "16", "name": "x"})
    assert from_yaml(to_yaml(cfg)) == cfg
    assert isinstance(from_yaml(to_yaml(cfg)), ClassifierConfig)
    with pytest.raises(NnlabError, match="unknown config key 'future_field'"):
        from_yaml(to_yaml(cfg) + "future_field: 1\n")
    with pytest.raises(NnlabError, match="missing keys"):
        from_yaml("model: vae\nbeta: 1.0\n")


PRESETS_FORMAT1 = Path(__file__).resolve().parent / "fixtures" / "presets-format1"


# What a preset deliberately changed since 0.1.0 (fields it did not have then read with
# their legacy values).
PRESET_CHANGES = {"nielsen": {"init": "normal"}}


@pytest.mark.parametrize("name", sorted(p.stem for p in PRESETS_FORMAT1.glob("*.yaml")))
def test_presets_resolve_as_before(name):
    """Each preset (and each model's default) resolves to the config nnlab 0.1.0 gave it,
    though presets now list only what they change; fields added since then have their
    legacy values, except where PRESET_CHANGES says otherwise."""
    if name.startswith("default-"):
        cfg = build(name.removeprefix("default-"))
    else:
        cfg = build(config.load_preset(name)["model"], preset=name)
    before = from_yaml((PRESETS_FORMAT1 / f"{name}.yaml").read_text())
    assert cfg == dataclasses.replace(before, **PRESET_CHANGES.get(name, {}))


def test_defaults_live_once():
    """A subclass redeclares a base field only to change its default, and a preset sets
    only values that differ from its model's defaults."""
    base = {f.name: f for f in dataclasses.fields(config.Config)}
    subclasses = [f.config_class for f in families.FAMILIES.values()]
    for cls in (c for c in subclasses if issubclass(c, config.Config)):  # not own runs'
        for name in cls.__annotations__:
            if name in base and name != "model":
                assert getattr(cls(), name) != base[name].default, f"{cls.__name__}.{name}"
    for name in config.preset_names():
        layer = config.load_preset(name)
        defaults = dataclasses.asdict(families.get(layer["model"]).config_class())
        same = [k for k, v in layer.items() if k != "model" and defaults[k] == v]
        assert not same, f"preset {name} repeats defaults: {same}"


def test_fields_added_later_declare_a_legacy_value():
    legacy = {
        f.name: f.metadata["legacy"]
        for f in dataclasses.fields(VAEConfig)
        if "legacy" in f.metadata
    }
    assert legacy == {
        "record_precision": "float32",
        "record_layers": "",
        "layer_reduction": "mean",
        "tensorboard": False,
        "l1": 0.0,
        "l2": 0.0,
        "dropout": [],
        "init": "default",
        "posterior_scale": "std",
        "image_size": 0,
        "image_shape": [1, 28, 28],
        "num_classes": 10,
        "lr_decay": 1.0,
        "lr_milestones": [],
        "precision": "float32",
        "arch": "mlp",
        "channels": [32, 64],
    }
    classifier_only = {
        f.name: f.metadata["legacy"]
        for f in dataclasses.fields(ClassifierConfig)
        if "legacy" in f.metadata and f.name not in legacy
    }
    assert classifier_only == {
        "record_layer": "",
        "input_norm": [],
        "standardise": False,
        "cbp_rate": 0.0,
        "cbp_maturity": 100,
        "cbp_utility": "contribution",
        "cbp_adam_steps": False,
        "cbp_decay": 0.99,
        "permute_every": 0,
    }
    cfg = build("vae")
    import yaml

    saved = {k: v for k, v in yaml.safe_load(to_yaml(cfg)).items() if k not in legacy}
    text = yaml.safe_dump(saved, sort_keys=False)
    assert from_yaml(text) == cfg  # their defaults are also their legacy values
