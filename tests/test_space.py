"""A search's space: ranges and choices parsed from the command line, each bound checked,
and the round trip through sweep.json and Optuna's distributions."""

from __future__ import annotations

import math

import pytest

from nnlab.config import grid, space
from nnlab.helpers.errors import NnlabError


def test_range_texts_are_told_from_values_and_paths():
    for text in ("1e-4..1e-2", "log:1e-4..0.1", "16..256", "-1..1", ".5..1.5", " 1 .. 2 "):
        assert grid.is_range(text), text
    for text in ("folder:../data", "a..b", "1,2", "1..2,3", "[1..2]", "npz:../x.npz", "1.5"):
        assert not grid.is_range(text), text


def test_ranges_floats_ints_and_log_scale():
    r = space.parse_range("lr", "log:1e-4..1e-2", float)
    assert r == space.Range(1e-4, 1e-2, log=True, integer=False)
    assert r.text() == "log:0.0001..0.01"
    r = space.parse_range("batch_size", "16..256", int)
    assert r == space.Range(16, 256, log=False, integer=True) and r.text() == "16..256"
    assert space.parse_range("beta", "0..10", float).lo == 0.0  # uniform: 0 is fine


@pytest.mark.parametrize(
    "key, text, typ, words",
    [
        ("activation", "1..2", str, "needs a number field, and activation is text"),
        ("deterministic", "0..1", bool, "true or false: give the values to try instead"),
        ("hidden_dims", "1..4", list[int], "is a list"),
        ("lr", "0.1..0.01", float, "lo must be below hi, e.g. --lr=0.01..0.1"),
        ("lr", "1e-3..1e-3", float, "lo must be below hi"),
        ("lr", "log:0..0.1", float, "a log-scale range needs lo > 0"),
        ("beta", "log:-1..1", float, "needs lo > 0"),
        ("batch_size", "1.5..8", int, "expected a whole number, got '1.5'"),
    ],
)
def test_bad_ranges_say_what_is_wrong(key, text, typ, words):
    with pytest.raises(NnlabError, match=words.replace("(", r"\(").replace(".", r"\.")):
        space.parse_range(key, text, typ)


def test_space_from_flags_keeps_order_fixed_values_and_choices():
    s = space.build(
        "vae",
        [
            ("lr", "log:1e-4..1e-1"),
            ("epochs", "2"),
            ("activation", "relu,silu"),
            ("hidden_dims", "[64],[32,16]"),
            ("batch_size", "16..256"),
        ],
    )
    assert list(s.params) == ["lr", "activation", "hidden_dims", "batch_size"]
    assert s.params["activation"] == ["relu", "silu"]
    assert s.params["hidden_dims"] == [[64], [32, 16]]
    assert s.base["epochs"] == 2 and "lr" not in s.base
    first = s.check()  # every bound and choice builds a config
    assert first.lr == 1e-4 and first.batch_size == 16 and first.activation == "relu"
    cfg = s.config({"lr": 0.01, "activation": "silu", "hidden_dims": [64], "batch_size": 99})
    assert (cfg.lr, cfg.batch_size, cfg.epochs) == (0.01, 99, 2)


def test_a_bound_that_cannot_train_is_refused_by_its_field():
    s = space.build("vae", [("lr", "0..1e-2")])
    with pytest.raises(NnlabError, match="--lr=0.0: must be positive"):
        s.check()
    s = space.build("vae", [("batch_size", "0..64")])
    with pytest.raises(NnlabError, match="batch_size"):
        s.check()


def test_nothing_to_search_and_ranges_in_a_grid():
    with pytest.raises(NnlabError, match="nothing to search"):
        space.build("vae", [("epochs", "2")])
    with pytest.raises(NnlabError, match=r"add --search=tpe \(or random\)"):
        grid.build("vae", [("lr", "1e-4..1e-2")])
    with pytest.raises(NnlabError, match="given twice"):
        space.build("vae", [("lr", "1e-4..1e-2"), ("lr", "0.1")])


def test_record_round_trip_and_words():
    s = space.build("vae", [("lr", "log:1e-4..1e-1"), ("activation", "relu,silu")])
    params = space.from_record(s.as_record())
    assert params == s.params
    assert space.describe(params) == "lr log:0.0001..0.1 · activation {relu, silu}"


def test_optuna_distributions_give_back_config_values():
    optuna = pytest.importorskip("optuna")
    params = {
        "lr": space.Range(1e-4, 1e-1, log=True),
        "batch_size": space.Range(16, 256, integer=True),
        "hidden_dims": [[64], [32, 16]],
    }
    dists = {k: space.distribution(optuna, p) for k, p in params.items()}
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["batch_size"] == optuna.distributions.IntDistribution(16, 256)
    assert dists["hidden_dims"].choices == ("[64]", "[32,16]")
    values = space.values_of(params, {"lr": 0.003, "batch_size": 40, "hidden_dims": "[32,16]"})
    assert values == {"lr": 0.003, "batch_size": 40, "hidden_dims": [32, 16]}
    assert isinstance(values["batch_size"], int) and math.isclose(values["lr"], 0.003)


def test_outside_names_the_first_value_beyond_its_range_or_choices():
    params = {
        "lr": space.Range(1e-4, 1e-2, log=True),
        "batch_size": space.Range(16, 256, integer=True),
        "activation": ["relu", "tanh"],
    }
    fine = {"lr": 1e-3, "batch_size": 64, "activation": "tanh"}
    assert space.outside(params, fine) == ""
    assert space.outside(params, {**fine, "lr": 5.0}) == "lr=5.0 (not in log:0.0001..0.01)"
    assert "batch_size=64.5" in space.outside(params, {**fine, "batch_size": 64.5})
    assert "activation=gelu (not in relu,tanh)" in space.outside(
        params, {**fine, "activation": "gelu"}
    )
    assert "lr=True" in space.outside(params, {**fine, "lr": True})
