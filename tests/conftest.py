"""Shared fixtures: an isolated runs dir and data dir, and an in-process CLI runner."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnlab.commands import cli

# The modules each optional extra brings (pyproject.toml's optional-dependencies), by
# extra: NNLAB_TEST_WITHOUT_EXTRAS=1 hides them all, so that the quick suite runs as in a
# venv with `.[dev]` alone (CI does so once): every test of an extra must skip then.
EXTRA_MODULES = {
    "ray": ("ray",),
    "tensorboard": ("tensorboard",),
    "lightning": ("lightning", "pytorch_lightning"),
    "projections": ("openTSNE", "umap", "sklearn"),
    "search": ("optuna", "sklearn"),
    "browser": ("playwright",),
    "docs": ("mkdocs", "mkdocstrings", "material"),
    "notebook": ("pandas", "IPython", "nbclient", "nbformat", "ipykernel"),
    "svhn": ("scipy",),
    "serve": ("starlette", "uvicorn"),
}


class _HiddenExtras:
    """A meta path finder that says the extras' modules are not installed."""

    hidden = {m for modules in EXTRA_MODULES.values() for m in modules}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named '{name}' (hidden: no extras)", name=name)
        return None


def _hide_extras() -> None:
    import importlib.util

    sys.meta_path.insert(0, _HiddenExtras())
    real = importlib.util.find_spec

    def find_spec(name, package=None):
        if name.partition(".")[0] in _HiddenExtras.hidden:
            return None
        return real(name, package)

    importlib.util.find_spec = find_spec


if os.environ.get("NNLAB_TEST_WITHOUT_EXTRAS"):
    _hide_extras()

# Small, fast settings for real training on the bundled sample (3,600 train images).
FAST = ["--dataset=mnist-sample", "--probe_size=200", "--log_every=10"]


@dataclass
class Result:
    """What one CLI call did."""

    code: int
    out: str
    err: str

    def json(self):
        """stdout parsed as JSON."""
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own runs dir and data dir, and never touches the network."""
    monkeypatch.setenv("NNLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("NNLAB_FAULT_NAN_AT_STEP", raising=False)
    yield


@pytest.fixture
def runs(tmp_path):
    """The runs dir of this test."""
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A few tiny runs shared by the rendering tests: VAE beta 1 and 10, latent3, linear."""
    root = tmp_path_factory.mktemp("store")

    def train(*args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("NNLAB_OFFLINE", "1")
                cli.main(["train", *args, *FAST, f"--runs_dir={root}"])
        return out.getvalue().strip()

    runs = {
        "vae": train("vae", "--snapshot_every=20", "--seed=3"),
        "vae10": train("vae", "--snapshot_every=20", "--seed=3", "--beta=10"),
        "l3": train("classifier", "--preset=latent3", "--epochs=2", "--snapshot_every=60"),
        "lin": train("classifier", "--preset=linear-mse", "--epochs=1"),
        "off": train("vae", "--snapshot_every=0"),
        "wide": train("classifier", "--preset=nielsen", "--epochs=1", "--snapshot_every=120"),
    }
    return root, runs


FIXTURE_STORE = Path(__file__).parent / "fixtures" / "store-format1"  # frozen: format 1
FIXTURE_VAE = "vae-20261129-022720-format1"
FIXTURE_CLS = "classifier-20261129-022729-format1"


@pytest.fixture
def store(runs):
    """This test's runs dir, a copy of the frozen format-1 store (a VAE and a classifier)."""
    shutil.copytree(FIXTURE_STORE, runs)
    return runs


def run_nnlab(*args: str) -> Result:
    """`nnlab ARGS...` in this process: Result(code, out, err) (for module fixtures too)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def nnlab():
    """Run `nnlab ARGS...` in this process; returns Result(code, out, err)."""
    return run_nnlab


def digests(root) -> dict[str, str]:
    """sha256 of every file under root, by relative path: what a command must not change."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_shapes(folder, per_class: int = 200, size: int = 32, seed: int = 0) -> None:
    """Three classes of noisy size x size RGB PNGs in class folders: red squares, green
    discs, blue triangles, each of random size and place on a random dark background."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for cls, colour in (("square", 0), ("disc", 1), ("triangle", 2)):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(size, size, 3)).astype(np.float64)
            r = rng.integers(size // 6, size // 3)
            cy, cx = rng.integers(r, size - r, size=2)
            if cls == "square":
                mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            elif cls == "disc":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - cy + r) / 2)
            img[mask, colour] = rng.integers(170, 256)
            img += rng.normal(0, 12, img.shape)
            pixels = np.clip(img, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / cls / f"{i:04d}.png")


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A folder of 600 generated 32x32 colour images in three classes."""
    folder = tmp_path_factory.mktemp("shapes")
    write_shapes(folder)
    return folder


@pytest.fixture(scope="session")
def searched(tmp_path_factory):
    """A finished search of 6 trials, two workers: (runs dir, sweep id, stderr); shared by
    the search's tests and the read API's."""
    pytest.importorskip("optuna")
    from tests.test_reliability import _spawn
    from tests.test_search import SEARCH

    runs = tmp_path_factory.mktemp("search") / "runs"
    p = _spawn([*SEARCH, "--trials=6", "--jobs=2"], runs)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return runs, out.strip(), err
