"""A sweep's grid: which flags are swept and over which values, and every point's config.

`--beta=1,10` sweeps a scalar field over two values; a list field is swept as bracketed
groups (`--hidden_dims=[256,128],[512]`) and a bare list (`--hidden_dims=256,128`) is one
fixed value. A flag with one value is fixed for every point. The points are the Cartesian
product in the order the flags were typed (the last flag varies fastest), and every point
is built and validated before anything runs, so a bad value anywhere in the grid is
reported at once.
"""

from __future__ import annotations

import itertools
import re
import typing
from dataclasses import dataclass
from typing import Any

from nnlab.config import config
from nnlab.families.family import NAME_RE
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import parse_value, text_of

MAX_POINTS = 10_000  # a bigger grid needs --yes: most such grids are a typo (a range too fine)
_GROUPS_RE = re.compile(r"^\[[^\[\]]*\](,\[[^\[\]]*\])*$")
_GROUP_RE = re.compile(r"\[[^\[\]]*\]")
_NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"
_RANGE_RE = re.compile(rf"^(?:log:)?{_NUMBER}\.\.{_NUMBER}$")


@dataclass
class Grid:
    """A resolved sweep: the model's config class, the fixed values and the swept axes."""

    cls: type[config.Config]
    base: dict[str, Any]  # the preset/file values and the fixed flags
    axes: dict[str, list[Any]]  # swept field -> its values, in the order typed
    name: str = ""  # the sweep's --name (points are named by the sweep, not by this)

    def __len__(self) -> int:
        n = 1
        for values in self.axes.values():
            n *= len(values)
        return n

    def points(self):
        """Each point's swept values, as {field: value}, in grid order."""
        keys = list(self.axes)
        for combo in itertools.product(*self.axes.values()):
            yield dict(zip(keys, combo, strict=True))

    def configs(self) -> list[config.Config]:
        """Every point's validated config, in grid order; a bad point raises naming it."""
        out = []
        for i, point in enumerate(self.points()):
            try:
                out.append(config.make(self.cls, {**self.base, **point}))
            except NnlabError as e:
                raise NnlabError(f"grid point {i} ({describe(point)}): {e}") from None
        return out


def split_values(key: str, text: str, typ: Any) -> list[str]:
    """The texts of the values typed for one flag: one for a fixed value, several to sweep."""
    text = text.strip()
    if typing.get_origin(typ) is list:
        if _GROUPS_RE.match(text):
            return _GROUP_RE.findall(text)
        if "[" in text or "]" in text:
            raise NnlabError(
                f"--{key}={text}: give list values as bracketed groups, e.g. "
                f"--{key}=[256,128],[512]"
            )
        return [text]  # 256,128: one list value
    if "[" in text or "]" in text:  # --beta=[1,10]: a scalar field's values need none
        raise NnlabError(
            f"--{key}={text}: to sweep it, write the values without brackets, e.g. --{key}=1,10"
        )
    parts = [p.strip() for p in text.split(",")]
    if not text or any(not p for p in parts):
        raise NnlabError(f"--{key}={text}: give a value or a comma-separated list, e.g. 1,10")
    return parts


def is_range(text: str) -> bool:
    """Whether a flag's text is a search range: two numbers joined by .. (log: before them
    for a log scale). A path such as folder:../data is not one."""
    return _RANGE_RE.match(text.strip()) is not None


def build(
    model: str | None,
    flags: list[tuple[str, str]],
    *,
    preset: str | None = None,
    config_file: str | None = None,
) -> Grid:
    """The grid of `nnlab sweep MODEL --KEY=v1,v2 ...` from the flags as typed, in order."""
    for key, text in flags:
        if is_range(text):
            raise NnlabError(
                f"--{key}={text}: a range is drawn from by a search: add --search=tpe (or "
                f"random) and --trials=N, or give a grid the values to try, e.g. --{key}=a,b"
            )
    the_grid = parse(model, flags, preset=preset, config_file=config_file)
    axes, types = the_grid.axes, config.field_types(the_grid.cls)
    lists = [k for k, t in flags if typing.get_origin(types.get(k)) is list and "," in t]
    if not axes and lists:  # --hidden_dims=256,128,512 is one list value, not three
        raise NnlabError(
            f"nothing to sweep: --{lists[0]} is one list; sweep a list field as bracketed "
            f"groups, e.g. --{lists[0]}=[256,128],[512]"
        )
    if not axes:
        raise NnlabError(
            "nothing to sweep: give at least one flag with several values, e.g. --beta=1,10"
        )
    return the_grid


def parse(
    model: str | None,
    flags: list[tuple[str, str]],
    *,
    preset: str | None = None,
    config_file: str | None = None,
) -> Grid:
    """The flags as typed, in order: fixed values into the base, several values as axes
    (possibly none); the name checked."""
    cls, base = config.base_values(model, preset=preset, config_file=config_file)
    name = str(base.pop("name", "") or "")  # a config file's name names the sweep too
    seen: set[str] = set()
    for key, _ in flags:
        if key in seen:
            raise NnlabError(f"--{key} is given twice: give all its values once, e.g. --{key}=1,10")
        seen.add(key)
    config.check_keys(cls, [k for k, _ in flags], "the command line")
    types = config.field_types(cls)
    axes: dict[str, list[Any]] = {}
    for key, text in flags:
        if key == "model":
            raise NnlabError("the model is chosen by the first argument, not --model")
        texts = split_values(key, text, types[key])
        values = [parse_value(key, t, types[key]) for t in texts]
        if key == "name":
            if len(values) > 1:
                raise NnlabError("--name names the sweep and cannot be swept")
            name = str(values[0])
            continue
        for i, v in enumerate(values):
            if v in values[:i]:
                raise NnlabError(f"--{key}={text}: {text_of(v)} is given twice")
        if len(values) == 1:
            base[key] = values[0]
        else:
            axes[key] = values
    check_name(name)
    return Grid(cls, base, axes, name)


def describe(point: dict[str, Any]) -> str:
    """A point's values as `beta=1.0, seed=0`."""
    return ", ".join(f"{k}={text_of(v)}" for k, v in point.items())


def plan_table(grid: Grid, run_ids: list[str]) -> str:
    """The plan of a dry run: one tab-separated row per point (run id, then swept values)."""
    keys = list(grid.axes)
    rows = ["\t".join(["run", *keys])]
    for run_id, point in zip(run_ids, grid.points(), strict=True):
        rows.append("\t".join([run_id, *(text_of(point[k]) for k in keys)]))
    return "\n".join(rows)


def check_name(name: str) -> None:
    """A sweep's name: the run-name rules, and never p<digits>: the sweep's id would then
    be the id of point <digits> of a sweep started in the same second (its points are
    <sweep id>-p<k>)."""
    if not NAME_RE.match(name):
        raise NnlabError(f"--name={name}: use up to 64 letters, digits, '.', '-' or '_'")
    if re.fullmatch(r"p\d+", name):
        raise NnlabError(
            f"--name={name}: a sweep's name may not be p and digits (its points are named "
            "<sweep id>-p<k>); choose another, e.g. run-" + name
        )
