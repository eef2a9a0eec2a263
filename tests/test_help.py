"""Help pages: every option and config field with its type, default, values and meaning."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

from nnlab import __version__, families
from nnlab.commands import cli
from nnlab.config import config


def _field_line(page: str, name: str) -> str:
    (line,) = [ln for ln in page.splitlines() if ln.strip().startswith(f"--{name}=")]
    return line


@pytest.mark.parametrize("model", ["vae", "classifier"])
def test_train_model_page_lists_every_field(nnlab, model):
    r = nnlab("train", model, "--help")
    assert r.code == 0 and r.err == "", r.err
    page = r.out[r.out.index("config fields of") :]
    cls = families.get(model).config_class
    for f in dataclasses.fields(cls):
        if f.name == "model":
            continue
        line = _field_line(page, f.name)
        assert "=" in line and line.split("=", 1)[1].split()[0] in (
            "INT",
            "NUMBER",
            "TEXT",
            "BOOL",
            "INTS",
            "NUMBERS",
            "CHOICE",
        ), line
        at = page.index(line)
        entry = page[at : page.find("\n  --", at + 1)]
        assert "[default:" in entry and config.field_info(cls, f.name)["help"][:20] in " ".join(
            entry.split()
        ), entry
        for choice in config.field_info(cls, f.name).get("choices", ()):
            assert choice in entry
    assert "presets" in page and ("vae-beta10" if model == "vae" else "latent3") in page


def test_train_page_without_model_and_with_a_typo(nnlab):
    page = nnlab("train", "--help").out
    assert "--beta=NUMBER" in page and "--sizes=INTS" in page and "--preset=" in page
    assert "nielsen" in page and "init=normal" in page  # what each preset changes
    r = nnlab("train", "vea", "--help")
    assert r.code == 2 and "did you mean 'vae'" in r.err


def test_sweep_page_lists_its_options(nnlab):
    r = nnlab("sweep", "--help")
    assert r.code == 0 and r.err == "" and r.out.startswith("usage: nnlab sweep MODEL")
    for option in cli.COMMANDS["sweep"].options:
        assert f"--{option.name}" in r.out
    assert "one of: local, ray" in r.out and "nnlab train MODEL --help" in r.out


@pytest.mark.parametrize("command", [c for c in cli.COMMANDS if c not in ("train", "sweep")])
def test_command_pages_list_every_option(nnlab, command):
    r = nnlab(command, "--help")
    assert r.code == 0 and r.err == ""
    declared = cli.COMMANDS[command]
    for option in declared.options:
        assert f"--{option.name}" in r.out
        entry = r.out[r.out.index(f"\n  --{option.name}") + 1 :].split("\n  --")[0]
        assert option.help[:20] in " ".join(entry.split()), entry
        for choice in option.allowed():
            assert choice in entry
    # the command's function takes the options object its declaration parses into
    params = inspect.signature(declared.run).parameters
    keywords = {n: p for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert list(keywords) == ["opts"]
    assert keywords["opts"].annotation == declared.options_type.__name__
    assert declared.positional is None or declared.positional.help in " ".join(r.out.split())
    assert "INFO:" not in r.out and "Optional[" not in r.out and "--run_id" not in r.out


def test_overview_and_version(nnlab):
    for args in (["--help"], ["-h"], []):
        r = nnlab(*args)
        assert r.code == 0 and all(c in r.out for c in cli.COMMANDS)
    assert nnlab("--version").out.strip() == f"nnlab {__version__}"


@pytest.mark.slow  # starts a process
def test_help_needs_no_pager_and_writes_stdout():
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", "animate", "--help"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PAGER": "false"},  # a pager would fail the command
        timeout=60,
    )
    assert r.returncode == 0 and "--classes" in r.stdout and r.stderr == ""


def test_every_command_says_what_it_does_in_one_line():
    """#38 item 9: the overview shows each command's first line; a first paragraph that
    runs on to a second line was cut mid-sentence there."""
    import inspect

    from nnlab.commands.cli import COMMANDS

    for name, command in COMMANDS.items():
        first = (inspect.getdoc(command.run) or "").split("\n\n")[0]
        assert first and "\n" not in first and first.endswith("."), name
