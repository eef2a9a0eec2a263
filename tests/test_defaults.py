"""The picture options (nnlab.render.defaults) are declared once: the command line's help,
its parse and the Python API's Run.animate() all read AnimateOptions."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from nnlab.commands.readers import COMMANDS
from nnlab.helpers.errors import NnlabError
from nnlab.render import animate
from nnlab.render.defaults import AnimateOptions, run_ids


def test_the_command_declares_animate_options_and_nothing_else():
    declared = {o.name: o.default for o in COMMANDS["animate"].options}
    fields = {f.name: f.default for f in dataclasses.fields(AnimateOptions)}
    assert declared == {**fields, "runs_dir": None}
    assert fields["kind"] == "auto" and fields["fps"] == 10 and fields["dpi"] == 100


def test_the_figure_of_one_snapshot_has_the_animation_s_defaults():
    params = inspect.signature(animate.snapshot_figure).parameters
    assert params["kind"].default == AnimateOptions.kind
    assert params["dpi"].default == AnimateOptions.dpi


def test_the_command_line_converts_each_option_once():
    parsed = COMMANDS["animate"].parse(["r1", "--fps=2.5", "--dpi", "40", "--compare=a,b"])
    opts = parsed.opts
    assert isinstance(opts, AnimateOptions)
    assert (opts.fps, opts.dpi, opts.compare, opts.every) == (2.5, 40, ("a", "b"), None)
    assert parsed.given == frozenset({"fps", "dpi", "compare"})


@pytest.mark.parametrize(
    "tokens, needle",
    [
        (["r", "--fps=fast"], "--fps=fast: expected a positive number"),
        (["r", "--dpi=0"], "--dpi=0: expected a whole number of at least 1"),
        (["r", "--every=x"], "--every=x: expected a whole number of at least 1"),
        (["r", "--compare="], "--compare: give the run ids to draw beside RUN_ID"),
    ],
)
def test_a_value_that_cannot_be_converted_is_refused_before_anything_runs(tokens, needle):
    with pytest.raises(NnlabError) as e:
        COMMANDS["animate"].parse(tokens)
    assert needle in str(e.value)


def test_run_ids_splits_on_commas():
    assert run_ids("a,,b", "compare") == ("a", "b")
