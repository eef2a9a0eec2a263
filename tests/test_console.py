"""The console: messages on stderr, never stdout; tables whole for a pipe, aligned for a
terminal."""

from __future__ import annotations

from nnlab.helpers.console import stderr_console, subscript, table_text, warn


def test_messages_go_to_stderr_not_stdout(capsys):
    warn(stderr_console(), "a [bold]markup-looking[/] warning")
    out, err = capsys.readouterr()
    assert out == "" and "a [bold]markup-looking[/] warning" in err  # printed as typed


def test_a_table_for_a_pipe_is_tab_separated_and_whole():
    text = table_text(["id", "note"], [["r1", "a long value with spaces"], ["r2", "-"]], False)
    assert text.splitlines() == ["id\tnote", "r1\ta long value with spaces", "r2\t-"]


def test_a_table_for_a_terminal_is_aligned():
    import re

    text = table_text(["id", "n"], [["a", "1"], ["bbbb", "22"]], True)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()  # without the bold header
    assert len(lines) == 3
    starts = {line.find(v) for line, v in zip(lines, ["n", "1", "22"], strict=True)}
    assert len(starts) == 1  # the second column starts at one place in every row


def test_subscripts():
    assert subscript(1) == "₁" and subscript(12) == "₁₂"
