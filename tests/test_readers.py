"""The read-side commands' declarations: a command's function takes the options object its
declaration parses into and reads every option of it; each option has a meaning, and a
default that its type can hold."""

from __future__ import annotations

import inspect

import pytest

from nnlab.commands import cli, readers


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_declares_exactly_what_its_function_takes(name):
    command = cli.COMMANDS[name]
    params = inspect.signature(command.run).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if command.fields:  # train and sweep get their options and the config fields as pairs
        assert {"opts", "given", "fields"} <= keywords
    else:
        assert keywords == {"opts"}
        source = inspect.getsource(command.run)
        passed_whole = ", opts.runs_dir, opts)" in source  # animate: the library takes it
        for option in command.options:  # no option declared that the command never reads
            assert passed_whole or f"opts.{option.name}" in source, option.name
    assert command.positional is None or command.positional.name in params
    for option in command.options:
        assert option.help and not option.help.endswith(".")
        if option.default is not None:
            assert isinstance(option.default, option.type) or option.type is float


def test_the_readers_are_the_commands_that_read_the_store():
    assert set(readers.COMMANDS) == set(cli.COMMANDS) - {"train", "sweep", "runs", "serve"}
    assert list(cli.COMMANDS)[:3] == ["train", "sweep", "summary"]  # the overview's order
