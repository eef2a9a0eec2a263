"""The nnlab command line: its entry point, help pages and the commands that write runs.

Every command is declared once (nnlab.commands.command): its positional argument and its
options with default, type, meaning and allowed values; train and sweep are declared
below, the commands that read the store in nnlab.commands.readers. From a declaration come
the check of the whole command line before anything runs (unknown options, stray
arguments), the help page (nnlab.commands.help) and the Fire dispatch, which hands every
value over as the text typed. Heavy libraries (torch, matplotlib) are imported inside the
commands that need them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from nnlab import families
from nnlab.commands import readers
from nnlab.commands.command import Command, Positional, once
from nnlab.commands.readers import runs_dir
from nnlab.helpers.errors import NnlabError, TrainingStopped, did_you_mean
from nnlab.helpers.options import option
from nnlab.helpers.version import VERSION

HELP_FLAGS = ("--help", "-h")


@dataclass(frozen=True)
class TrainOptions:
    preset: str | None = option(None, "a preset (listed below) as the starting point")
    config: str | None = option(
        None, "a YAML file of config fields as the starting point", metavar="FILE"
    )
    resume: str | None = option(
        None,
        "continue a run from its latest checkpoint (with --epochs only)",
        metavar="RUN_ID",
    )
    epochs: int | None = option(  # a config field: it reaches train with the fields
        None,
        "with --resume: train on to this many epochs (at least those done)",
        config_field=True,
    )
    runs_dir: str | None = runs_dir(metavar="DIR")


SEARCH = "nnlab.commands.search"


@dataclass(frozen=True)
class SweepOptions:
    preset: str | None = option(None, "a preset to start from, as for train")
    config: str | None = option(None, "a YAML config file to start from, as for train")
    jobs: int | None = option(
        None,
        "local worker processes (default: one per core; torch threads are split between them)",
        convert="nnlab.helpers.options:positive_int",
    )
    executor: str = option(
        "local",
        "run points as local processes, or as tasks on a Ray cluster "
        '(pip install -e ".[ray]"; the runs directory must be on storage every node sees)',
        choices="nnlab.commands.sweep:EXECUTORS",
    )
    address: str = option("auto", "the Ray cluster: auto or HOST:PORT (ray start --head prints it)")
    retries: int = option(
        2,
        "times a killed worker's point is resumed before it counts as failed",
        convert="nnlab.commands.sweep:retries_count",
    )
    dry_run: bool = option(False, "print the plan (one row per point) and write nothing")
    yes: bool = option(False, "allow a grid of more than 10,000 points")
    search: str = option(
        "grid",
        "grid: every combination; random or tpe: --trials drawn from ranges "
        "(--lr=log:1e-4..1e-2, --batch_size=16..256) and choices by Optuna "
        '(pip install -e ".[search]")',
        choices=f"{SEARCH}:METHODS",
    )
    trials: int | None = option(
        None, "a search's number of trials", convert="nnlab.helpers.options:positive_int"
    )
    metric: str | None = option(
        None,
        "what a search optimises: any final metric of its runs (test_elbo, test_acc, "
        "val_loss, ...) or a latent one (ncm_accuracy, ...); default: the model's headline "
        "(test ELBO, test accuracy)",
    )
    direction: str | None = option(
        None, "max or min (default: the metric's better side)", choices=f"{SEARCH}:DIRECTIONS"
    )
    search_seed: int = option(
        0, "the seed of a search's proposals", convert="nnlab.helpers.options:natural"
    )
    prune: str = option(
        "none",
        "stop poor trials early: median (below the median of earlier trials at the same "
        "point) or asha (asynchronous successive halving: each rung keeps the best quarter); "
        "pruned runs stay usable",
        choices=f"{SEARCH}:PRUNERS",
    )
    prune_every: float | None = option(
        None,
        "when trials report to the pruner besides each epoch's end: every N steps (e.g. 50), "
        "or each fraction of an epoch (e.g. 0.25; use this when batch_size is searched)",
        convert=f"{SEARCH}:prune_every",
        metavar="TEXT",
    )
    resume: str | None = option(
        None,
        "a sweep to go on with: finished points are skipped, interrupted ones resumed from "
        "their checkpoints, the rest started",
    )
    runs_dir: str | None = runs_dir()


def train(model: str | None = None, *, opts: TrainOptions, given, fields) -> str:
    """Train a model and print the new run id on stdout; progress goes to stderr.

    MODEL is classifier or vae. A config starts from the model's defaults, then a preset or
    a YAML file, then any config field given as --FIELD=VALUE (e.g. --beta=10 --epochs=3
    --hidden_dims=256,128 --dataset=fashion-mnist --name=mytag). The resolved config is
    validated before anything is written and saved with the run.
    """
    from nnlab.commands import train as train_mod

    return train_mod.command(model, opts, once(fields, TRAIN_TWICE))


def sweep(model: str | None = None, *, opts: SweepOptions, given, fields, argv) -> str:
    """Train a grid of configs, each point an ordinary run; print the sweep id on stdout.

    MODEL and --preset/--config as for train. A flag with several values is swept:
    --beta=1,10 --seed=0,1,2 is a grid of 6 points; a list field is swept as bracketed
    groups (--hidden_dims=[256,128],[512]); a flag with one value is fixed for every
    point. Every point is validated before anything runs. Each point becomes the run
    <sweep id>-p<k>; the sweep's record is <runs>/<sweep id>/sweep.json, each point's
    progress is in its logs/ folder, and the sweep's progress goes to stderr. Ctrl-C stops
    every point cleanly; --resume SWEEP_ID goes on where it stopped.

    --search=tpe (or random) --trials=N draws the points instead, with Optuna, from ranges
    (--lr=log:1e-4..1e-2, --batch_size=16..256) and choices (--activation=relu,silu),
    optimising --metric; --prune=asha (or median) stops poor trials early, at a checkpoint.
    """
    from nnlab.commands import sweep as sweep_mod

    return sweep_mod.command(model, opts, given, fields, argv)


@dataclass(frozen=True)
class RunsOptions:
    runs_dir: str | None = runs_dir()


def runs(*words: str, opts: RunsOptions) -> str | None:
    """Label runs and sweeps, or move them into the store's trash and back.

    tag ID TAG... and untag ID TAG... add and remove tags (letters, digits and . _ : + -);
    note ID TEXT sets a run's note (an empty TEXT clears it); summary and nnlab.runs() show
    both. rm ID... moves runs, or a sweep with its points, into <runs>/.trash (never a run
    that trains, nor one point of a sweep alone, nor a folder nnlab did not make); restore
    ID... moves them back; trash lists what is there; empty-trash deletes it for good.
    """
    from nnlab.commands import runs as runs_mod

    return runs_mod.command(list(words), opts.runs_dir) or None  # nothing: no empty line


@dataclass(frozen=True)
class ServeOptions:
    host: str = option(
        "127.0.0.1",
        "the address to listen on (another than this machine's own: anyone who can reach it "
        "reads every run)",
    )
    port: int = option(8000, "the port (0: any free one)", convert="nnlab.helpers.options:natural")
    runs_dir: str | None = runs_dir()


def serve(*, opts: ServeOptions) -> None:
    """Serve the run store in the browser, live: print the URL, log to stderr; Ctrl-C stops.

    The runs page lists every run and sweep (sort, filter, select runs to compare); a
    run's page is the report's, its snapshots and metrics arriving as training writes them
    (on the newest snapshot, it follows them); a sweep's page shows its points. Read-only:
    nothing is written into the store. Needs the serve extra: pip install -e ".[serve]".
    """
    from nnlab.server.launch import serve as serve_store

    serve_store(opts.runs_dir, host=opts.host, port=opts.port)


TRAIN_TWICE = ": a run takes one value of each (nnlab sweep trains several)"
MODEL = Positional("model", "MODEL", "classifier or vae")
COMMANDS = {
    "train": Command("train", train, MODEL, TrainOptions, fields=True, twice=TRAIN_TWICE),
    "sweep": Command("sweep", sweep, MODEL, SweepOptions, fields=True, keep_argv=True),
    **readers.COMMANDS,
    "serve": Command("serve", serve, None, ServeOptions),
    "runs": Command(
        "runs",
        runs,
        Positional(
            "words",
            "ACTION [ID ...] [WORD ...]",
            "tag, untag, note, rm, restore, trash or empty-trash, and what it takes",
            many=True,
        ),
        RunsOptions,
    ),
}


def help_text(argv: list[str]) -> str | None:
    """The help page asked for by argv (--help or -h anywhere), or None."""
    from nnlab.commands import help as pages

    before = argv[: argv.index("--")] if "--" in argv else argv  # after it: not ours
    if not any(t in HELP_FLAGS for t in before):
        return None
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None and command.name == "train":
        model = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
        if model is not None:
            families.get(model, families.TRAINED)  # unknown: one line with a suggestion
        return pages.train_page(model, command)
    if command is not None and command.name == "sweep":
        return pages.sweep_page(command)
    if command is not None:
        return pages.command_page(command)
    return pages.overview(COMMANDS)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nnlab` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["--version"]:
            print(f"nnlab {VERSION}")
            return
        page = help_text(argv) if argv else help_text(["--help"])
        if page is not None:
            print(page)
            return
        if argv[0] not in COMMANDS:
            hint = did_you_mean(argv[0], COMMANDS)
            raise NnlabError(f"unknown command '{argv[0]}'{hint} (see nnlab --help)")
        command = COMMANDS[argv[0]]
        parsed = command.parse(argv[1:])
        import fire

        call = command.bind(parsed, argv[1:])  # the sweep records what was typed
        fire.Fire({command.name: call}, [command.name], "nnlab")
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
