"""runner/yaml12.py: YAML 1.2 core schema with line numbers (SPEC §1)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from runner import yaml12
from runner.yaml12 import LineDict, LineList, YamlError


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        # YAML 1.1 booleans are plain strings in 1.2
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("no", "no"),
        ("y", "y"),
        ("n", "n"),
        ("Yes", "Yes"),
        ("ON", "ON"),
        # the only booleans
        ("true", True),
        ("false", False),
        ("True", True),
        ("FALSE", False),
        # ints: decimal (no octal by leading zero), 0o, 0x
        ("010", 10),
        ("-010", -10),
        ("+7", 7),
        ("0o17", 15),
        ("0x1f", 31),
        ("0x1F", 31),
        ("0", 0),
        # not ints in the core schema
        ("0b11", "0b11"),
        ("1_000", "1_000"),
        ("12:30", "12:30"),
        # floats
        ("1.5", 1.5),
        ("1e3", 1000.0),
        # dates and times stay strings
        ("2001-12-14", "2001-12-14"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        # nulls
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("", None),
        # the merge and value keys of YAML 1.1 are plain strings
        ("<<", "<<"),
        ("=", "="),
    ],
)
def test_core_schema_scalar_values(scalar: str, expected: Any) -> None:
    value = yaml12.load(f"key: {scalar}\n")["key"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "y", "n"])
def test_yaml11_booleans_stay_strings_as_keys(word: str) -> None:
    doc = yaml12.load(f"{word}: build\n")
    assert doc == {word: "build"}
    assert next(iter(doc)) == word


@pytest.mark.parametrize(("key", "expected"), [("true", True), ("010", 10), ("~", None)])
def test_keys_use_the_core_schema_too(key: str, expected: Any) -> None:
    doc = yaml12.load(f"{key}: x\n")
    assert list(doc) == [expected]
    assert type(next(iter(doc))) is type(expected)


def test_quoted_scalars_are_strings() -> None:
    doc = yaml12.load("a: 'true'\nb: \"010\"\nc: '~'\nd: ''\n")
    assert doc == {"a": "true", "b": "010", "c": "~", "d": ""}


def test_empty_values_are_null() -> None:
    doc = yaml12.load("stage:\nlist:\n  -\n  - x\n")
    assert doc == {"stage": None, "list": [None, "x"]}


def test_special_floats() -> None:
    doc = yaml12.load("a: .inf\nb: -.inf\nc: .nan\n")
    assert doc["a"] == float("inf")
    assert doc["b"] == float("-inf")
    assert doc["c"] != doc["c"]  # NaN


def test_mappings_and_sequences_are_line_aware() -> None:
    text = textwrap.dedent(
        """\
        # a comment
        first:
          img: alpine

          run:
            - echo one
            - echo two

            - echo three
        second: {img: x, after: [first]}
        """
    )
    doc = yaml12.load(text)
    assert isinstance(doc, LineDict)
    assert doc.line == 2
    assert doc.lines == {"first": 2, "second": 10}
    first = doc["first"]
    assert isinstance(first, LineDict)
    assert first.line == 3
    assert first.lines == {"img": 3, "run": 5}
    run = first["run"]
    assert isinstance(run, LineList)
    assert run == ["echo one", "echo two", "echo three"]
    assert run.line == 6
    assert run.lines == [6, 7, 9]
    assert doc["second"].lines == {"img": 10, "after": 10}
    assert doc["second"]["after"].lines == [10]
    assert doc.duplicates == []


def test_line_aware_containers_compare_as_plain_ones() -> None:
    doc = yaml12.load("a: [1, {b: 2}]\n")
    assert doc == {"a": [1, {"b": 2}]}
    assert isinstance(doc, dict)
    assert isinstance(doc["a"], list)


def test_duplicate_keys_are_recorded_last_value_wins() -> None:
    text = "a:\n  img: x\n  run: one\n  img: y\nb: 1\na: 2\n"
    doc = yaml12.load(text)
    assert doc.duplicates == [("a", 1, 6)]
    assert doc["a"] == 2
    assert doc.lines["a"] == 6
    # the inner mapping keeps its own duplicates
    inner = yaml12.load(text.replace("a: 2\n", ""))["a"]
    assert inner.duplicates == [("img", 2, 4)]
    assert inner["img"] == "y"


def test_anchors_and_aliases_still_work() -> None:
    doc = yaml12.load("base: &b {img: alpine}\nstage: *b\n")
    assert doc["stage"] == {"img": "alpine"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: b: c\n", 1),
        ("ok: 1\nx: 1\n  y: 2\n", 3),
        ("a:\n  - x\n - y\n", 3),
        ("a: 1\nb:\n\tc: 1\n", 3),
        ("a: 1\nb: *nope\n", 2),
        ("a: 1\nb: 2\nc: 3\n- d\n", 4),
    ],
)
def test_syntax_error_names_the_line(text: str, line: int) -> None:
    with pytest.raises(YamlError) as caught:
        yaml12.load(text)
    assert caught.value.line == line
    assert str(caught.value).startswith("YAML syntax error: ")


@pytest.mark.parametrize("text", ["x: !!python/object/apply:os.system [ls]\n", "x: !foo 1\n"])
def test_unsafe_or_unknown_tags_are_errors(text: str) -> None:
    with pytest.raises(YamlError) as caught:
        yaml12.load(text)
    assert caught.value.line == 1


def test_unhashable_key_is_an_error_with_its_line() -> None:
    with pytest.raises(YamlError) as caught:
        yaml12.load("a: 1\n? [x, y]\n: 2\n")
    assert caught.value.line == 2
    assert "plain value" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"), [("", None), ("# only a comment\n", None), ("- a\n", ["a"])]
)
def test_documents_that_are_not_mappings(text: str, expected: Any) -> None:
    assert yaml12.load(text) == expected
