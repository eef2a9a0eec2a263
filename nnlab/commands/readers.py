"""The commands that read the run store: summary, animate, project, layers, masks, embed,
decode, export and report, each a thin function (parse, call one library function, return
text) and its declaration (nnlab.commands.command)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from nnlab.commands.command import Command, Positional
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import option
from nnlab.render.defaults import AnimateOptions, projection_option

POSITIVE = "nnlab.helpers.options:positive_int"


def runs_dir(**extra):
    """--runs_dir, an option of every command."""
    return option(None, "the run store (default ./runs, or $NNLAB_RUNS)", **extra)


def _checkpoint():
    return option(None, "latest, final, epoch-N or a path [default: latest]")


@dataclass(frozen=True)
class SummaryOptions:
    json: bool = option(False, "print the same as JSON")
    plot: bool = option(
        False,
        "write <run>/media/metrics.png (losses and latent metrics against step) and print its path",
    )
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class AnimateCommandOptions(AnimateOptions):
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class ProjectOptions:
    method: str = option(
        "tsne",
        "pca, tsne (pip install openTSNE) or umap (pip install umap-learn)",
        choices="nnlab.analysis.projection:METHODS",
    )
    points: int = option(
        2000,
        "probe images embedded (a class-stratified subsample, the same in every frame)",
        convert=POSITIVE,
    )
    every: int | None = option(
        None,
        "embed every K-th snapshot, always ending on the last (default: at most 100 frames)",
        convert=POSITIVE,
    )
    layer: str | None = option(
        None, "embed another layer that --record_layers kept (default: the recorded layer)"
    )
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class LayersOptions:
    measure: str = option(
        "probe",
        "the heatmap's measure: probe (a linear probe's accuracy), ncm (nearest class mean), "
        "cka_final (linear CKA to the layer's final state)",
        choices="nnlab.render.layers:CHOICES",
    )
    json: bool = option(False, "print every measure at every measured snapshot as JSON instead")
    out: str | None = option(None, "the folder to write to (default <run>/media/)")
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class MasksOptions:
    out: str | None = option(None, "the folder to write to (default <run>/media/)")
    # the units a layer has depend on the run: the text typed, read against it
    units: str | None = option(None, "the units to show, e.g. 0,3,7 (default: all)")
    checkpoint: str | None = _checkpoint()
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class EmbedOptions:
    split: str = option("test", "the split to encode", choices="nnlab.training.embed:SPLITS")
    checkpoint: str | None = _checkpoint()
    # an index into sizes, or a conv layer's name: read against the run
    layer: str | None = option(
        None,
        "classifier only: the layer to record, an index into sizes (default: the recorded layer)",
        metavar="INT",
    )
    format: str = option("npz", "the file format", choices="nnlab.training.embed:FORMATS")
    task: str | None = option(  # a task number of this run: read against it
        None,
        "runs with permute_every: show the images as this task permutes them (default: the "
        "checkpoint's own task)",
        metavar="INT",
    )
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class DecodeOptions:
    checkpoint: str | None = _checkpoint()
    out: str | None = option(None, "the folder to write to (default <run>/media/)")
    between: str | None = option(  # test-set indices: read against the run's test split
        None,
        "two test image indices to interpolate, e.g. 4,9 (default: the first 4 and the first 9)",
    )
    over_training: bool = option(False, "also the manifold at every saved checkpoint, as a GIF")
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class ExportOptions:
    to: str = option(
        "tensorboard",
        'what to export to (pip install -e ".[tensorboard]")',
        choices="nnlab.render.export:TARGETS",
    )
    logdir: str | None = option(None, "where to write (default <run or sweep>/media/tensorboard)")
    snapshots: str = option(  # recorded steps: read against the run
        "first,middle,last", "the projector's snapshots: first, middle, last, or recorded steps"
    )
    force: bool = option(False, "replace an earlier export at the same place")
    runs_dir: str | None = runs_dir()


@dataclass(frozen=True)
class ReportOptions:
    out: str | None = option(
        None,
        "the page's path, ending in .html (default <first run or sweep>/media/report.html)",
    )
    points: int = option(
        1000,
        "probe images drawn (a class-stratified subsample of the recording)",
        convert="nnlab.render.report:page_points",
    )
    projection: str | None = projection_option()
    runs_dir: str | None = runs_dir()


def summary(run_id: str | None = None, *, opts: SummaryOptions) -> str:
    """Show the runs table, or one run: config, parameters, metrics, latent metrics.

    Without RUN_ID: one line per run (tab-separated when stdout is not a terminal). With
    RUN_ID: the run's config, parameter table, final and best metrics, latent metrics at
    the start, middle and end of the recording, timings and contents.
    """
    from nnlab.commands import summary as summary_mod

    return summary_mod.summarize(
        run_id, opts.runs_dir, as_json=opts.json, color=sys.stdout.isatty(), plot=opts.plot
    )


def _required_id(run_id, command: str) -> str:
    """The run id a command needs, with a one-line error when it is missing."""
    if run_id is None:
        raise NnlabError(f"give a run id: nnlab {command} RUN_ID (or latest)")
    return run_id


def animate(run_id: str | None = None, *, opts: AnimateCommandOptions) -> str:
    """Write a GIF of a run's latent space over training, and its last frame as PNG.

    One frame per recorded snapshot: class densities for a VAE with a 2-D latent, points
    otherwise (a turning cube for 3-D, principal components beyond). Prints the paths.
    """
    from nnlab.render.animate import animate as animate_run

    others = opts.compare or ()
    twice = next((o for i, o in enumerate(others) if o in (run_id, *others[:i])), None)
    if twice is not None:  # it would be drawn twice, side by side with itself
        raise NnlabError(f"--compare: {twice} is drawn already; name each run once")
    return "\n".join(animate_run(_required_id(run_id, "animate"), opts.runs_dir, opts))


def project(run_id: str | None = None, *, opts: ProjectOptions) -> str:
    """Embed a run's recorded layer in 2-D at its snapshots, kept in the run.

    Each frame continues from the last (t-SNE, UMAP) or all share one basis (PCA);
    animate --projection and report draw them. Prints the path of the kept coordinates.
    """
    from nnlab.render.sources import project as project_run

    return project_run(
        _required_id(run_id, "project"),
        opts.runs_dir,
        method=opts.method,
        points=opts.points,
        every=opts.every,
        layer=opts.layer,
    )


def layers(run_id: str | None = None, *, opts: LayersOptions) -> str:
    """Draw how every recorded layer forms over training (--record_layers runs).

    Writes layers-<measure>.png (a layer x step heatmap, each layer's CKA to its final
    state, the CKA matrix between layers, neural collapse) and layers-cka.gif (the CKA
    matrix over training), and prints their paths; --json prints the measures instead.
    """
    from nnlab.render import layers as layer_pictures

    run_id = _required_id(run_id, "layers")
    if opts.json:
        import json

        _, measured = layer_pictures.measures_of(run_id, opts.runs_dir)
        return json.dumps(measured)
    paths = layer_pictures.draw(run_id, opts.runs_dir, measure=opts.measure, out=opts.out)
    return "\n".join(paths)


def masks(run_id: str | None = None, *, opts: MasksOptions) -> str:
    """Write a classifier's first-layer weights as 28x28 masks: a GIF and a PNG grid.

    Prints the written paths.
    """
    from nnlab.render.masks import masks as write_masks

    paths = write_masks(
        _required_id(run_id, "masks"),
        opts.runs_dir,
        out=opts.out,
        units=opts.units,
        checkpoint=opts.checkpoint,
    )
    return "\n".join(paths)


def embed(run_id: str | None = None, *, opts: EmbedOptions):
    """Encode a whole split with a run's model and write latents, labels and indices.

    Prints the file's path; for a VAE, the mean KL per latent dimension goes to stderr.
    """
    from nnlab.training.embed import embed as embed_split

    return embed_split(
        _required_id(run_id, "embed"),
        opts.runs_dir,
        split=opts.split,
        checkpoint=opts.checkpoint,
        layer=opts.layer,
        fmt=opts.format,
        task=opts.task,
    )


def decode(run_id: str | None = None, *, opts: DecodeOptions):
    """Write a VAE's decoder views: manifold, reconstructions, samples, interpolation.

    The latent manifold (a grid over [-3, 3]^2 decoded), reconstructions of one test image
    per class, 64 samples from the prior, and the interpolation between two test images
    (strip and GIF). Prints the written paths.
    """
    from nnlab.render.decode import decode as decode_run

    paths = decode_run(
        _required_id(run_id, "decode"),
        opts.runs_dir,
        checkpoint=opts.checkpoint,
        out=opts.out,
        between=opts.between,
        over_training=opts.over_training,
    )
    return "\n".join(paths)


def export(run_id: str | None = None, *, opts: ExportOptions) -> str:
    """Export a run, or every point of a sweep, from the store to TensorBoard.

    Writes event files: every scalar of metrics.jsonl, the latent metrics of every
    snapshot, the latent space at chosen snapshots as projector embeddings (a stratified
    subsample of at most 2,000 probe images, with labels and a sprite of the images), the
    animation's frames and a classifier's masks as images; for a sweep, one TensorBoard run
    per point and the HParams table. Prints the log folder: tensorboard --logdir=IT.
    """
    from nnlab.render.export import export as export_item

    return export_item(
        _required_id(run_id, "export"),
        opts.runs_dir,
        to=opts.to,
        logdir=opts.logdir,
        snapshots=opts.snapshots,
        force=opts.force,
    )


def report(*run_ids: str, opts: ReportOptions) -> str:
    """Write one self-contained HTML page to explore runs in a browser; print its path.

    A step slider (with play/pause and speed) moves every panel at once: the probe images'
    latent points at that snapshot (class densities for a 2-D VAE, a cube to turn for 3-D,
    principal components beyond), hover for an image and its label, click a class to hide
    it, images drawn at their places; the metric plots follow the slider, and the masks or
    the decoded manifold show the nearest kept checkpoint. Several runs (or a sweep's
    points) sit side by side, aligned by step or by fraction of training. A wide layer is
    drawn through the t-SNE or UMAP `nnlab project` kept in the run (or --projection). The
    page needs no network: data and script are inside it.
    """
    from nnlab.render.report import report as write_report

    if not run_ids:
        raise NnlabError("give a run id: nnlab report RUN_ID|SWEEP_ID [RUN_ID ...] (or latest)")
    return write_report(
        list(run_ids), opts.runs_dir, out=opts.out, points=opts.points, projection=opts.projection
    )


COMMANDS = {
    c.name: c
    for c in (
        Command(
            "summary",
            summary,
            Positional(
                "run_id",
                "RUN_ID",
                "the run to describe (or latest); none for the table of all runs",
                optional=True,
            ),
            SummaryOptions,
        ),
        Command(
            "animate",
            animate,
            Positional("run_id", "RUN_ID", "the run to draw (or latest)"),
            AnimateCommandOptions,
        ),
        Command(
            "project",
            project,
            Positional("run_id", "RUN_ID", "the run whose recorded layer to embed (or latest)"),
            ProjectOptions,
        ),
        Command(
            "layers",
            layers,
            Positional("run_id", "RUN_ID", "a run trained with --record_layers (or latest)"),
            LayersOptions,
        ),
        Command(
            "masks",
            masks,
            Positional("run_id", "RUN_ID", "a classifier run (or latest)"),
            MasksOptions,
        ),
        Command(
            "embed",
            embed,
            Positional("run_id", "RUN_ID", "the run whose model encodes (or latest)"),
            EmbedOptions,
        ),
        Command(
            "decode", decode, Positional("run_id", "RUN_ID", "a VAE run (or latest)"), DecodeOptions
        ),
        Command(
            "export",
            export,
            Positional("run_id", "RUN_ID", "a run or a sweep (or latest)"),
            ExportOptions,
        ),
        Command(
            "report",
            report,
            Positional(
                "run_ids",
                "RUN_ID|SWEEP_ID [RUN_ID ...]",
                "one or more runs, or a sweep (or latest)",
                many=True,
            ),
            ReportOptions,
        ),
    )
}
