"""The nnlab command line: thin commands (parse, call one library function, return text).

Fire dispatches the commands. The whole command line is checked before Fire runs one
(unknown options, stray arguments), help pages come from nnlab.commands.help, and since Fire
guesses types from the text typed (`007` becomes 7), options are re-read from the raw
argument list and converted by nnlab.helpers.options. Heavy libraries (torch, matplotlib) are
imported inside the commands that need them.
"""

from __future__ import annotations

import inspect
import sys

from nnlab import __version__, families
from nnlab.helpers import options
from nnlab.helpers.errors import NnlabError, TrainingStopped, did_you_mean

_RAW_ARGV: list[str] | None = None  # the argument list main() was given, for raw flag values
HELP_FLAGS = ("--help", "-h")


def _tokens() -> list[str] | None:
    """The current command's arguments as typed (None when called from Python, not main)."""
    return None if _RAW_ARGV is None else _RAW_ARGV[1:]


def train(model: str | None = None, **flags):
    """Train a model and print the new run id on stdout; progress goes to stderr.

    MODEL is classifier or vae. A config starts from the model's defaults, then a preset or
    a YAML file, then any config field given as --FIELD=VALUE (e.g. --beta=10 --epochs=3
    --hidden_dims=256,128 --dataset=fashion-mnist --name=mytag). The resolved config is
    validated before anything is written and saved with the run.
    """
    from nnlab.commands import train as train_mod

    return train_mod.command(model, options.raw_flags(_tokens(), flags))


def sweep(model: str | None = None, **flags):
    """Train a grid of configs, each point an ordinary run; print the sweep id on stdout.

    MODEL and --preset/--config as for train. A flag with several values is swept:
    --beta=1,10 --seed=0,1,2 is a grid of 6 points; a list field is swept as bracketed
    groups (--hidden_dims=[256,128],[512]); a flag with one value is fixed for every
    point. Every point is validated before anything runs. Each point becomes the run
    <sweep id>-p<k>; the sweep's record is <runs>/<sweep id>/sweep.json, each point's
    progress is in its logs/ folder, and the sweep's progress goes to stderr. Ctrl-C stops
    every point cleanly; --resume SWEEP_ID goes on where it stopped.

    Args:
        model: classifier or vae
        preset: a preset to start from, as for train
        config: a YAML config file to start from, as for train
        jobs: local worker processes (default: one per core; torch threads are split
            between them)
        executor: {local,ray} run points as local processes, or as tasks on a Ray cluster
            (pip install -e ".[ray]"; the runs directory must be on storage every node sees)
        address: the Ray cluster: auto or HOST:PORT (ray start --head prints it)
        retries: times a killed worker's point is resumed before it counts as failed
        dry_run: print the plan (one row per point) and write nothing
        yes: allow a grid of more than 10,000 points
        resume: a sweep to go on with: finished points are skipped, interrupted ones
            resumed from their checkpoints, the rest started
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.commands import sweep as sweep_mod

    tokens = _tokens()
    return sweep_mod.command(model, options.raw_flag_list(tokens, flags), tokens)


def summary(
    run_id: str | None = None,
    json: bool = False,
    plot: bool = False,
    runs_dir: str | None = None,
):
    """Show the runs table, or one run: config, parameters, metrics, latent metrics.

    Without RUN_ID: one line per run (tab-separated when stdout is not a terminal). With
    RUN_ID: the run's config, parameter table, final and best metrics, latent metrics at
    the start, middle and end of the recording, timings and contents.

    Args:
        run_id: the run to describe (or latest); none for the table of all runs
        json: print the same as JSON
        plot: write <run>/media/metrics.png (losses and latent metrics against step) and
            print its path
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.commands import summary as summary_mod

    return summary_mod.summarize(
        options.run_id_text(run_id),
        runs_dir,
        as_json=options.parse_bool(json, "json"),
        color=sys.stdout.isatty(),
        plot=options.parse_bool(plot, "plot"),
    )


def _required_id(run_id, command: str) -> str:
    """The run id a command needs, with a one-line error when it is missing."""
    if run_id is None:
        raise NnlabError(f"give a run id: nnlab {command} RUN_ID (or latest)")
    return options.run_id_text(run_id)


def animate(
    run_id: str | None = None,
    kind: str = "auto",
    classes: str | None = None,
    fps: float = 10,
    every: int | None = None,
    out: str | None = None,
    compare: str | None = None,
    dpi: int = 100,
    runs_dir: str | None = None,
):
    """Write a GIF of a run's latent space over training, and its last frame as PNG.

    One frame per recorded snapshot: class densities for a VAE with a 2-D latent, points
    otherwise (a turning cube for 3-D, principal components beyond). Prints the paths.

    Args:
        run_id: the run to draw (or latest)
        kind: {auto,density,scatter} what to draw (auto: densities for a 2-D VAE)
        classes: the classes to show, e.g. 0,4,9 (default: all)
        fps: frames per second of the GIF
        every: draw every K-th snapshot, always ending on the last (default: as many as
            keep the GIF at 150 frames or fewer)
        out: the GIF's path (default <run>/media/)
        compare: other runs drawn side by side (comma-separated, or the option repeated)
        dpi: pixels per inch of a 5.6-inch panel
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.render.animate import animate as animate_run

    typed = options.raw_values(_tokens(), "compare", compare)
    others = [o for text in typed for o in text.split(",") if o]
    if typed and not others:  # e.g. --compare="$id" with id unset: say so, not a 1-panel GIF
        raise NnlabError("--compare: give the run ids to draw beside RUN_ID, e.g. --compare=ID")
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
    )
    return "\n".join(paths)


def masks(
    run_id: str | None = None,
    out: str | None = None,
    units: str | None = None,
    checkpoint: str | None = None,
    runs_dir: str | None = None,
):
    """Write a classifier's first-layer weights as 28x28 masks: a GIF and a PNG grid.

    Prints the written paths.

    Args:
        run_id: a classifier run (or latest)
        out: the folder to write to (default <run>/media/)
        units: the units to show, e.g. 0,3,7 (default: all)
        checkpoint: latest, final, epoch-N or a path [default: latest]
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.render.masks import masks as write_masks

    paths = write_masks(
        _required_id(run_id, "masks"),
        runs_dir,
        out=out,
        units=units,
        checkpoint=options.text_or_none(checkpoint),
    )
    return "\n".join(paths)


def embed(
    run_id: str | None = None,
    split: str = "test",
    checkpoint: str | None = None,
    layer: int | None = None,
    format: str = "npz",
    task: int | None = None,
    runs_dir: str | None = None,
):
    """Encode a whole split with a run's model and write latents, labels and indices.

    Prints the file's path; for a VAE, the mean KL per latent dimension goes to stderr.

    Args:
        run_id: the run whose model encodes (or latest)
        split: {test,train,val} the split to encode
        checkpoint: latest, final, epoch-N or a path [default: latest]
        layer: classifier only: the layer to record, an index into sizes (default: the
            recorded layer)
        format: {npz,csv} the file format
        task: runs with permute_every: show the images as this task permutes them
            (default: the checkpoint's own task)
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.training.embed import embed as embed_split

    return embed_split(
        _required_id(run_id, "embed"),
        runs_dir,
        split=str(split),
        checkpoint=options.text_or_none(checkpoint),
        layer=layer,
        fmt=str(format),
        task=task,
    )


def decode(
    run_id: str | None = None,
    checkpoint: str | None = None,
    out: str | None = None,
    between: str | None = None,
    over_training: bool = False,
    runs_dir: str | None = None,
):
    """Write a VAE's decoder views: manifold, reconstructions, samples, interpolation.

    The latent manifold (a grid over [-3, 3]^2 decoded), reconstructions of one test image
    per class, 64 samples from the prior, and the interpolation between two test images
    (strip and GIF). Prints the written paths.

    Args:
        run_id: a VAE run (or latest)
        checkpoint: latest, final, epoch-N or a path [default: latest]
        out: the folder to write to (default <run>/media/)
        between: two test image indices to interpolate, e.g. 4,9 (default: the first 4
            and the first 9)
        over_training: also the manifold at every saved checkpoint, as a GIF
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.render.decode import decode as decode_run

    paths = decode_run(
        _required_id(run_id, "decode"),
        runs_dir,
        checkpoint=options.text_or_none(checkpoint),
        out=out,
        between=between,
        over_training=options.parse_bool(over_training, "over_training"),
    )
    return "\n".join(paths)


def export(
    run_id: str | None = None,
    to: str = "tensorboard",
    logdir: str | None = None,
    snapshots: str = "first,middle,last",
    force: bool = False,
    runs_dir: str | None = None,
):
    """Export a run, or every point of a sweep, from the store to TensorBoard.

    Writes event files: every scalar of metrics.jsonl, the latent metrics of every
    snapshot, the latent space at chosen snapshots as projector embeddings (a stratified
    subsample of at most 2,000 probe images, with labels and a sprite of the images), the
    animation's frames and a classifier's masks as images; for a sweep, one TensorBoard run
    per point and the HParams table. Prints the log folder: tensorboard --logdir=IT.

    Args:
        run_id: a run or a sweep (or latest)
        to: {tensorboard} what to export to (pip install -e ".[tensorboard]")
        logdir: where to write (default <run or sweep>/media/tensorboard)
        snapshots: the projector's snapshots: first, middle, last, or recorded steps
        force: replace an earlier export at the same place
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.render.export import export as export_item

    typed = options.raw_values(_tokens(), "snapshots", snapshots)
    return export_item(
        _required_id(run_id, "export"),
        runs_dir,
        to=str(to),
        logdir=logdir,
        snapshots=typed[-1] if typed else str(snapshots),
        force=options.parse_bool(force, "force"),
    )


def report(
    *run_ids: str,
    out: str | None = None,
    points: int = 1000,
    runs_dir: str | None = None,
):
    """Write one self-contained HTML page to explore runs in a browser; print its path.

    A step slider (with play/pause and speed) moves every panel at once: the probe images'
    latent points at that snapshot (class densities for a 2-D VAE, a cube to turn for 3-D,
    principal components beyond), hover for an image and its label, click a class to hide
    it, images drawn at their places; the metric plots follow the slider, and the masks or
    the decoded manifold show the nearest kept checkpoint. Several runs (or a sweep's
    points) sit side by side, aligned by step or by fraction of training. The page needs
    no network: data and script are inside it.

    Args:
        run_ids: one or more runs, or a sweep (or latest)
        out: the page's path, ending in .html (default <first run or sweep>/media/report.html)
        points: probe images drawn (a class-stratified subsample of the recording)
        runs_dir: the run store (default ./runs, or $NNLAB_RUNS)
    """
    from nnlab.render.report import report as write_report

    ids = [options.run_id_text(r) for r in run_ids]
    if not ids:
        raise NnlabError("give a run id: nnlab report RUN_ID|SWEEP_ID [RUN_ID ...] (or latest)")
    return write_report(ids, runs_dir, out=options.text_or_none(out), points=points)


COMMANDS = {
    "train": train,
    "sweep": sweep,
    "summary": summary,
    "animate": animate,
    "masks": masks,
    "embed": embed,
    "decode": decode,
    "export": export,
    "report": report,
}


def help_text(argv: list[str]) -> str | None:
    """The help page asked for by argv (--help or -h anywhere), or None."""
    from nnlab.commands import help as pages

    before = argv[: argv.index("--")] if "--" in argv else argv  # after it: not ours
    if not any(t in HELP_FLAGS for t in before):
        return None
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if command == "train":
        model = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
        if model is not None:
            families.get(model)  # an unknown model: one line with a suggestion
        return pages.train_page(model, train)
    if command == "sweep":
        return pages.sweep_page(sweep)
    if command:
        return pages.command_page(command, COMMANDS[command])
    return pages.overview(COMMANDS)


def check_command_line(command: str, tokens: list[str]) -> None:
    """Refuse, before anything runs, what Fire would take up only after the work is done
    (or never): unknown options, stray arguments, Fire's own separators."""
    params = inspect.signature(COMMANDS[command]).parameters
    slots = [n for n in ("model", "run_id") if n in params]

    def unexpected(tok: str) -> NnlabError:
        takes = " ".join(s.upper() for s in slots)
        return NnlabError(
            f"unexpected argument '{tok}': nnlab {command} takes {takes} and --options "
            f"(see nnlab {command} --help)"
        )

    for tok in tokens:
        if tok in ("-", "--"):  # Fire's own separators: nnlab has no use for them
            raise unexpected(tok)
    positional, flags = options.split_command_line(tokens)
    many = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values())
    if len(positional) > len(slots) and not many:
        raise unexpected(positional[len(slots)])
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # train: its options are checked against the config
    known = [n for n in params if n not in ("run_id", "run_ids")]
    for key in flags:
        if key not in known:
            raise NnlabError(f"unknown option --{key} for '{command}'{did_you_mean(key, known)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nnlab` console script."""
    global _RAW_ARGV
    argv = list(sys.argv[1:] if argv is None else argv)
    _RAW_ARGV = argv
    try:
        if argv[:1] == ["--version"]:
            print(f"nnlab {__version__}")
            return
        page = help_text(argv) if argv else help_text(["--help"])
        if page is not None:
            print(page)
            return
        if argv[0] not in COMMANDS:
            hint = did_you_mean(argv[0], COMMANDS)
            raise NnlabError(f"unknown command '{argv[0]}'{hint} (see nnlab --help)")
        check_command_line(argv[0], argv[1:])
        import fire

        fire.Fire(COMMANDS, command=argv, name="nnlab")
    except TrainingStopped as e:
        if getattr(e, "run_id", None):
            try:
                print(e.run_id, flush=True)  # the run exists: scripts still get its id
            except BrokenPipeError:  # nobody reads stdout any more (a killed $(...))
                pass
        print(f"nnlab: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except NnlabError as e:
        print(f"nnlab: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("nnlab: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # e.g. `nnlab summary | head`
        sys.exit(0)
    except OSError as e:  # a full disk, a read-only folder: one line naming the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"nnlab: error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
