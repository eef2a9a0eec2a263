"""The exceptions nnlab raises; the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NnlabError(Exception):
    """A problem the user can fix (bad option, unknown run, missing data): exit status 2."""

    exit_code = 2


class RunError(NnlabError):
    """A run cannot be read or used as asked (missing, damaged, locked, lacks what is needed)."""


class TrainingStopped(NnlabError):
    """Training ended early but safely (diverged or interrupted); the run says how to go on."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or ' (choose from ...)'."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (choose from: {', '.join(choices)})"
