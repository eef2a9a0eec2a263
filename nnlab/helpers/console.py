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


def table_text(header: list[str], cells: list[list[str]], color: bool) -> str:
    """A table as text: aligned columns for a terminal (color), tab-separated for a pipe or
    a file, so that grep and awk see every value whole."""
    if not color:
        return "\n".join("\t".join(row) for row in [header, *cells])
    import io
    import shutil

    from rich.table import Table

    t = Table(box=None, header_style="bold", pad_edge=False)
    for col in header:
        t.add_column(col, no_wrap=True)
    for row in cells:
        t.add_row(*row)
    buf = io.StringIO()
    width = shutil.get_terminal_size((120, 24)).columns
    Console(file=buf, force_terminal=True, width=width, highlight=False).print(t)
    return buf.getvalue().rstrip("\n")


def subscript(i: int) -> str:
    """i in subscript digits (z₁, h₂), as every picture and message names latent axes."""
    return str(i).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
