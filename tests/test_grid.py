"""The grid of a sweep: what is swept, what is fixed, and every point validated."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from nnlab.config import config, grid
from nnlab.helpers.errors import NnlabError


def test_scalar_and_list_values_split_as_typed():
    assert grid.split_values("beta", "1,10", float) == ["1", "10"]
    assert grid.split_values("beta", " 4 ", float) == ["4"]
    assert grid.split_values("hidden_dims", "[256,128],[512]", list[int]) == ["[256,128]", "[512]"]
    assert grid.split_values("hidden_dims", "256,128", list[int]) == ["256,128"]  # one value
    assert grid.split_values("sizes", "[784,10],[784,30,10]", list[int])[1] == "[784,30,10]"
    for bad in ("", "1,", ",2", "1,,2"):
        with pytest.raises(NnlabError, match="comma-separated"):
            grid.split_values("beta", bad, float)
    with pytest.raises(NnlabError, match="bracketed groups"):
        grid.split_values("hidden_dims", "[256,128],512", list[int])


def test_points_are_the_cartesian_product_in_typed_order():
    g = grid.build(
        "vae",
        [("seed", "0,1,2"), ("epochs", "2"), ("beta", "1,10"), ("hidden_dims", "[64],[32,16]")],
    )
    assert list(g.axes) == ["seed", "beta", "hidden_dims"] and len(g) == 12
    assert g.base["epochs"] == 2 and "epochs" not in g.axes
    points = list(g.points())
    assert points[0] == {"seed": 0, "beta": 1.0, "hidden_dims": [64]}
    assert points[1] == {"seed": 0, "beta": 1.0, "hidden_dims": [32, 16]}  # last varies fastest
    assert points[-1] == {"seed": 2, "beta": 10.0, "hidden_dims": [32, 16]}
    configs = g.configs()
    for point, cfg in zip(points, configs, strict=True):
        assert all(getattr(cfg, k) == v for k, v in point.items())
        assert cfg.epochs == 2 and cfg.model == "vae" and cfg.name == ""
    # the rest is the default preset's, exactly as `nnlab train vae` would resolve it
    alone = config.build("vae", overrides={"seed": "2", "epochs": "2", "beta": "10"})
    assert configs[-2] == alone.__class__(**{**alone.__dict__, "hidden_dims": [64]})


def test_preset_and_name():
    g = grid.build("classifier", [("seed", "1,2"), ("name", "tag")], preset="latent3")
    assert g.name == "tag" and g.base["sizes"] == [784, 10, 3, 10]
    assert all(c.name == "" for c in g.configs())


@pytest.mark.parametrize(
    "flags,message",
    [
        ([("beta", "1,10"), ("bta", "2")], "unknown config key 'bta'"),
        ([("beta", "1,10"), ("beta", "2")], "--beta is given twice"),
        ([("beta", "1,1")], "1.0 is given twice"),
        ([("beta", "1,-1")], r"grid point 1 \(beta=-1.0\): --beta=-1.0: must not be negative"),
        ([("name", "a,b"), ("beta", "1,2")], "--name names the sweep and cannot be swept"),
        ([("epochs", "2")], "nothing to sweep"),
        ([("beta", "1,x")], "--beta: expected a number, got 'x'"),
        ([("model", "vae,classifier")], "chosen by the first argument"),
        ([("beta", "")], "comma-separated"),
    ],
)
def test_bad_grids_name_the_problem(flags, message):
    with pytest.raises(NnlabError, match=message):
        grid.build("vae", flags).configs()


def test_plan_lists_every_point():
    g = grid.build("vae", [("beta", "1,10"), ("seed", "0,1")])
    table = grid.plan_table(g, ["a", "b", "c", "d"]).splitlines()
    assert table == ["run\tbeta\tseed", "a\t1.0\t0", "b\t1.0\t1", "c\t10.0\t0", "d\t10.0\t1"]


@pytest.mark.slow  # starts a process
def test_dry_run_of_a_thousand_points_is_quick(tmp_path):
    seeds = ",".join(str(i) for i in range(100))
    cmd = [sys.executable, "-m", "nnlab", "sweep", "vae", f"--seed={seeds}"]
    cmd += ["--beta=0.5,1,2,3,4,5,6,7,8,10", "--dry_run", f"--runs_dir={tmp_path / 'runs'}"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    rows = p.stdout.strip().splitlines()
    assert len(rows) == 1001 and rows[0] == "run\tseed\tbeta" and rows[-1].endswith("\t99\t10.0")
    assert "1,000 points" in p.stderr and "nothing written" in p.stderr
    assert not (tmp_path / "runs").exists()
    assert seconds < 2.0, f"dry run of 1,000 points took {seconds:.2f} s"
