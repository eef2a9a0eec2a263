"""The Family interface: a small core a new family must define (Core), and the display and
search parts (Display, Search), whose every member has a default that fits any family."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest

from nnlab import families
from nnlab.families.family import Config, Core, Display, Family, Search
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import option
from nnlab.store.meta import Meta


@dataclass
class TinyConfig(Config):
    model: str = option("tiny", "the model family")
    hidden_dims: list[int] = option([8], "widths")

    def parameter_count(self) -> int:
        return 100

    def latent_width(self) -> int:
        return 8


class TinyFamily(Family):
    """Only the core: names, config class, arrays, headline, build, loss, encode."""

    name, noun, config_class, default_preset = "tiny", "a tiny net", TinyConfig, ""
    arrays = ("act",)
    headline_key, headline_label = "test_acc", "test accuracy"

    def build(self, cfg):
        import torch

        return torch.nn.Linear(cfg.input_dim(), 8)

    def loss_terms(self, model, cfg, x, y, generator=None):
        return {"loss": model(x.flatten(1)).pow(2).mean()}

    def encode(self, model, cfg, x, layer=None):
        return (model(x.flatten(1)),)


CORE_REQUIRED = {"build", "loss_terms", "encode"}  # the methods without a default


def test_the_core_is_small_and_the_other_parts_are_optional():
    required = {
        n for n, v in vars(Core).items() if callable(v) and "NotImplementedError" in _src(v)
    }
    assert required == CORE_REQUIRED
    for part in (Display, Search):  # every method of the optional parts has a body
        for n, v in vars(part).items():
            if callable(v) and not n.startswith("_"):
                assert "NotImplementedError" not in _src(v), (part.__name__, n)
    assert Family.__mro__[1:4] == (Core, Display, Search)


def _src(fn) -> str:
    return inspect.getsource(fn)


def test_a_family_with_only_the_core_answers_every_question():
    tiny, cfg = TinyFamily(), TinyConfig()
    assert tiny.headline({"test_acc": 0.5}) == ("test accuracy", 0.5)
    assert tiny.format_headline(0.123456) == "0.1235" and tiny.format_headline(None) == "-"
    assert tiny.epoch_headline({"test_acc": 0.5}) == "test accuracy 0.5"
    assert tiny.epoch_headline({}) == ""
    assert tiny.label(cfg) == f"tiny · {cfg.dataset}"
    assert [c.key for c in tiny.sweep_columns] == ["test_acc"]
    assert tiny.symbol == "u" and tiny.pictures == frozenset() and not tiny.spread
    assert tiny.objectives(cfg) == Search.latent_objectives  # no terms: the latent metrics
    assert tiny.differences(TinyConfig(hidden_dims=[16])) == "hidden_dims=16"
    assert tiny.size_key(cfg) == "hidden_dims"
    assert tiny.class_names(cfg)[:3] == ["0", "1", "2"]
    checkpoint, chunk = tiny.ceilings(cfg, Meta(format=1))
    assert checkpoint > 1600 and chunk > 0
    with pytest.raises(NnlabError, match="--layer: a tiny net records one layer only"):
        tiny.embed_layer(cfg, 2)


def test_the_registered_families_keep_their_own_answers():
    assert families.get("classifier").symbol == "h" and families.get("vae").symbol == "z"
    assert families.get("vae").format_headline(-101.234) == "-101.23"
    assert families.get("own").format_headline(0.98765) == "0.9877"  # the default now
