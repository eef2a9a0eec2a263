"""The family of runs written by a user's own code (nnlab.families.own): its config
round-trips through YAML, its files' ceilings come from meta.json, and its headline is
the first of the usual keys the run logged."""

from __future__ import annotations

import pytest

from nnlab import families
from nnlab.config import config
from nnlab.families.own import CHUNK_SNAPSHOTS, OWN, OwnConfig
from nnlab.helpers.errors import NnlabError
from nnlab.store.meta import Meta


def test_the_config_round_trips_with_any_json_settings():
    cfg = OwnConfig(
        name="x",
        dataset="cifar",
        settings={"lr": 1e-3, "dims": [1, 2], "s": "${not.interpolated}", "n": None, "d": {}},
    )
    assert config.from_yaml(config.to_yaml(cfg)) == cfg
    assert families.of(cfg) is OWN and not OWN.rebuildable
    with pytest.raises(NnlabError, match="'settings' should be a mapping"):
        config.from_yaml("model: own\nname: ''\ndataset: ''\nsettings: 3\n")
    with pytest.raises(NnlabError, match="your own training code"):
        config.build("own")


def test_ceilings_follow_what_meta_records():
    meta = Meta(1, probe={"size": 100, "width": 8}, parameter_count=1000, metrics_bytes=10)
    checkpoint, chunk = OWN.ceilings(OwnConfig(), meta)
    assert chunk - 4 * CHUNK_SNAPSHOTS * 100 * 8 == checkpoint - 16 * 1000  # the same slack
    assert OWN.metrics_ceiling(OwnConfig(), meta) > 10


def test_the_headline_is_the_first_usual_key_logged():
    assert OWN.headline({"train_loss": 0.5, "test_acc": 0.9}) == ("test acc", 0.9)
    assert OWN.headline({"custom": 1.0}) == ("final", None)
    assert OWN.format_headline(0.123456) == "0.1235"
    assert OWN.label(OwnConfig(name="n", dataset="d")) == "n · d"
    assert OWN.epoch_headline({"kind": "epoch", "epoch": 1, "step": 3, "a": 0.5}) == "a 0.5"
