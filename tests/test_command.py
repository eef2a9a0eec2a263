"""A command declared once: its options dataclass gives the check of the command line, the
one parse of it (each value converted by its declared converter, or by its type) and the
call Fire dispatches, the options object reaching the command's function."""

from __future__ import annotations

from dataclasses import dataclass

import fire
import pytest

from nnlab.commands.command import Command, Option, Positional
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import option


@dataclass(frozen=True)
class EchoOptions:
    kind: str = option("auto", "what", choices=("auto", "scatter"))
    compare: str | None = option(None, "others", repeat=True)
    dpi: int = option(100, "pixels per inch", convert="nnlab.helpers.options:positive_int")
    json: bool = option(False, "as JSON")


def _echo(run_id=None, *, opts):
    return repr((run_id, opts.kind, opts.compare, opts.dpi, opts.json))


ECHO = Command("echo", _echo, Positional("run_id", "RUN_ID", "a run"), EchoOptions)


def _run(command: Command, tokens: list[str]) -> str:
    call = command.bind(command.parse(tokens), tokens)
    return fire.Fire({command.name: call}, [command.name])


def test_values_arrive_converted_with_declared_defaults():
    assert _run(ECHO, ["007", "--dpi=030"]) == repr(("007", "auto", None, 30, False))
    assert _run(ECHO, ["r", "--kind", "scatter"]) == repr(("r", "scatter", None, 100, False))
    parsed = ECHO.parse(["r", "--kind", "scatter"])
    assert isinstance(parsed.opts, EchoOptions) and parsed.given == {"kind"}


def test_a_repeated_option_arrives_joined_and_other_repeats_are_refused():
    got = _run(ECHO, ["r", "--compare=a,b", "--dpi=40", "--compare", "c"])
    assert got == repr(("r", "auto", "a,b,c", 40, False))
    with pytest.raises(NnlabError, match="--dpi is given twice"):
        ECHO.parse(["r", "--dpi=40", "--dpi=50"])


@pytest.mark.parametrize(
    "tokens, needle",
    [
        (["r", "--kidn=auto"], "unknown option --kidn for 'echo' (did you mean 'kind'?)"),
        (["r", "s"], "unexpected argument 's': nnlab echo takes RUN_ID and --options"),
        (["r", "--"], "unexpected argument '--'"),
        (["r", "--dpi=many"], "--dpi=many: expected a whole number of at least 1"),
        (["r", "--json=maybe"], "--json: expected true or false, got 'maybe'"),
    ],
)
def test_the_command_line_is_checked_before_anything_runs(tokens, needle):
    with pytest.raises(NnlabError) as e:
        ECHO.parse(tokens)
    assert needle in str(e.value)


def test_a_command_that_takes_config_fields_gets_them_in_order_with_repeats():
    seen = {}

    @dataclass(frozen=True)
    class GridOptions:
        jobs: int = option(1, "j", convert="nnlab.helpers.options:positive_int")

    def grid(model=None, *, opts, given, fields):
        seen.update(model=model, opts=opts, given=given, fields=fields)
        return "ok"

    sweep = Command("grid", grid, Positional("model", "MODEL", "m"), GridOptions, fields=True)
    _run(sweep, ["vae", "--beta=1,10", "--jobs", "2", "--beta=3"])
    assert seen == {
        "model": "vae",
        "opts": GridOptions(jobs=2),
        "given": frozenset({"jobs"}),
        "fields": [("beta", "1,10"), ("beta", "3")],
    }


def test_options_come_from_the_dataclass_in_order():
    assert [o.name for o in ECHO.options] == ["kind", "compare", "dpi", "json"]
    dpi = ECHO.options[2]
    assert (dpi.type, dpi.default, dpi.help) == (int, 100, "pixels per inch")


def test_allowed_values_by_reference_are_read_when_asked():
    opt = Option("kind", "auto", str, "what", choices="nnlab.render.sources:KINDS")
    assert opt.allowed() == ("auto", "density", "scatter")


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["--json", "r1"], ("r1", True)),  # a bare switch before the run id: true
        (["r1", "--json"], ("r1", True)),
        (["--json", "false", "r1"], ("r1", False)),  # a true/false word is its value
        (["--json=no", "r1"], ("r1", False)),
    ],
)
def test_a_switch_before_the_run_id_does_not_swallow_it(tokens, expected):
    parsed = ECHO.parse(tokens)
    assert (parsed.positional[0], parsed.opts.json) == expected
