"""runner/variables.py: `--env NAME=VALUE` and `--env-file FILE` (SPEC §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.variables import parse_assignments, read_env_file

ENVIRON = {"HOME": "/home/me", "EMPTY": "", "PATH": "/bin"}


@pytest.mark.parametrize(
    ("item", "name", "value"),
    [
        ("A=1", "A", "1"),
        ("A=", "A", ""),
        ("URL=postgres://u:p@h/db?x=1&y=2", "URL", "postgres://u:p@h/db?x=1&y=2"),
        ("A==", "A", "="),
        ("Q='quoted'", "Q", "'quoted'"),
        ('Q="double"', "Q", '"double"'),
        ("S= spaces kept ", "S", " spaces kept "),
        ("D=$HOME ${PATH}", "D", "$HOME ${PATH}"),
        ("N=line1\nline2", "N", "line1\nline2"),
        ("U=☃ ünï", "U", "☃ ünï"),
        ("lower=x", "lower", "x"),
    ],
)
def test_assignment_value_is_verbatim(item: str, name: str, value: str) -> None:
    assert parse_assignments([item], ENVIRON) == {name: value}


def test_bare_name_passes_through_from_environ() -> None:
    assert parse_assignments(["HOME", "EMPTY", "NOT_SET"], ENVIRON) == {
        "HOME": "/home/me",
        "EMPTY": "",
    }


def test_later_assignments_win_and_nothing_is_read_from_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONLY_IN_OS", "x")
    assert parse_assignments(["A=1", "A=2", "ONLY_IN_OS"], {}) == {"A": "2"}


@pytest.mark.parametrize("item", ["=value", "", "BAD NAME=x", " =x", "A\tB=1"])
def test_bad_assignment_is_a_usage_error_naming_it(item: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignments(["GOOD=1", item], ENVIRON)
    assert f"--env {item}" in str(caught.value)
    assert "NAME=VALUE" in str(caught.value)
    assert caught.value.exit_code == 2


def test_env_file(tmp_path: Path) -> None:
    path = tmp_path / "vars.env"
    path.write_text(
        "# a comment\n"
        "\n"
        "   \n"
        "A=1\n"
        "  # an indented comment\n"
        "URL=http://x/?a=b#not-a-comment\n"
        "QUOTED='kept'\n"
        "SPACES= a b \n"
        "HOME\n"
        "NOT_SET\n"
        "UNI=☃\n"
        "A=2\n",
        encoding="utf-8",
    )
    assert read_env_file(path, ENVIRON) == {
        "A": "2",
        "URL": "http://x/?a=b#not-a-comment",
        "QUOTED": "'kept'",
        "SPACES": " a b ",
        "HOME": "/home/me",
        "UNI": "☃",
    }


def test_env_file_with_crlf(tmp_path: Path) -> None:
    path = tmp_path / "dos.env"
    path.write_bytes(b"A=1\r\nB=2\r\n")
    assert read_env_file(path, {}) == {"A": "1", "B": "2"}


def test_empty_env_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.env"
    path.write_text("")
    assert read_env_file(path, ENVIRON) == {}


@pytest.mark.parametrize(("bad", "line"), [("=x", 3), ("TWO WORDS=x", 3), ("export A=1", 3)])
def test_env_file_error_names_file_and_line(tmp_path: Path, bad: str, line: int) -> None:
    path = tmp_path / "bad.env"
    path.write_text(f"# comment\nOK=1\n{bad}\nLATER=2\n")
    with pytest.raises(UsageError) as caught:
        read_env_file(path, ENVIRON)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert bad in str(caught.value)


@pytest.mark.parametrize("kind", ["missing", "directory", "not-utf8"])
def test_unreadable_env_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "vars.env"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(UsageError) as caught:
        read_env_file(path, ENVIRON)
    assert str(caught.value).startswith(f"--env-file {path}: cannot read it (")
    assert caught.value.exit_code == 2
