"""The console for progress and messages: stderr, so stdout carries only results.

Modelled on rich's `get_console()`: one place that every module asks for its console, so
no module imports a heavy one (the trainer) just to print.
"""

from __future__ import annotations

from rich.console import Console


def stderr_console() -> Console:
    """A rich console writing to stderr (resolved at each write, so redirection works)."""
    return Console(stderr=True)


def warn(console: Console, message: str) -> None:
    """Print a warning in yellow, unwrapped, on `console`."""
    from rich.markup import escape

    console.print(f"[yellow]{escape(message)}[/]", soft_wrap=True)
