"""Help pages, generated from what they describe: the commands' signatures and docstrings,
and the config dataclasses (each field's type, default, allowed values and meaning).

A command's docstring is its page: a first line, paragraphs, then an `Args:` section with
one `name: meaning` line per option, where a meaning may start with `{a,b,c}` to list the
allowed values. Pages are plain text for stdout: no pager, no colours.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import textwrap
import typing

from nnlab import __version__, families
from nnlab.config import config
from nnlab.families.family import Config

ARG_RE = re.compile(r"^\s{4,}(\w+):\s*(?:\{([^}]*)\}\s*)?(.*)$")
# Options of `nnlab train` that are not config fields, with their meanings.
TRAIN_OPTIONS = {
    "preset": ("TEXT", "a preset (listed below) as the starting point"),
    "config": ("FILE", "a YAML file of config fields as the starting point"),
    "resume": ("RUN_ID", "continue a run from its latest checkpoint (with --epochs only)"),
    "epochs": ("INT", "with --resume: train on to this many epochs (at least those done)"),
    "runs_dir": ("DIR", "the run store (default ./runs, or $NNLAB_RUNS)"),
}


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def type_name(typ) -> str:
    """A field's or option's type as a help page shows it."""
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if typing.get_origin(typ) is list:
        return "NUMBERS" if typing.get_args(typ)[0] is float else "INTS"
    if args and type(None) in typing.get_args(typ):
        return type_name(args[0])
    return {bool: "BOOL", int: "INT", float: "NUMBER"}.get(typ, "TEXT")


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    if value == "":
        return '""'
    return str(value)


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    """Two-column option lines, the meaning wrapped to the terminal."""
    left = min(max((len(a) for a, _ in rows), default=0) + 2, 34)
    width = _width()
    out = []
    for a, b in rows:
        lines = textwrap.wrap(b, width - left - 2, break_on_hyphens=False) or [""]
        if len(a) + 2 > left:
            out.append(f"  {a}")
            out += [" " * (left + 2) + line for line in lines]
        else:
            out.append(f"  {a:<{left}}{lines[0]}")
            out += [" " * (left + 2) + line for line in lines[1:]]
    return out


def _paragraphs(text: str) -> list[str]:
    return [
        textwrap.fill(" ".join(p.split()), _width(), break_on_hyphens=False)
        for p in text.split("\n\n")
        if p.strip()
    ]


def parse_docstring(fn) -> tuple[str, list[str], dict[str, tuple[tuple, str]]]:
    """(first line, further paragraphs, {option: (allowed values, meaning)}) of a command."""
    doc = inspect.getdoc(fn) or ""
    body, _, args = doc.partition("\nArgs:\n")
    first, _, rest = body.partition("\n")
    options = {}
    for line in ("    " + args.replace("\n", "\n    ")).splitlines():
        m = ARG_RE.match(line)
        if m:
            choices = tuple(c.strip() for c in m.group(2).split(",")) if m.group(2) else ()
            options[m.group(1)] = (choices, m.group(3).strip())
        elif line.strip() and options:  # a continued meaning
            name = next(reversed(options))
            options[name] = (options[name][0], options[name][1] + " " + line.strip())
    return first.strip(), _paragraphs(rest), options


def overview(commands: dict) -> str:
    """`nnlab --help`: the commands and where to read more."""
    lines = [
        f"nnlab {__version__}: see what a neural network learns.",
        "",
        "usage: nnlab COMMAND [ARGS] [--OPTION=VALUE ...]",
        "",
        "commands:",
    ]
    lines += _rows([(name, parse_docstring(fn)[0]) for name, fn in commands.items()])
    lines += [
        "",
        "nnlab COMMAND --help shows a command's options; nnlab train MODEL --help the config",
        "fields of a model. Results go to stdout, progress and messages to stderr; a run id",
        "may be 'latest'. nnlab --version prints the version.",
    ]
    return "\n".join(lines)


def command_page(name: str, fn) -> str:
    """`nnlab COMMAND --help` for every command but train."""
    first, paragraphs, documented = parse_docstring(fn)
    params = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn)
    positional = "RUN_ID" if "run_id" in params else ""
    if "run_ids" in params:  # several: nnlab report RUN_ID|SWEEP_ID [RUN_ID ...]
        positional = "RUN_ID|SWEEP_ID [RUN_ID ...]"
    optional = name == "summary"
    usage = f"usage: nnlab {name}" + (f" [{positional}]" if optional else f" {positional}")
    lines = [usage + " [--OPTION=VALUE ...]", "", first, *[f"\n{p}" for p in paragraphs]]
    rows = []
    for pname, p in params.items():
        choices, meaning = documented.get(pname, ((), ""))
        if pname in ("run_id", "run_ids"):
            continue
        typ = "CHOICE" if choices else type_name(hints.get(pname, str))
        text = meaning + (f"; one of: {', '.join(choices)}" if choices else "")
        default = p.default
        if default is not None and default is not False:
            text += f" [default: {_shown(default)}]"
        rows.append((f"--{pname}" + ("" if typ == "BOOL" else f"={typ}"), text))
    for pname in ("run_id", "run_ids"):
        if pname in params:
            rows.insert(0, (positional, documented.get(pname, ((), ""))[1]))
    return "\n".join([*lines, "", "options:", *_rows(rows)])


def sweep_page(fn) -> str:
    """`nnlab sweep --help`: its own options (from the docstring) and where the config
    fields it sweeps are listed."""
    first, paragraphs, documented = parse_docstring(fn)
    usage = (
        "usage: nnlab sweep MODEL [--preset=P|--config=FILE] --FIELD=V1,V2,... "
        "[--FIELD2=...] [--OPTION=VALUE ...]\n       nnlab sweep --resume SWEEP_ID "
        "[--jobs=N] [--executor=local|ray]"
    )
    rows = []
    for name, (choices, meaning) in documented.items():
        if name == "model":
            continue
        text = meaning + (f"; one of: {', '.join(choices)}" if choices else "")
        rows.append((f"--{name}", text))
    return "\n".join(
        [
            usage,
            "",
            first,
            *[f"\n{p}" for p in paragraphs],
            "",
            "options:",
            *_rows(rows),
            "",
            "Any config field can be swept or fixed: see nnlab train MODEL --help for them.",
        ]
    )


def _field_rows(cls, names) -> list[tuple[str, str]]:
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    rows = []
    for name in names:
        info = config.field_info(cls, name)
        choices = info.get("choices")
        typ = "CHOICE" if choices else type_name(hints[name])
        f = defaults[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = info.get("help", "")
        if choices:
            text += f"; one of: {', '.join(choices)}"
        text += f" [default: {_shown(default)}]"
        rows.append((f"--{name}={typ}", text))
    return rows


def _presets(model: str | None) -> list[str]:
    rows = []
    for name in config.preset_names():
        layer = config.load_preset(name)
        if model and layer.get("model") != model:
            continue
        changes = ", ".join(f"{k}={_shown(v)}" for k, v in layer.items() if k != "model")
        family = families.FAMILIES.get(layer["model"])
        default = " (the default)" if family and family.default_preset == name else ""
        rows.append((name, f"{layer['model']}{default}: {changes or 'the defaults, unchanged'}"))
    return _rows(rows)


def train_page(model: str | None, fn) -> str:
    """`nnlab train --help` and `nnlab train MODEL --help` (fn: the train command): usage,
    options, every config field with its type, default, allowed values and meaning, and
    the presets."""
    first, paragraphs, _ = parse_docstring(fn)
    shown = model or "MODEL"
    lines = [
        f"usage: nnlab train {shown} [--preset=NAME | --config=FILE] [--FIELD=VALUE ...]",
        "       nnlab train --resume RUN_ID [--epochs=N]",
        "",
        first,
        *[f"\n{p}" for p in paragraphs],
        "",
        "options:",
        *_rows([(f"--{k}={t}", m) for k, (t, m) in TRAIN_OPTIONS.items()]),
    ]
    models = [model] if model else list(families.NAMES)
    base = [f.name for f in dataclasses.fields(Config) if f.name != "model"]
    for m in models:
        cls = families.get(m).config_class
        own = [f.name for f in dataclasses.fields(cls) if f.name not in base and f.name != "model"]
        lines += ["", f"config fields of {m} (each a --FIELD=VALUE; defaults before any preset):"]
        lines += _rows(_field_rows(cls, own + base if model else own))
    if not model:
        lines += ["", "config fields of both (defaults of the vae; see nnlab train MODEL --help):"]
        lines += _rows(_field_rows(families.get("vae").config_class, base))
    lines += ["", "presets (what each sets on top of its model's defaults):", *_presets(model)]
    return "\n".join(lines)
