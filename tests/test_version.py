"""nnlab's version: one number, the same in the package, its metadata and pyproject.toml."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import tomllib

import nnlab
from nnlab.helpers.version import VERSION


def test_one_version_everywhere():
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert nnlab.__version__ == VERSION == declared == metadata.version("nnlab")
