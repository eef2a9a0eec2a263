"""Typed text into values: one set of boolean words, lists, raw flags, bounded numbers."""

from __future__ import annotations

import pytest

from nnlab.helpers import options
from nnlab.helpers.errors import NnlabError


@pytest.mark.parametrize("word", ["true", "Yes", "1", "ON", True])
def test_true_words(word):
    assert options.parse_bool(word, "x") is True


@pytest.mark.parametrize("word", ["false", "NO", "0", "off", False])
def test_false_words(word):
    assert options.parse_bool(word, "x") is False


def test_bool_error_names_the_option():
    with pytest.raises(NnlabError, match="--plot: expected true or false, got 'maybe'"):
        options.parse_bool("maybe", "plot")


@pytest.mark.parametrize(
    "text,typ,expected",
    [
        ("007", str, "007"),
        ("'quoted'", str, "quoted"),
        ("1e-3", float, 1e-3),
        ("[256,128]", list[int], [256, 128]),
        ("(64)", list[int], [64]),
        ("null", int | None, None),
        ("2", int | None, 2),
    ],
)
def test_parse_value_by_type(text, typ, expected):
    assert options.parse_value("k", text, typ) == expected


@pytest.mark.parametrize(
    "value,expected", [(4, [4]), ((0, 4), [0, 4]), ("0,4", [0, 4]), ("[0, 4]", [0, 4])]
)
def test_int_list_however_fire_passed_it(value, expected):
    assert options.int_list(value, "classes", "0,4") == expected


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: options.int_list("a,b", "units", "0,3"), "give whole numbers, e.g. --units=0,3"),
        (lambda: options.parse_classes("3,10"), "class numbers run from 0 to 9"),
        (lambda: options.parse_units("12", 10), "this layer has units 0 to 9"),
        (lambda: options.parse_pair("1,2,3"), "give two test image indices"),
        (lambda: options.positive_int("0", "every"), "--every=0: expected a whole number"),
        (lambda: options.positive_number("inf", "fps"), "--fps=inf: expected a positive"),
    ],
)
def test_errors_name_the_option(call, needle):
    with pytest.raises(NnlabError) as e:
        call()
    assert needle in str(e.value)


def test_classes_sorted_and_unique():
    assert options.parse_classes("9,0,9") == [0, 9] and options.parse_classes(None) == list(
        range(10)
    )


def test_command_line_split_keeps_the_text_typed():
    tokens = ["vae", "--name=007", "--epochs", "3", "--deterministic", "--hidden-dims=[8,4]"]
    positional, flags = options.split_command_line(tokens)
    assert positional == ["vae"]
    assert flags == [
        ("name", "007"),
        ("epochs", "3"),
        ("deterministic", "true"),
        ("hidden_dims", "[8,4]"),
    ]
    # a negative number is a value; a repeated flag is kept, in order
    assert options.split_command_line(["--lr", "-1", "r", "--c=a", "--c", "b"]) == (
        ["r"],
        [("lr", "-1"), ("c", "a"), ("c", "b")],
    )


def test_layer_sizes_as_papers_write_them():
    assert options.parse_value("sizes", "784-10-3-10", list[int]) == [784, 10, 3, 10]
    assert options.parse_value("sizes", "[784,10]", list[int]) == [784, 10]
    with pytest.raises(NnlabError):
        options.parse_value("dropout", "0.2-0.5", list[float])  # only whole numbers


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]  # fmt: skip


def test_classes_take_the_names_the_legend_shows():
    assert options.parse_classes("Shirt,coat,0", 10, FASHION) == [0, 4, 6]
    assert options.parse_classes(["ankle boot", 3], 10, FASHION) == [3, 9]
    with pytest.raises(NnlabError, match=r"no class 'Shrit' \(did you mean 'Shirt'\?\)"):
        options.parse_classes("Shrit", 10, FASHION)
    with pytest.raises(NnlabError, match="class numbers run from 0 to 9"):
        options.parse_classes("Shirt,10", 10, FASHION)
