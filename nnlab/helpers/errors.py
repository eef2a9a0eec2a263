"""The exceptions nnlab raises; the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NnlabError(Exception):
    """A problem the user can fix (bad option, unknown run, missing data): exit status 2."""

    exit_code = 2


class RunError(NnlabError):
    """A run cannot be read or used as asked (missing, damaged, locked, lacks what is needed)."""


class RunDamaged(RunError):
    """A file of a run is missing, damaged or not what nnlab wrote; the message names the file
    and why (nnlab never reads on with such a value)."""


class TrainingStopped(NnlabError):
    """Training ended early but safely (diverged or interrupted); the run says how to go on."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or ' (choose from ...)'."""
    choices = sorted(choices)
    same = [c for c in choices if c.lower() == str(word).lower()]  # VAE for vae
    close = same or difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (choose from: {', '.join(choices)})"


def closest_ids(word: str, ids: Iterable[str], lister: str) -> str:
    """' (did you mean X?)' or ' (did you mean X, Y or Z?)' for the nearest of many ids (at
    most five, 'latest' among them), else where to see them all: a store holds hundreds
    of runs, too many to list in an error."""
    close = difflib.get_close_matches(str(word), ["latest", *ids], n=5, cutoff=0.6)
    if not close:
        return f" ({lister} lists them)"
    quoted = [f"'{c}'" for c in close]
    shown = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" (did you mean {shown}?)"
