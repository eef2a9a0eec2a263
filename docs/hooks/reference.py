"""MkDocs hook: the configuration page's field reference, generated from the config
dataclasses at build time (nnlab.commands.help.config_reference), never written twice."""

from __future__ import annotations

MARKER = "<!-- config-reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the marker with the generated reference."""
    if MARKER not in markdown:
        return markdown
    from nnlab.commands.help import config_reference

    return markdown.replace(MARKER, config_reference())
