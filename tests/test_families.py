"""Model families: the registry, what each family says of itself, and the rule that no
module outside nnlab/families tells families apart by name."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from nnlab import families
from nnlab.config.config import build
from nnlab.helpers.errors import NnlabError
from nnlab.training.models import build_model, encode_latents

PACKAGE = Path(__file__).resolve().parent.parent / "nnlab"


def test_registry_lists_each_family_once_under_its_name():
    assert families.NAMES == ("classifier", "vae", "own")
    assert families.TRAINED == ("classifier", "vae")  # own runs come from a user's code
    for name, family in families.FAMILIES.items():
        assert family.name == name == family.config_class().model
        assert families.get(name) is family
        if family.rebuildable:
            presets = __import__("nnlab.config.config").config.config.preset_names()
            assert family.default_preset in presets
    with pytest.raises(NnlabError, match="unknown model 'vea'.*did you mean 'vae'"):
        families.get("vea")


@pytest.mark.parametrize("name", families.TRAINED)
def test_a_snapshot_has_the_arrays_the_family_names(name):
    """encode gives one array per name in `arrays` (the points, then their spread), each
    (images, latent_width or less), and the recorded names decide what applies."""
    family = families.get(name)
    cfg = build(name, overrides={"dataset": "mnist-sample"})
    torch.manual_seed(0)
    model = build_model(cfg)
    enc = encode_latents(model, cfg, torch.rand(7, 784))
    got = [a for a in (enc.points, enc.sd) if a is not None]
    assert len(got) == len(family.arrays)
    assert all(a.shape[0] == 7 and a.shape[1] <= cfg.latent_width() for a in got)
    assert family.spread == (enc.sd is not None)
    assert family.headline_key in {c.key for c in family.sweep_columns}


@pytest.mark.parametrize("name", families.TRAINED)
def test_config_facts_agree_with_the_network(name):
    cfg = build(name)
    model = build_model(cfg)
    assert cfg.parameter_count() == sum(p.numel() for p in model.parameters())
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert cfg.hidden_layers() == len(linears) // (2 if name == "vae" else 1) - 1
    assert families.of(cfg).size_key(cfg) in {f.name for f in dataclasses.fields(cfg)}


def name_comparisons(source: str) -> list[tuple[int, list[str]]]:
    """(line, names) of each comparison or membership test in which a string literal
    naming a family takes part (alone or inside a tuple, list or set)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        names = []
        for part in [node.left, *node.comparators]:
            elts = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
            names += [e.value for e in elts if isinstance(e, ast.Constant)]
        names = [n for n in names if n in families.NAMES]
        if names:
            found.append((node.lineno, names))
    return found


def test_no_module_outside_the_families_compares_a_model_name():
    """`cfg.model == "vae"` and friends belong to the family modules."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} {names}"
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "families"
        for line, names in name_comparisons(path.read_text())
    ]
    assert not offenders, "\n".join(offenders)


def test_the_comparison_check_finds_them():
    source = 'if cfg.model == "vae": pass\nok = m in ("classifier", "x")\nx = "vae"\n'
    assert name_comparisons(source) == [(1, ["vae"]), (2, ["classifier"])]


def test_differences_name_what_sets_a_run_apart():
    from nnlab.config import config
    from nnlab.families.own import OwnConfig

    cfg = config.build("vae", overrides={"beta": "10", "epochs": "10", "seed": "3"})
    assert families.of(cfg).differences(cfg) == "seed=3 epochs=10 beta=10"
    cfg = config.build("classifier", preset="latent3")
    assert "sizes=784-10-3-10" in families.of(cfg).differences(cfg)
    own = OwnConfig(settings={"lr": 0.001, "dims": [16, 2]})
    assert families.of(own).differences(own) == "lr=0.001 dims=16-2"
    long = OwnConfig(settings={f"k{i}": i for i in range(40)})
    assert len(families.of(long).differences(long)) == 80


def test_classifier_only_training_is_asked_of_the_family():
    """Permuted tasks and continual backprop are the classifier's: generic code asks the
    family (tasks_every, replaces_units), never a classifier field of another family."""
    from nnlab.config.config import build

    vae, cls = build("vae"), build("classifier", overrides={"permute_every": "2"})
    assert families.of(vae).tasks_every(vae) == 0 and not families.of(vae).replaces_units(vae)
    assert families.of(cls).tasks_every(cls) == 2 and not families.of(cls).replaces_units(cls)
    cbp = build("classifier", overrides={"cbp_rate": "1e-4"})
    assert families.of(cbp).replaces_units(cbp)
    assert not hasattr(vae, "permute_every") and not hasattr(vae, "cbp_rate")
