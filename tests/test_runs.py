"""`nnlab runs`: tags, notes and the trash from the command line, end to end; results on
stdout, what was done on stderr, every mistake one line with exit status 2."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURE_CLS as CLS
from tests.conftest import FIXTURE_VAE as VAE
from tests.conftest import digests


def test_tag_note_and_the_tables_show_them(store, nnlab):
    r = nnlab("runs", "tag", VAE, "beta1", "keep")
    assert (r.code, r.out) == (0, f"{VAE}\tbeta1 keep\n")
    assert nnlab("runs", "untag", VAE, "beta1").out == f"{VAE}\tkeep\n"
    assert nnlab("runs", "note", VAE, "[bold]not", "markup[/]").code == 0
    table = nnlab("summary").out.splitlines()
    assert table[0].endswith("\ttags") and table[1].endswith("\tkeep") and table[2].endswith("\t-")
    one = nnlab("summary", VAE).out
    assert "tags keep" in one and "note [bold]not markup[/]" in one
    rows = nnlab("summary", "--json").json()
    assert [r["tags"] for r in rows] == [["keep"], []]
    assert nnlab("summary", VAE, "--json").json()["note"] == "[bold]not markup[/]"


def test_rm_restore_trash_and_empty_trash(store, nnlab):
    r = nnlab("runs", "rm", VAE, CLS)
    assert (r.code, r.out.split()) == (0, [VAE, CLS]) and "2 moved into the trash" in r.err
    assert nnlab("summary").out.startswith("no runs yet")
    assert nnlab("runs", "trash").out.split() == [CLS, VAE]
    r = nnlab("runs", "restore", CLS)
    assert r.out == f"{CLS}\n" and "1 moved back" in r.err
    r = nnlab("runs", "empty-trash")
    assert r.out == f"{VAE}\n" and "1 deleted for good" in r.err
    assert nnlab("runs", "trash").out == ""


@pytest.mark.parametrize(
    "args, needle",
    [
        ([], "give an action: nnlab runs tag | untag"),
        (["tga", VAE, "x"], "unknown action 'tga' (did you mean 'tag'?)"),
        (["tag", VAE], "usage: nnlab runs tag ID TAG [TAG ...]"),
        (["note", VAE], "usage: nnlab runs note ID TEXT"),
        (["trash", "x"], "usage: nnlab runs trash"),
        (["tag", VAE, "a b"], "tag 'a b': use letters"),
        (["tag", "../etc", "x"], "invalid run id"),
        (["tag", "nope", "x"], "no run 'nope'"),
        (["rm", "nope"], "no run or sweep 'nope'"),
        (["rm", VAE, "nope"], "no run or sweep 'nope'"),  # the first still moved, and said
        (["restore", "nope"], "no run or sweep 'nope' in the trash"),
        (["rm", "--force", VAE], "unknown option --force for 'runs'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(store, nnlab, args, needle):
    before = digests(store)
    r = nnlab("runs", *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    if args[:2] == ["rm", VAE]:
        assert r.out == f"{VAE}\n" and not (store / VAE).exists()
    else:
        assert digests(store) == before and r.out == ""
