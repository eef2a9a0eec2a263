"""Help pages, generated from what they describe: the commands' declarations (nnlab.commands
.command: each option's type, default, allowed values and meaning; the docstring of the
command's function for its first line and paragraphs) and the config dataclasses (each
field's type, default, allowed values and meaning). Pages are plain text for stdout: no
pager, no colours.
"""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
import typing

from nnlab import families
from nnlab.commands.command import Command, Option
from nnlab.config import config
from nnlab.families.family import Config
from nnlab.helpers.version import VERSION


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


def overview(commands: dict[str, Command]) -> str:
    """`nnlab --help`: the commands and where to read more."""
    lines = [
        f"nnlab {VERSION}: see what a neural network learns.",
        "",
        "usage: nnlab COMMAND [ARGS] [--OPTION=VALUE ...]",
        "",
        "commands:",
    ]
    lines += _rows([(name, c.doc()[0]) for name, c in commands.items()])
    lines += [
        "",
        "nnlab COMMAND --help shows a command's options; nnlab train MODEL --help the config",
        "fields of a model. Results go to stdout, progress and messages to stderr; a run id",
        "may be 'latest'. nnlab --version prints the version.",
    ]
    return "\n".join(lines)


def _text(option: Option) -> str:
    """An option's meaning, with its allowed values."""
    choices = option.allowed()
    return option.help + (f"; one of: {', '.join(choices)}" if choices else "")


def _page_start(command: Command, usage: str) -> list[str]:
    first, paragraphs = command.doc()
    return [usage, "", first, *[f"\n{_paragraphs(p)[0]}" for p in paragraphs]]


def command_page(command: Command) -> str:
    """`nnlab COMMAND --help` for every command but train and sweep."""
    pos = command.positional
    shown = "" if pos is None else (f"[{pos.shown}]" if pos.optional else pos.shown)
    lines = _page_start(command, f"usage: nnlab {command.name} {shown} [--OPTION=VALUE ...]")
    rows = [] if pos is None else [(pos.shown, pos.help)]
    return "\n".join([*lines, "", "options:", *_rows(rows + _option_rows(command))])


def _option_rows(command: Command) -> list[tuple[str, str]]:
    """--name=TYPE and meaning (allowed values, default) of each declared option."""
    rows = []
    for o in command.options:
        typ = o.metavar or ("CHOICE" if o.allowed() else type_name(o.type))
        text = _text(o)
        if o.default is not None and o.default is not False:
            text += f" [default: {_shown(o.default)}]"
        rows.append((f"--{o.name}" + ("" if typ == "BOOL" else f"={typ}"), text))
    return rows


def sweep_page(command: Command) -> str:
    """`nnlab sweep --help`: its own options and where the config fields it sweeps are
    listed."""
    usage = (
        "usage: nnlab sweep MODEL [--preset=P|--config=FILE] --FIELD=V1,V2,... "
        "[--FIELD2=...] [--OPTION=VALUE ...]\n       nnlab sweep MODEL --search=tpe|random "
        "--trials=N --FIELD=LO..HI|log:LO..HI|V1,V2 ... [--metric=KEY] [--prune=asha|median]"
        "\n       nnlab sweep --resume SWEEP_ID [--jobs=N] [--executor=local|ray]"
    )
    rows = _option_rows(command)
    return "\n".join(
        [
            *_page_start(command, usage),
            "",
            "options:",
            *_rows(rows),
            "",
            "Any config field can be swept, searched or fixed: see nnlab train MODEL --help for "
            "them.",
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


def train_page(model: str | None, command: Command) -> str:
    """`nnlab train --help` and `nnlab train MODEL --help`: usage, options, every config
    field with its type, default, allowed values and meaning, and the presets."""
    shown = model or "MODEL"
    usage = (
        f"usage: nnlab train {shown} [--preset=NAME | --config=FILE] [--FIELD=VALUE ...]\n"
        "       nnlab train --resume RUN_ID [--epochs=N]"
    )
    lines = [
        *_page_start(command, usage),
        "",
        "options:",
        *_rows([(f"--{o.name}={o.metavar or type_name(o.type)}", o.help) for o in command.options]),
    ]
    models = [model] if model else list(families.TRAINED)
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


def _md(text: str) -> str:
    """Text safe in a markdown table cell (a `<run>` stays text, not an HTML tag)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("\n", " ")


def _code(value: str) -> str:
    """A default as code; an empty one in words (an empty code span shows as two
    backticks)."""
    return f"`{_md(value)}`" if value else "(empty)"


def config_reference() -> str:
    """The configuration reference of the documentation site, as markdown: every config
    field of each trained family with its type, default, allowed values and help, taken
    from the dataclasses (the same facts as `nnlab train MODEL --help`)."""
    base = [f.name for f in dataclasses.fields(Config) if f.name != "model"]
    classes = {m: families.get(m).config_class for m in families.TRAINED}
    sections = [("Fields of every model", base)] + [
        (
            f"Fields of the {m}",
            [f.name for f in dataclasses.fields(cls) if f.name not in base and f.name != "model"],
        )
        for m, cls in classes.items()
    ]
    parts = []
    for (title, names), model in zip(sections, [None, *classes], strict=True):
        rows = ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name in names:
            owners = {m: cls for m, cls in classes.items() if name in cls.__dataclass_fields__}
            if model is not None:  # a family's own section: its own default alone
                owners = {model: classes[model]}
            cls = next(iter(owners.values()))
            info = config.field_info(cls, name)
            defaults = {m: _shown(_default(c, name)) for m, c in owners.items()}
            if len(set(defaults.values())) == 1:
                default = _code(next(iter(defaults.values())))
            else:
                default = " · ".join(f"{m} {_code(v)}" for m, v in defaults.items())
            choices = info.get("choices")
            hint = typing.get_type_hints(cls)[name]
            typ = " \\| ".join(choices) if choices else _md(type_name(hint).lower())
            text = info.get("help", "") + (" (not a flag)" if info.get("derived") else "")
            rows.append(f"| `{name}` | {typ} | {default} | {_md(text)} |")
        parts.append(f"### {title}\n\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


def _default(cls, name: str):
    """A field's default value in a config class."""
    f = cls.__dataclass_fields__[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()
