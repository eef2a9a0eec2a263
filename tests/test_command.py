"""A command declared once: the check of its command line, the tokens Fire gets, and the
text as typed reaching the command's function, with the declared defaults."""

from __future__ import annotations

import fire
import pytest

from nnlab.commands.command import Command, Option, Positional
from nnlab.helpers.errors import NnlabError


def _echo(run_id=None, *, kind, compare, dpi):
    return repr((run_id, kind, compare, dpi))


ECHO = Command(
    "echo",
    _echo,
    Positional("run_id", "RUN_ID", "a run"),
    (
        Option("kind", "auto", str, "what", choices=("auto", "scatter")),
        Option("compare", None, str, "others", repeat=True),
        Option("dpi", 100, int, "pixels per inch"),
    ),
)


def _run(command: Command, tokens: list[str]) -> str:
    positional, flags = command.check(tokens)
    call = command.dispatcher(tokens, flags)
    typed = command.fire_tokens(tokens, positional, flags)
    return fire.Fire({command.name: call}, [command.name, *typed])


def test_values_arrive_as_typed_with_declared_defaults():
    assert _run(ECHO, ["007", "--dpi=030"]) == repr(("007", "auto", None, "030"))
    assert _run(ECHO, ["r", "--kind", "scatter"]) == repr(("r", "scatter", None, 100))


def test_a_repeated_option_arrives_joined():
    got = _run(ECHO, ["r", "--compare=a,b", "--dpi=40", "--compare", "c"])
    assert got == repr(("r", "auto", "a,b,c", "40"))


@pytest.mark.parametrize(
    "tokens, needle",
    [
        (["r", "--kidn=auto"], "unknown option --kidn for 'echo' (did you mean 'kind'?)"),
        (["r", "s"], "unexpected argument 's': nnlab echo takes RUN_ID and --options"),
        (["r", "--"], "unexpected argument '--'"),
    ],
)
def test_the_command_line_is_checked_before_anything_runs(tokens, needle):
    with pytest.raises(NnlabError) as e:
        ECHO.check(tokens)
    assert needle in str(e.value)


def test_a_command_that_takes_config_fields_gets_them_in_order_with_repeats():
    seen = {}

    def grid(model=None, *, opts, fields):
        seen.update(model=model, opts=opts, fields=fields)
        return "ok"

    sweep = Command(
        "grid", grid, Positional("model", "MODEL", "m"), (Option("jobs", 1, int, "j"),), fields=True
    )
    _run(sweep, ["vae", "--beta=1,10", "--jobs", "2", "--beta=3"])
    assert seen == {
        "model": "vae",
        "opts": [("jobs", "2")],
        "fields": [("beta", "1,10"), ("beta", "3")],
    }


def test_allowed_values_by_reference_are_read_when_asked():
    opt = Option("kind", "auto", str, "what", choices="nnlab.render.sources:KINDS")
    assert opt.allowed() == ("auto", "density", "scatter")


def _switch(name="show"):
    return Command(
        "show",
        lambda run_id=None, *, json: repr((run_id, json)),
        Positional("run_id", "RUN_ID", "a run"),
        (Option("json", False, bool, "as JSON"),),
    )


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["--json", "r1"], ("r1", "true")),  # a bare switch before the run id: true
        (["r1", "--json"], ("r1", "true")),
        (["--json", "false", "r1"], ("r1", "false")),  # a true/false word is its value
        (["--json=no", "r1"], ("r1", "no")),
    ],
)
def test_a_switch_before_the_run_id_does_not_swallow_it(tokens, expected):
    command = _switch()
    assert _run(command, command.switches(tokens)) == repr(expected)
