"""A search's space: which fields a search draws and from what (a range or a list of
choices), parsed from the command line like a grid.

`--lr=1e-4..1e-2` is a uniform range, `--lr=log:1e-4..1e-2` a log-uniform one; an integer
field's range draws whole numbers (`--batch_size=16..256`, `log:` allowed); a comma list
(`--activation=relu,silu`, `--hidden_dims=[256],[512]`) is a set of choices; one value is
fixed for every trial. Ranges need a number field, lo < hi, and (on a log scale) lo > 0.
Each bound and each choice is validated as a config before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nnlab.config import config, grid
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import parse_value, text_of


@dataclass(frozen=True)
class Range:
    """A numeric range to draw from: [lo, hi], whole numbers for an integer field, on a
    log scale when `log`."""

    lo: float
    hi: float
    log: bool = False
    integer: bool = False

    def text(self) -> str:
        """As typed: log:1e-4..0.01."""
        return ("log:" if self.log else "") + f"{_num(self.lo)}..{_num(self.hi)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def parse_range(key: str, text: str, typ: Any) -> Range:
    """`lo..hi` or `log:lo..hi` for the field `key` of type typ; one line naming what is wrong."""
    raw = text.strip()
    log = raw.startswith("log:")
    body = raw[4:] if log else raw
    lo_text, sep, hi_text = body.partition("..")
    if not sep or ".." in hi_text or "," in body:
        raise NnlabError(f"--{key}={raw}: a range is lo..hi or log:lo..hi, e.g. --{key}=1e-4..1e-2")
    if typ not in (int, float) or typ is bool:
        kind, eg = {bool: ("true or false", "true,false"), str: ("text", "a,b")}.get(
            typ, ("a list", "[256],[512,256]")
        )
        raise NnlabError(
            f"--{key}={raw}: a range needs a number field, and {key} is {kind}: give the "
            f"values to try instead, e.g. --{key}={eg}"
        )
    lo = parse_value(key, lo_text, typ)
    hi = parse_value(key, hi_text, typ)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise NnlabError(f"--{key}={raw}: the bounds must be finite numbers")
    if lo >= hi:
        hint = f", e.g. --{key}={_num(hi)}..{_num(lo)}" if lo > hi else ""
        raise NnlabError(f"--{key}={raw}: lo must be below hi{hint}")
    if log and lo <= 0:
        raise NnlabError(
            f"--{key}={raw}: a log-scale range needs lo > 0 (its logarithm), e.g. "
            f"--{key}=log:{_num(hi / 1000 if hi > 0 else 1e-4)}..{_num(hi if hi > 0 else 1)}"
        )
    return Range(float(lo), float(hi), log, typ is int)


@dataclass
class Space:
    """A resolved search space: the model's config class, the fixed values, and each
    searched field's Range or list of choices (in the order typed)."""

    cls: type[config.Config]
    base: dict[str, Any]
    params: dict[str, Range | list[Any]]
    name: str = ""

    def config(self, values: dict[str, Any]) -> config.Config:
        """The validated config of a trial's values."""
        return config.make(self.cls, {**self.base, **values})

    def check(self) -> config.Config:
        """Validate every bound and every choice (each with the others at their first value
        or lower bound); the config of the first corner."""
        first = {k: _first(p) for k, p in self.params.items()}
        out = None
        for key, p in self.params.items():
            tried = [p.lo, p.hi] if isinstance(p, Range) else p
            for v in tried:
                v = int(v) if isinstance(p, Range) and p.integer else v
                cfg = self.config({**first, key: v})  # a bad bound: the field's own error
                out = out or cfg
        return out

    def as_record(self) -> dict:
        """The space as sweep.json keeps it."""
        out = {}
        for k, p in self.params.items():
            if isinstance(p, Range):
                out[k] = {"range": [p.lo, p.hi], "log": p.log, "int": p.integer}
            else:
                out[k] = {"choices": list(p)}
        return out


def _first(p: Range | list) -> Any:
    if isinstance(p, Range):
        return int(p.lo) if p.integer else p.lo
    return p[0]


def from_record(space: dict) -> dict[str, Range | list]:
    """The params of a space as sweep.json keeps it (see Space.as_record)."""
    out: dict[str, Range | list] = {}
    for k, d in space.items():
        if "range" in d:
            lo, hi = d["range"]
            out[k] = Range(float(lo), float(hi), bool(d.get("log")), bool(d.get("int")))
        else:
            out[k] = list(d["choices"])
    return out


def describe(params: dict[str, Range | list]) -> str:
    """The space in words: lr log:0.0001..0.1 · batch_size 16..256 · activation {relu, silu}."""
    return " · ".join(f"{k} {shown(p)}" for k, p in params.items())


def shown(p: Range | list) -> str:
    """One field's range or choices in words: log:0.0001..0.1, or {relu, silu}."""
    return p.text() if isinstance(p, Range) else "{" + ", ".join(text_of(v) for v in p) + "}"


def build(
    model: str | None,
    flags: list[tuple[str, str]],
    *,
    preset: str | None = None,
    config_file: str | None = None,
) -> Space:
    """The space of `nnlab sweep MODEL --search=... --KEY=lo..hi --KEY=a,b ...`: ranges,
    choices (a flag with several values) and fixed values, in the order typed."""
    lists = [(k, t) for k, t in flags if not grid.is_range(t)]
    parsed = grid.parse(model, lists, preset=preset, config_file=config_file)
    types = config.field_types(parsed.cls)
    config.check_keys(parsed.cls, [k for k, _ in flags], "the command line")
    params: dict[str, Range | list] = {}
    for key, text in flags:  # the order typed
        if grid.is_range(text):
            if key in ("name", "model"):
                raise NnlabError(f"--{key} cannot be searched")
            if key in params or any(k == key for k, _ in lists):
                raise NnlabError(f"--{key} is given twice: give its range once")
            params[key] = parse_range(key, text, types[key])
            parsed.base.pop(key, None)
        elif key in parsed.axes:
            params[key] = list(parsed.axes[key])
    if not params:
        raise NnlabError(
            "nothing to search: give a range (e.g. --lr=log:1e-4..1e-2) or several values "
            "(e.g. --activation=relu,silu)"
        )
    return Space(parsed.cls, parsed.base, params, parsed.name)


def distribution(optuna, p):
    """Optuna's distribution of a range or a list of choices (as texts: Optuna keeps
    choices as plain values, and a list field's choice is a list)."""
    d = optuna.distributions
    if isinstance(p, Range):
        if p.integer:
            return d.IntDistribution(int(p.lo), int(p.hi), log=p.log)
        return d.FloatDistribution(p.lo, p.hi, log=p.log)
    return d.CategoricalDistribution([text_of(v) for v in p])


def outside(params: dict, values: dict) -> str:
    """'' when every value lies in its field's range or choices; else the first that does
    not, as "lr=5.0 (not in log:1e-4..0.01)"."""
    for k, p in params.items():
        v = values.get(k)
        if isinstance(p, Range):
            ok = (
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and p.lo <= v <= p.hi
                and (not p.integer or float(v).is_integer())
            )
            where = p.text()
        else:
            ok = any(text_of(c) == text_of(v) for c in p)
            where = ",".join(text_of(c) for c in p)
        if not ok:
            return f"{k}={text_of(v)} (not in {where})"
    return ""


def values_of(params: dict, drawn: dict) -> dict:
    """A trial's config values from Optuna's params (choices back from their texts)."""
    out = {}
    for k, p in params.items():
        v = drawn[k]
        if isinstance(p, Range):
            out[k] = int(v) if p.integer else float(v)
        else:
            out[k] = next(c for c in p if text_of(c) == v)
    return out
