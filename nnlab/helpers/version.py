"""nnlab's version, below every layer so that any module can name it (the package root,
the public facade on top of the layers, re-exports it as nnlab.__version__)."""

VERSION = "0.1.0"  # as pyproject.toml's
