"""Model families: one module each (its config class and its Family object), listed here.

Adding a family is its module and one line in FAMILIES. Nothing here imports torch.
"""

from __future__ import annotations

from nnlab.families.classifier import CLASSIFIER
from nnlab.families.family import Config, Family
from nnlab.families.own import OWN
from nnlab.families.vae import VAE
from nnlab.helpers.errors import NnlabError, did_you_mean

FAMILIES: dict[str, Family] = {f.name: f for f in (CLASSIFIER, VAE, OWN)}
NAMES = tuple(FAMILIES)
TRAINED = tuple(f.name for f in FAMILIES.values() if f.rebuildable)  # what `nnlab train` trains


def get(name: str, choices: tuple[str, ...] = ()) -> Family:
    """The family called `name`; an unknown name is a one-line error with a suggestion
    among `choices` (default: every family; `nnlab train` offers those it trains)."""
    if name not in FAMILIES:
        raise NnlabError(f"unknown model '{name}'{did_you_mean(str(name), choices or NAMES)}")
    return FAMILIES[name]


def of(cfg: Config) -> Family:
    """The family of a config."""
    return FAMILIES[cfg.model]
