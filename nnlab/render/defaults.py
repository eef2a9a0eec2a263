"""The picture options that both the command line and the Python API take, declared once
(`nnlab animate`'s help page, its parse and `Run.animate()` read this dataclass; it imports
no drawing code, so a help page loads none)."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import option


def projection_option():
    """--projection, an option of animate and report."""
    return option(
        None,
        "draw the layer through a 2-D embedding kept in the run: pca, tsne or umap (nnlab project)",
        choices="nnlab.analysis.projection:METHODS",
    )


@dataclass(frozen=True)
class AnimateOptions:
    """`nnlab animate`, `Run.animate()` and `Run.figure()`: what to draw and how."""

    kind: str = option(
        "auto",
        "what to draw (auto: densities for a 2-D VAE)",
        choices="nnlab.render.sources:KINDS",
    )
    classes: str | None = option(  # numbers or names: read against the run's classes
        None, "the classes to show, by number or name: 0,4,9 or Shirt,Coat (default: all)"
    )
    fps: float = option(
        10, "frames per second of the GIF", convert="nnlab.helpers.options:positive_number"
    )
    every: int | None = option(
        None,
        "draw every K-th snapshot, always ending on the last (default: as many as keep the "
        "GIF at 150 frames or fewer)",
        convert="nnlab.helpers.options:positive_int",
    )
    out: str | None = option(None, "the GIF's path (default <run>/media/)")
    compare: tuple[str, ...] | None = option(
        None,
        "other runs drawn side by side (comma-separated, or the option repeated)",
        repeat=True,
        convert="nnlab.render.defaults:run_ids",
    )
    dpi: int = option(
        100, "pixels per inch of a 5.6-inch panel", convert="nnlab.helpers.options:positive_int"
    )
    projection: str | None = projection_option()
    layer: str | None = option(
        None,
        "draw another layer that --record_layers kept (e.g. h1, conv2) as the recorded one is "
        "drawn (default: the recorded layer)",
    )


def run_ids(text: str, name: str) -> tuple[str, ...]:
    """--compare as typed (comma-separated ids) into the ids; none at all is a mistake
    (e.g. --compare="$id" with id unset), said in one line."""
    ids = tuple(i for i in text.split(",") if i)
    if not ids:
        raise NnlabError(f"--{name}: give the run ids to draw beside RUN_ID, e.g. --{name}=ID")
    return ids
