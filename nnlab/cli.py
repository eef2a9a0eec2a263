"""The nnlab command line: thin commands (parse, call one library function, return text).

Fire dispatches the commands. Fire guesses types from the text typed (`007` becomes 7),
so options are re-read from the raw argument list and converted by the config's types.
Heavy libraries (torch, matplotlib) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys

from nnlab.errors import NnlabError, TrainingStopped, did_you_mean

_RAW_ARGV: list[str] | None = None  # the argument list main() was given, for raw flag values


def _raw_flags(parsed: dict) -> dict[str, str]:
    """The text typed for each --flag of the current command (Fire's conversions undone)."""
    if _RAW_ARGV is None:  # called outside main(): best effort from Fire's values
        return {k: _text(v) for k, v in parsed.items()}
    raw: dict[str, str] = {}
    tokens = _RAW_ARGV[1:]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            break
        if tok.startswith("--") and len(tok) > 2:
            key, eq, value = tok[2:].partition("=")
            key = key.replace("-", "_")
            if not eq:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                if nxt is not None and not nxt.startswith("--") and parsed.get(key) is not True:
                    value, i = nxt, i + 1
                else:
                    value = "true"
            raw[key] = value
        i += 1
    return raw


def _text(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_text(x) for x in v) + "]"
    return str(v)


def train(model=None, **flags):
    """Train MODEL (classifier or vae) and print the new run id on stdout.

    Options: --preset=NAME or --config=FILE.yaml, then any config field as --key=value
    (e.g. --beta=10 --epochs=3 --hidden_dims=[256,128] --dataset=fashion-mnist
    --name=mytag), --runs_dir=DIR. Continue a run with --resume=RUN_ID [--epochs=N].
    Progress goes to stderr.
    """
    from nnlab import config as config_mod

    raw = _raw_flags(flags)
    preset = raw.pop("preset", None)
    config_file = raw.pop("config", None)
    resume = raw.pop("resume", None)
    runs_dir = raw.pop("runs_dir", None)
    if resume is not None:
        extra = sorted(set(raw) - {"epochs"})
        if model is not None or preset or config_file or extra:
            shown = (
                extra[0]
                if extra
                else ("preset" if preset else "config" if config_file else "MODEL")
            )
            raise NnlabError(
                f"--resume takes only --epochs (and --runs_dir), not {shown}: "
                "a run keeps its saved config"
            )
        epochs = config_mod.parse_value("epochs", raw["epochs"], int) if "epochs" in raw else None
        from nnlab import train as train_mod

        return train_mod.resume(resume, runs_dir, epochs)
    cfg = config_mod.build(model, preset=preset, config_file=config_file, overrides=raw)
    from nnlab import train as train_mod

    return train_mod.start(cfg, runs_dir)


def summary(run_id=None, json=False, runs_dir=None):
    """Show a table of all runs, or one run (config, parameters, metrics, timings, contents).

    RUN_ID may be 'latest'. --json prints the same as JSON.
    """
    from nnlab import summary as summary_mod

    return summary_mod.summarize(
        _id(run_id), runs_dir, as_json=_flag(json, "json"), color=sys.stdout.isatty()
    )


def _id(run_id):
    """Run ids reach us as Fire parsed them; keep text, refuse anything else clearly."""
    if run_id is None or isinstance(run_id, str):
        return run_id
    raise NnlabError(f"invalid run id {run_id!r}: run ids are text like vae-20260101-120000")


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise NnlabError(f"--{name}: expected true or false, got '{value}'")


COMMANDS = {"train": train, "summary": summary}


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
