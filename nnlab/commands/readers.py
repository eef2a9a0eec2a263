"""The commands that read the run store: summary, animate, masks, embed, decode, export and
report, each a thin function (parse, call one library function, return text) and its
declaration (nnlab.commands.command)."""

from __future__ import annotations

import sys

from nnlab.commands.command import Command, Option, Positional
from nnlab.helpers import options
from nnlab.helpers.errors import NnlabError
from nnlab.render.defaults import ANIMATE

RUNS_DIR = Option("runs_dir", None, str, "the run store (default ./runs, or $NNLAB_RUNS)")
PROJECTION = Option(
    "projection",
    None,
    str,
    "draw the layer through a 2-D embedding kept in the run: pca, tsne or umap (nnlab project)",
    choices="nnlab.analysis.projection:METHODS",
)
CHECKPOINT = Option("checkpoint", None, str, "latest, final, epoch-N or a path [default: latest]")


def summary(run_id: str | None = None, *, json, plot, runs_dir) -> str:
    """Show the runs table, or one run: config, parameters, metrics, latent metrics.

    Without RUN_ID: one line per run (tab-separated when stdout is not a terminal). With
    RUN_ID: the run's config, parameter table, final and best metrics, latent metrics at
    the start, middle and end of the recording, timings and contents.
    """
    from nnlab.commands import summary as summary_mod

    return summary_mod.summarize(
        run_id,
        runs_dir,
        as_json=options.parse_bool(json, "json"),
        color=sys.stdout.isatty(),
        plot=options.parse_bool(plot, "plot"),
    )


def _required_id(run_id, command: str) -> str:
    """The run id a command needs, with a one-line error when it is missing."""
    if run_id is None:
        raise NnlabError(f"give a run id: nnlab {command} RUN_ID (or latest)")
    return run_id


def animate(
    run_id: str | None = None,
    *,
    kind,
    classes,
    fps,
    every,
    out,
    compare,
    dpi,
    projection,
    runs_dir,
):
    """Write a GIF of a run's latent space over training, and its last frame as PNG.

    One frame per recorded snapshot: class densities for a VAE with a 2-D latent, points
    otherwise (a turning cube for 3-D, principal components beyond). Prints the paths.
    """
    from nnlab.render.animate import animate as animate_run

    others = [o for o in (compare or "").split(",") if o]
    if compare is not None and not others:  # e.g. --compare="$id" with id unset: say so
        raise NnlabError("--compare: give the run ids to draw beside RUN_ID, e.g. --compare=ID")
    twice = next((o for i, o in enumerate(others) if o in (run_id, *others[:i])), None)
    if twice is not None:  # it would be drawn twice, side by side with itself
        raise NnlabError(f"--compare: {twice} is drawn already; name each run once")
    paths = animate_run(
        _required_id(run_id, "animate"),
        runs_dir,
        kind=kind,
        classes=classes,
        fps=fps,
        every=every,
        out=out,
        compare=others,
        dpi=dpi,
        projection=projection,
    )
    return "\n".join(paths)


def project(run_id: str | None = None, *, method, points, every, runs_dir) -> str:
    """Embed a run's recorded layer in 2-D at its snapshots, kept in the run.

    Each frame continues from the last (t-SNE, UMAP) or all share one basis (PCA);
    animate --projection and report draw them. Prints the path of the kept coordinates.
    """
    from nnlab.render.sources import project as project_run

    return project_run(
        _required_id(run_id, "project"), runs_dir, method=method, points=points, every=every
    )


def masks(run_id: str | None = None, *, out, units, checkpoint, runs_dir) -> str:
    """Write a classifier's first-layer weights as 28x28 masks: a GIF and a PNG grid.

    Prints the written paths.
    """
    from nnlab.render.masks import masks as write_masks

    paths = write_masks(
        _required_id(run_id, "masks"), runs_dir, out=out, units=units, checkpoint=checkpoint
    )
    return "\n".join(paths)


def embed(run_id: str | None = None, *, split, checkpoint, layer, format, task, runs_dir):
    """Encode a whole split with a run's model and write latents, labels and indices.

    Prints the file's path; for a VAE, the mean KL per latent dimension goes to stderr.
    """
    from nnlab.training.embed import embed as embed_split

    return embed_split(
        _required_id(run_id, "embed"),
        runs_dir,
        split=split,
        checkpoint=checkpoint,
        layer=layer,
        fmt=format,
        task=task,
    )


def decode(run_id: str | None = None, *, checkpoint, out, between, over_training, runs_dir):
    """Write a VAE's decoder views: manifold, reconstructions, samples, interpolation.

    The latent manifold (a grid over [-3, 3]^2 decoded), reconstructions of one test image
    per class, 64 samples from the prior, and the interpolation between two test images
    (strip and GIF). Prints the written paths.
    """
    from nnlab.render.decode import decode as decode_run

    paths = decode_run(
        _required_id(run_id, "decode"),
        runs_dir,
        checkpoint=checkpoint,
        out=out,
        between=between,
        over_training=options.parse_bool(over_training, "over_training"),
    )
    return "\n".join(paths)


def export(run_id: str | None = None, *, to, logdir, snapshots, force, runs_dir) -> str:
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
        runs_dir,
        to=to,
        logdir=logdir,
        snapshots=snapshots,
        force=options.parse_bool(force, "force"),
    )


def report(*run_ids: str, out, points, projection, runs_dir) -> str:
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
    return write_report(list(run_ids), runs_dir, out=out, points=points, projection=projection)


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
            (
                Option("json", False, bool, "print the same as JSON"),
                Option(
                    "plot",
                    False,
                    bool,
                    "write <run>/media/metrics.png (losses and latent metrics against step) and "
                    "print its path",
                ),
                RUNS_DIR,
            ),
        ),
        Command(
            "animate",
            animate,
            Positional("run_id", "RUN_ID", "the run to draw (or latest)"),
            (
                Option(
                    "kind",
                    ANIMATE["kind"],
                    str,
                    "what to draw (auto: densities for a 2-D VAE)",
                    choices="nnlab.render.sources:KINDS",
                ),
                Option("classes", None, str, "the classes to show, e.g. 0,4,9 (default: all)"),
                Option("fps", ANIMATE["fps"], float, "frames per second of the GIF"),
                Option(
                    "every",
                    None,
                    int,
                    "draw every K-th snapshot, always ending on the last (default: as many as "
                    "keep the GIF at 150 frames or fewer)",
                ),
                Option("out", None, str, "the GIF's path (default <run>/media/)"),
                Option(
                    "compare",
                    None,
                    str,
                    "other runs drawn side by side (comma-separated, or the option repeated)",
                    repeat=True,
                ),
                Option("dpi", ANIMATE["dpi"], int, "pixels per inch of a 5.6-inch panel"),
                PROJECTION,
                RUNS_DIR,
            ),
        ),
        Command(
            "project",
            project,
            Positional("run_id", "RUN_ID", "the run whose recorded layer to embed (or latest)"),
            (
                Option(
                    "method",
                    "tsne",
                    str,
                    "pca, tsne (pip install openTSNE) or umap (pip install umap-learn)",
                    choices="nnlab.analysis.projection:METHODS",
                ),
                Option(
                    "points",
                    2000,
                    int,
                    "probe images embedded (a class-stratified subsample, the same in every frame)",
                ),
                Option(
                    "every",
                    None,
                    int,
                    "embed every K-th snapshot, always ending on the last (default: at most "
                    "100 frames)",
                ),
                RUNS_DIR,
            ),
        ),
        Command(
            "masks",
            masks,
            Positional("run_id", "RUN_ID", "a classifier run (or latest)"),
            (
                Option("out", None, str, "the folder to write to (default <run>/media/)"),
                Option("units", None, str, "the units to show, e.g. 0,3,7 (default: all)"),
                CHECKPOINT,
                RUNS_DIR,
            ),
        ),
        Command(
            "embed",
            embed,
            Positional("run_id", "RUN_ID", "the run whose model encodes (or latest)"),
            (
                Option(
                    "split",
                    "test",
                    str,
                    "the split to encode",
                    choices="nnlab.training.embed:SPLITS",
                ),
                CHECKPOINT,
                Option(
                    "layer",
                    None,
                    int,
                    "classifier only: the layer to record, an index into sizes (default: the "
                    "recorded layer)",
                ),
                Option(
                    "format", "npz", str, "the file format", choices="nnlab.training.embed:FORMATS"
                ),
                Option(
                    "task",
                    None,
                    int,
                    "runs with permute_every: show the images as this task permutes them "
                    "(default: the checkpoint's own task)",
                ),
                RUNS_DIR,
            ),
        ),
        Command(
            "decode",
            decode,
            Positional("run_id", "RUN_ID", "a VAE run (or latest)"),
            (
                CHECKPOINT,
                Option("out", None, str, "the folder to write to (default <run>/media/)"),
                Option(
                    "between",
                    None,
                    str,
                    "two test image indices to interpolate, e.g. 4,9 (default: the first 4 and "
                    "the first 9)",
                ),
                Option(
                    "over_training",
                    False,
                    bool,
                    "also the manifold at every saved checkpoint, as a GIF",
                ),
                RUNS_DIR,
            ),
        ),
        Command(
            "export",
            export,
            Positional("run_id", "RUN_ID", "a run or a sweep (or latest)"),
            (
                Option(
                    "to",
                    "tensorboard",
                    str,
                    'what to export to (pip install -e ".[tensorboard]")',
                    choices="nnlab.render.export:TARGETS",
                ),
                Option(
                    "logdir", None, str, "where to write (default <run or sweep>/media/tensorboard)"
                ),
                Option(
                    "snapshots",
                    "first,middle,last",
                    str,
                    "the projector's snapshots: first, middle, last, or recorded steps",
                ),
                Option("force", False, bool, "replace an earlier export at the same place"),
                RUNS_DIR,
            ),
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
            (
                Option(
                    "out",
                    None,
                    str,
                    "the page's path, ending in .html (default <first run or sweep>/media/"
                    "report.html)",
                ),
                Option(
                    "points",
                    1000,
                    int,
                    "probe images drawn (a class-stratified subsample of the recording)",
                ),
                PROJECTION,
                RUNS_DIR,
            ),
        ),
    )
}
