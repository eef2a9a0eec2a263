"""The nnlab command line: thin commands (parse, call one library function, return text).

Fire dispatches the commands. Fire guesses types from the text typed (`007` becomes 7),
so options are re-read from the raw argument list and converted by the config's types.
Heavy libraries (torch, matplotlib) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys

from nnlab import options
from nnlab.errors import NnlabError, TrainingStopped, did_you_mean

_RAW_ARGV: list[str] | None = None  # the argument list main() was given, for raw flag values


def _tokens() -> list[str] | None:
    """The current command's arguments as typed (None when called from Python, not main)."""
    return None if _RAW_ARGV is None else _RAW_ARGV[1:]


def _check_options(command: str, tokens: list[str]) -> None:
    """Refuse unknown --options up front: Fire would run the command first and complain after."""
    import inspect

    params = inspect.signature(COMMANDS[command]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # train: its options are checked against the config
    known = [n for n in params if n != "run_id"] + ["help"]
    for tok in tokens:
        if tok == "--":
            break
        if tok.startswith("--") and len(tok) > 2:
            key = tok[2:].split("=", 1)[0].replace("-", "_")
            if key not in known:
                hint = did_you_mean(key, known)
                raise NnlabError(f"unknown option --{key} for '{command}'{hint}")


def train(model=None, **flags):
    """Train MODEL (classifier or vae) and print the new run id on stdout.

    Options: --preset=NAME or --config=FILE.yaml, then any config field as --key=value
    (e.g. --beta=10 --epochs=3 --hidden_dims=[256,128] --dataset=fashion-mnist
    --name=mytag), --runs_dir=DIR. Continue a run with --resume=RUN_ID [--epochs=N].
    Progress goes to stderr.
    """
    from nnlab import train as train_mod

    return train_mod.command(model, options.raw_flags(_tokens(), flags))


def summary(run_id=None, json=False, plot=False, runs_dir=None):
    """Show a table of all runs, or one run (config, parameters, metrics, latent metrics,
    timings, contents).

    RUN_ID may be 'latest'. --json prints the same as JSON. --plot writes
    <run>/media/metrics.png (losses and latent metrics against step) and prints its path.
    """
    from nnlab import summary as summary_mod

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
    run_id=None,
    kind="auto",
    classes=None,
    fps=10,
    every=1,
    out=None,
    compare=None,
    dpi=100,
    runs_dir=None,
):
    """Write a GIF of RUN_ID's latent space over training (and its last frame as PNG).

    --kind=auto|density|scatter, --classes=0,4,9, --fps=10, --every=K (every K-th
    snapshot), --out=FILE.gif, --compare=OTHER_RUN (side by side; repeat the option, or
    separate ids with commas, for more runs),
    --dpi=100 (pixels per inch of a 5.6-inch panel).
    Prints the written paths.
    """
    from nnlab.render.animate import animate as animate_run

    others = [
        o for t in options.raw_values(_tokens(), "compare", compare) for o in t.split(",") if o
    ]
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


def masks(run_id=None, out=None, units=None, checkpoint=None, runs_dir=None):
    """Write the first layer's weights of a classifier run as masks: a GIF and a PNG grid.

    --units=0,3,7 picks units, --checkpoint=latest|final|epoch-N|PATH, --out=DIR.
    Prints the written paths.
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


def embed(run_id=None, split="test", checkpoint=None, layer=None, format="npz", runs_dir=None):
    """Encode a whole split with a run's model and write latents, labels and indices.

    --split=test|train|val, --checkpoint=latest|final|epoch-N|PATH, --layer=K (classifier:
    index into sizes), --format=npz|csv. Prints the file path; the VAE's mean KL per
    latent dimension goes to stderr.
    """
    from nnlab.embed import embed as embed_split

    return embed_split(
        _required_id(run_id, "embed"),
        runs_dir,
        split=str(split),
        checkpoint=options.text_or_none(checkpoint),
        layer=layer,
        fmt=str(format),
    )


def decode(
    run_id=None, checkpoint=None, out=None, between=None, over_training=False, runs_dir=None
):
    """Write a VAE run's decoder views: latent manifold, reconstructions, prior samples,
    and an interpolation between two test images (strip and GIF).

    --between=i,j (test indices; default the first 4 and the first 9), --over_training
    (the manifold at every saved checkpoint, as a GIF), --checkpoint, --out=DIR.
    Prints the written paths.
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


COMMANDS = {
    "train": train,
    "summary": summary,
    "animate": animate,
    "masks": masks,
    "embed": embed,
    "decode": decode,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nnlab` console script."""
    global _RAW_ARGV
    argv = list(sys.argv[1:] if argv is None else argv)
    _RAW_ARGV = argv
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        print(
            f"nnlab: error: unknown command '{argv[0]}'{did_you_mean(argv[0], COMMANDS)}",
            file=sys.stderr,
        )
        sys.exit(2)
    import fire

    try:
        if "-" in argv:  # Fire's command-chaining separator: nnlab has no use for it
            raise NnlabError("invalid argument '-': run ids are text like vae-20260101-120000")
        if argv and argv[0] in COMMANDS:
            _check_options(argv[0], argv[1:])
        fire.Fire(COMMANDS, command=argv, name="nnlab")
    except TrainingStopped as e:
        if getattr(e, "run_id", None):
            print(e.run_id, flush=True)  # the run exists: scripts still get its id
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
