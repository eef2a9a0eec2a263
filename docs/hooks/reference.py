"""MkDocs hook: the generated parts of pages, never written twice: the configuration
page's field reference (from the config dataclasses, nnlab.commands.help.config_reference)
and the API reference (one mkdocstrings entry per name `import nnlab` exports, headed by
that name: nnlab.start, not nnlab.library.writer.start)."""

from __future__ import annotations

MARKER = "<!-- config-reference -->"
API_MARKER = "<!-- api-reference -->"


def api_reference() -> str:
    """The API reference's mkdocstrings entries, in nnlab.__all__'s order."""
    import nnlab

    parts = []
    for name in nnlab.__all__:
        if name in nnlab._LAZY:
            module, attribute = nnlab._LAZY[name]
            parts.append(
                f"::: {module}.{attribute}\n"
                "    options:\n"
                f'      heading: "nnlab.{name}"\n'
                f'      toc_label: "nnlab.{name}"\n'
            )
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the markers with the generated references."""
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_reference())
    if MARKER not in markdown:
        return markdown
    from nnlab.commands.help import config_reference

    return markdown.replace(MARKER, config_reference())
