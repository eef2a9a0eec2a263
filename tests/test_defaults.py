"""The picture options' defaults (nnlab.render.defaults) are the command line's and the
Python API's alike."""

from __future__ import annotations

import inspect

from nnlab.commands.readers import COMMANDS
from nnlab.render import animate
from nnlab.render.defaults import ANIMATE


def test_animate_takes_the_same_defaults_on_both_sides():
    declared = {o.name: o.default for o in COMMANDS["animate"].options}
    signature = inspect.signature(animate.animate).parameters
    for name, value in ANIMATE.items():
        assert declared[name] == value == signature[name].default, name
    assert inspect.signature(animate.snapshot_figure).parameters["kind"].default == "auto"
