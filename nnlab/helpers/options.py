"""Turning the text a user typed into values: config fields, lists, flags, run ids.

Fire guesses types from what is typed (`007` becomes 7, `0,4` a tuple), so every option is
re-read from the raw argument list where it matters and converted here, by the type it is
meant to have. One set of words for booleans, one message per kind of mistake.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import field
from typing import Any

from nnlab.helpers.errors import NnlabError, did_you_mean

TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


def option(default, help: str, *, choices: tuple | None = None, check=None, **extra):
    """A dataclass field with its one-line meaning (and allowed values) for `--help`; check:
    (a test of the value, what a value must be when it fails), for validation."""
    about = {"help": help, **({"choices": choices} if choices else {}), **extra}
    if check is not None:
        about["check"] = check
    if isinstance(default, (list, dict)):  # each instance its own copy
        return field(default_factory=lambda: type(default)(default), metadata=about)
    return field(default=default, metadata=about)


def added_later(
    default, help: str, *, legacy, choices: tuple | None = None, check=None, derived=False
):
    """A config field added after runs were first written: new runs get `default`, a run
    saved without the field is read with `legacy` (the value that reproduces the old
    behaviour). derived: nnlab fills the field in (from the dataset), a user cannot set it."""
    extra = {"derived": True} if derived else {}
    return option(default, help, choices=choices, check=check, legacy=legacy, **extra)


def text_of(value) -> str:
    """A value Fire parsed, back as text (lists and tuples as [a,b])."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(text_of(x) for x in value) + "]"
    return str(value)


def parse_bool(value, key: str) -> bool:
    """true/yes/1/on or false/no/0/off (any case), or a bool already."""
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise NnlabError(f"--{key}: expected true or false, got '{str(value).strip()}'")


def parse_scalar(text: str, typ: Any, key: str) -> Any:
    """Text into a bool, int, float or str (quotes around text are dropped)."""
    text = text.strip()
    if typ is bool:
        return parse_bool(text, key)
    if typ is int:
        try:
            return int(text)
        except ValueError:
            raise NnlabError(f"--{key}: expected a whole number, got '{text}'") from None
    if typ is float:
        try:
            return float(text)
        except ValueError:
            raise NnlabError(f"--{key}: expected a number, got '{text}'") from None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def parse_value(key: str, text: str, typ: Any) -> Any:
    """The text typed for --key in the field's type: scalars, list[X] and Optional[X]."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is list:
        inner = text.strip()
        if args[0] is int and re.fullmatch(r"\d+(-\d+)+", inner):
            inner = inner.replace("-", ",")  # 784-10-3-10, as papers and the README write it
        if inner.startswith(("[", "(")) and inner.endswith(("]", ")")):
            inner = inner[1:-1]
        parts = [p for p in (s.strip() for s in inner.split(",")) if p]
        return [parse_scalar(p, args[0], key) for p in parts]
    if type(None) in args:  # Optional[X]
        if text.strip().lower() in ("none", "null", ""):
            return None
        (inner_type,) = [a for a in args if a is not type(None)]
        return parse_scalar(text, inner_type, key)
    return parse_scalar(text, typ, key)


def int_list(value, option: str, example: str) -> list[int]:
    """Whole numbers from an option however Fire passed it (4 / (0, 4) / "0,4" / "[0,4]")."""
    if isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [s for s in str(value).strip("[]() ").split(",") if s.strip()]
    try:
        return [int(str(v).strip()) for v in items]
    except ValueError:
        raise NnlabError(
            f"--{option}={value}: give whole numbers, e.g. --{option}={example}"
        ) from None


def parse_classes(classes, n: int = 10, names: list[str] | None = None) -> list[int]:
    """--classes as typed (0,4,9 / [0,4,9] / 4, or the class names the legend shows:
    Shirt,Coat, in any case) into a sorted list of class ids below n; all if None."""
    if classes is None:
        return list(range(n))
    if names:
        out = sorted(set(_class_ids(classes, names)))
    else:
        out = sorted(set(int_list(classes, "classes", "0,4,9")))
    if not out or min(out) < 0 or max(out) > n - 1:
        raise NnlabError(f"--classes={classes}: class numbers run from 0 to {n - 1}")
    return out


def _class_ids(classes, names: list[str]) -> list[int]:
    """Each item of --classes as a class id: a number, or a name (any case)."""
    if isinstance(classes, (list, tuple)):
        items = classes
    else:
        items = str(classes).strip("[]() ").split(",")
    by_name = {name.lower(): i for i, name in enumerate(names)}
    out = []
    for item in (str(i).strip() for i in items):
        if re.fullmatch(r"-?\d+", item):
            out.append(int(item))
        elif item.lower() in by_name:
            out.append(by_name[item.lower()])
        elif item:
            hint = did_you_mean(item, names)
            hint = hint if hint.startswith(" (did you mean") else ""  # the names follow anyway
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise NnlabError(
                f"--classes={classes}: no class '{item}'{hint}; give class numbers (0 to "
                f"{len(names) - 1}) or names ({shown})"
            )
    return out


def parse_units(units, n: int) -> list[int]:
    """--units as typed (3 / 0,3,7 / [0,3,7]) into unit indices below n; all if None."""
    if units is None:
        return list(range(n))
    out = int_list(units, "units", "0,3,7")
    if not out or min(out) < 0 or max(out) >= n:
        raise NnlabError(f"--units={units}: this layer has units 0 to {n - 1}")
    return out


def parse_pair(between) -> tuple[int, int] | None:
    """--between=i,j as typed, into two test-set indices (None when not given)."""
    if between is None:
        return None
    pair = int_list(between, "between", "4,9")
    if len(pair) != 2:
        raise NnlabError(f"--between={between}: give two test image indices, e.g. --between=4,9")
    i, j = pair
    return i, j


def positive_int(value, name: str) -> int:
    """A whole number of at least 1."""
    return whole_number(value, name, 1)


def natural(value, name: str) -> int:
    """A whole number of at least 0."""
    return whole_number(value, name, 0)


def whole_number(value, name: str, low: int) -> int:
    """A whole number of at least low."""
    try:
        i = int(str(value))
    except ValueError:
        raise NnlabError(f"--{name}={value}: expected a whole number of at least {low}") from None
    if i < low:
        raise NnlabError(f"--{name}={value}: expected a whole number of at least {low}")
    return i


def positive_number(value, name: str) -> float:
    """A finite number above 0."""
    try:
        x = float(str(value))
    except ValueError:
        raise NnlabError(f"--{name}={value}: expected a positive number") from None
    if not x > 0 or not math.isfinite(x):
        raise NnlabError(f"--{name}={value}: expected a positive number")
    return x


def is_flag(token: str) -> bool:
    """Whether Fire reads a token as a flag: --anything, or -x / -x=... (a negative number
    such as -1 is a value)."""
    return token.startswith("--") or bool(re.match(r"^-[A-Za-z]", token))


def split_command_line(tokens: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(positional arguments, every --flag and the text typed for it, in order, repeats
    kept) of a command's arguments, read as Fire reads them: `--key=value`, or `--key value`
    when the next token is not a flag, or `--key` alone (the text "true")."""
    positional, flags = [], []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if is_flag(tok):
            key, eq, value = tok.lstrip("-").partition("=")
            if not eq:
                value = "true"
                if i + 1 < len(tokens) and not is_flag(tokens[i + 1]):
                    value, i = tokens[i + 1], i + 1  # the next token is this flag's value
            flags.append((key.replace("-", "_"), value))
        else:
            positional.append(tok)
        i += 1
    return positional, flags
