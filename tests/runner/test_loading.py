"""SPEC §10 "Loading is bounded": every class of hostile or broken input gets a one-line verdict.

Each test names a class from issue #11; the cases within it are parametrised.
Times are asserted with wide margins: they catch a blow-up (quadratic work,
an unbounded read, a blocking open), not a slow machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from runner import pipeline, sources, yaml12
from runner.errors import PipelineInvalid
from runner.model import Pipeline

WritePipeline = Callable[[Mapping[str, str]], Path]
PIPE = ".dockercise.yml"


def _problems(root: Path, allow_symlinks: bool = True) -> list[str]:
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load(root, allow_symlinks=allow_symlinks)
    lines = [str(p) for p in caught.value.problems]
    for line in lines:
        assert line.isprintable(), line
    return lines


def _text_problems(text: str) -> list[str]:
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts({PIPE: text})
    lines = [str(p) for p in caught.value.problems]
    for line in lines:
        assert line.isprintable(), line
    return lines


def _laughs(levels: int = 9, width: int = 9) -> str:
    text = "a: &a [" + ",".join(["lol"] * width) + "]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i > 1 else "*a"] * width) + "]\n"
    return text


# --- the YAML itself: aliases, depth, tags, numbers -----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_laughs(), id="billion-laughs"),
        pytest.param(
            f'x: &s "{"A" * 100_000}"\n' + "".join(f"s{i}: {{img: *s}}\n" for i in range(2000)),
            id="long-string-aliased-thousands-of-times",
        ),
        pytest.param(
            "x: &l [" + ",".join(["word"] * 500) + "]\n"
            + "".join(f"s{i}: {{img: x, run: *l}}\n" for i in range(100)),
            id="list-aliased-a-hundred-times",
        ),
    ],
)  # fmt: skip
def test_aliases_may_not_expand_a_file_past_ten_times_its_size(text: str) -> None:
    start = time.perf_counter()
    problems = _text_problems(text)
    assert time.perf_counter() - start < 2
    assert len(problems) == 1
    assert "aliases expand this file" in problems[0]
    assert "at most 10-fold" in problems[0]


def test_aliases_within_ten_times_are_fine() -> None:
    text = "a: &img {img: alpine, run: echo}\nb: *img\nc: *img\n"
    loaded = pipeline.load_texts({PIPE: text})
    assert loaded is not None
    assert loaded.stages["c"].img == "alpine"


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [x, [y, *a]]\n"])
def test_a_recursive_alias_is_one_error(text: str) -> None:
    problems = _text_problems(text)
    assert len(problems) == 1
    assert "inside its own anchor" in problems[0]


@pytest.mark.parametrize(
    ("depth", "ok"), [(yaml12.MAX_DEPTH, True), (yaml12.MAX_DEPTH + 1, False), (900, False)]
)
def test_nesting_is_at_most_64_deep(depth: int, ok: bool) -> None:
    parsed = yaml12.parse("[" * depth + "]" * depth)
    assert (parsed.problems == []) is ok
    if not ok:
        assert parsed.problems == [(1, "nesting deeper than 64 levels (a pipeline needs a few)")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a:\n  " + "- " * 5000 + "x\n", id="block-sequences"),
        pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", id="flow-sequences"),
        pytest.param("a: " + "{a: " * 3000 + "x" + "}" * 3000 + "\n", id="flow-mappings"),
    ],
)
def test_deep_nesting_is_one_error(text: str) -> None:
    problems = _text_problems(text)
    assert len(problems) == 1
    assert "nesting" in problems[0]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!int abc", "'abc' is not a valid !!int value"),
        ("!!float abc", "'abc' is not a valid !!float value"),
        ("!!bool yes", "'yes' is not a valid !!bool value"),
        ("!!null x", "'x' is not a valid !!null value"),
        ("!!timestamp x", "tag '!!timestamp' is not supported"),
        ("!!timestamp 2001-12-14", "tag '!!timestamp' is not supported"),
        ("!!binary aGVsbG8=", "tag '!!binary' is not supported"),
        ("!!python/object/apply:os.system [ls]", "tag '!!python/object/apply:os.system'"),
        ("!!python/name:os.system ''", "tag '!!python/name:os.system' is not supported"),
        ("!!set {a, b}", "tag '!!set' is not supported"),
        ("!!omap [a: 1]", "tag '!!omap' is not supported"),
        ("!custom x", "tag '!custom' is not supported"),
        ("!<tag:example.com,2000:x> y", "tag 'tag:example.com,2000:x' is not supported"),
    ],
)
def test_explicit_tags_are_one_line_errors(value: str, shown: str) -> None:
    problems = _text_problems(f"a:\n  img: x\n  run: {value}\n")
    assert len(problems) == 1
    assert problems[0].startswith(".dockercise.yml:3: ")
    assert shown in problems[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("!!str 5", "5"), ("!!int '7'", 7), ("!!float 1", 1.0), ("! 5", "5"), ("!!null ''", None)],
)
def test_core_tags_still_work(value: str, expected: object) -> None:
    doc = yaml12.load(f"x: {value}\n")
    assert doc["x"] == expected
    assert type(doc["x"]) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "a:\n  img: x\n  retry: " + "9" * 5000 + "\n",
        "a:\n  img: x\n  env: [{N: 0x" + "f" * 5000 + "}]\n",
        "a:\n  img: x\n  env: [{N: " + "1" * 101 + "}]\n",
        "a:\n  img: x\n  env: [{N: 1." + "5" * 200 + "}]\n",
        "? " + "9" * 4301 + "\n: {img: x}\n",
    ],
)
def test_numbers_of_thousands_of_digits_are_errors(text: str) -> None:
    problems = _text_problems(text)
    assert len(problems) == 1
    assert "is too long (at most 100 characters; quote it if it is text)" in problems[0]
    assert len(problems[0]) < 300


def test_a_number_of_100_digits_is_a_number() -> None:
    loaded = pipeline.load_texts({PIPE: "a:\n  img: x\n  env: [{N: " + "1" * 100 + "}]\n"})
    assert loaded is not None
    assert loaded.stages["a"].env[0].value == "1" * 100


@pytest.mark.parametrize(
    "text",
    [
        "{1: x, ~: y, 1.5: z, true: w, a: {img: x}}\n",
        "1: {img: x}\nb: {img: x}\n~: {img: x}\n2.5: {img: x}\nc: {img: x}\n",
        "? [a, b]\n: {img: x}\nb: {img: x}\n? {c: d}\n: 1\n",
        "a: {img: x, 1: y, ~: z, [q]: w}\n",
        "meta: {1: x, ~: y}\na: {img: x}\n",
    ],
)
def test_keys_that_sort_badly_are_errors_not_type_errors(text: str) -> None:
    problems = _text_problems(text)
    assert problems


# --- names and values: one line each ---------------------------------------------------------


_UNKNOWN = ".dockercise.yml:3: stage 'a': 'after' names unknown stage "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '"a\\nb":\n  img: x\n  rnu: 1\n',
            ".dockercise.yml:3: stage 'a\\nb': unknown key 'rnu' (did you mean 'run'?)",
        ),
        (
            'a:\n  img: x\n  after: "b\\nc\\r\\u2028d\\x1b[2J"\n',
            ".dockercise.yml:3: stage 'a': 'after' names unknown stage 'b\\nc\\r\\u2028d\\x1b[2J'",
        ),
        ('a:\n  img: "x\\0y"\n', ".dockercise.yml:2: NUL character in 'x\\x00y' (remove it)"),
        ('"a\\0b": {img: x}\n', ".dockercise.yml:1: NUL character in 'a\\x00b' (remove it)"),
        ('a: {env: [{"N\\0": v}]}\n', ".dockercise.yml:1: NUL character in 'N\\x00' (remove it)"),
        ("a:\n  img: x\n  after: \"it's\"\n", _UNKNOWN + "'it\\'s'"),
        ("a:\n  img: x\n  after: '\\'\n", _UNKNOWN + "'\\\\'"),
    ],
)  # fmt: skip
def test_names_and_values_are_quoted_escaped(text: str, expected: str) -> None:
    assert _text_problems(text) == [expected]


def test_a_long_value_is_cut_in_the_problem() -> None:
    problems = _text_problems("a:\n  img: x\n  after: " + "b" * 200_000 + "\n")
    assert problems == [
        ".dockercise.yml:3: stage 'a': 'after' names unknown stage '"
        + "b" * 100
        + "'... (200000 characters)"
    ]


def test_a_file_name_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "a\nb.dockercise.yml").write_text("a:\n  rnu: 1\n")
    assert _problems(tmp_path) == [
        "a\\nb.dockercise.yml:2: stage 'a': unknown key 'rnu' (did you mean 'run'?)"
    ]


def test_syntax_errors_are_one_line() -> None:
    for text in ["a: b: c\n", "a: [\n", "a: 'x\n", "\t- x\n", "a: *\n", "a: 1\n---\nb: 2\n"]:
        problems = _text_problems(text)
        assert len(problems) == 1, text
        assert problems[0].startswith(".dockercise.yml:"), problems


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x85", "\ufeff\ufeff", "\x7f"])
def test_raw_control_characters_in_the_text(char: str) -> None:
    text = f"a:\n  img: x{char}y\n"
    try:
        loaded = pipeline.load_texts({PIPE: text})
    except PipelineInvalid as e:
        assert all(str(p).isprintable() for p in e.problems)
    else:
        assert loaded is not None


# --- files: size, special files, symlinks, the search ----------------------------------------


def test_a_file_over_256_kib_is_an_error(write_pipeline: WritePipeline) -> None:
    big = "a:\n  img: x\n  run: |\n" + ("    echo " + "x" * 90 + "\n") * 2700
    assert len(big.encode()) > sources.MAX_FILE
    root = write_pipeline({PIPE: big})
    assert _problems(root) == [".dockercise.yml: is over 256 KiB (split it, or trim it)"]
    assert _text_problems(big) == [".dockercise.yml: is over 256 KiB (split it, or trim it)"]


def test_files_over_1_mib_in_all_are_an_error(write_pipeline: WritePipeline) -> None:
    part = "".join(f"s{{n}}_{i}:\n  img: x\n  run: echo {'y' * 80}\n" for i in range(2000))
    files = {f"p{n}.dockercise.yml": part.replace("{n}", str(n)) for n in range(6)}
    assert all(len(t.encode()) <= sources.MAX_FILE for t in files.values())
    assert sum(len(t.encode()) for t in files.values()) > sources.MAX_TOTAL
    expected = "p4.dockercise.yml: is past the 1 MiB that the pipeline files may hold in all"
    assert expected in _problems(write_pipeline(files))
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts(files)
    assert expected in [str(p) for p in caught.value.problems]


def test_a_symlink_to_dev_zero_is_never_read(tmp_path: Path) -> None:
    (tmp_path / PIPE).symlink_to("/dev/zero")
    start = time.perf_counter()
    problems = _problems(tmp_path)
    assert time.perf_counter() - start < 1
    assert problems == [
        ".dockercise.yml: is a symlink to a file outside the project"
        " (only links inside it are read)"
    ]


@pytest.mark.timeout(10)
def test_a_fifo_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / PIPE)
    assert _problems(tmp_path) == [
        ".dockercise.yml: is a FIFO, not a regular file (pipeline files are plain files)"
    ]


@pytest.mark.timeout(10)
def test_a_symlink_to_a_fifo_inside_the_project_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / PIPE).symlink_to(tmp_path / "fifo")
    assert _problems(tmp_path) == [
        ".dockercise.yml: is a FIFO, not a regular file (pipeline files are plain files)"
    ]


def test_a_device_given_as_a_pipeline_file_is_never_opened(tmp_path: Path) -> None:
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load(tmp_path, files=[Path("/dev/null")])
    assert [str(p) for p in caught.value.problems] == [
        "/dev/null: is a device, not a regular file (pipeline files are plain files)"
    ]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: (root / PIPE).symlink_to(PIPE), "is a symlink loop"),
        (
            lambda root: ((root / "b").symlink_to(root / PIPE), (root / PIPE).symlink_to("b")),
            "is a symlink loop",
        ),
        (lambda root: (root / PIPE).symlink_to("nowhere"), "is a symlink to nothing (a broken link)"),  # noqa: E501
    ],
)  # fmt: skip
def test_a_broken_symlink_is_one_error(
    tmp_path: Path, make: Callable[[Path], object], expected: str
) -> None:
    make(tmp_path)
    assert _problems(tmp_path) == [f".dockercise.yml: {expected}"]


def test_a_symlink_to_a_host_file_never_shows_its_contents(tmp_path: Path) -> None:
    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root: $6$SECRETHASH:19000:0:99999:7:::\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / PIPE).symlink_to(secret)
    for allow_symlinks in (True, False):
        problems = _problems(root, allow_symlinks)
        assert len(problems) == 1
        assert "SECRETHASH" not in problems[0]
        assert "root" not in problems[0].split(":", 1)[1]


def test_symlinks_inside_the_project_are_read_locally_never_in_bot_builds(
    write_pipeline: WritePipeline,
) -> None:
    root = write_pipeline({"ci/real.yml": "a:\n  img: x\n"})
    (root / PIPE).symlink_to("ci/real.yml")
    loaded = pipeline.load(root)
    assert loaded is not None
    assert set(loaded.stages) == {"a"}
    assert _problems(root, allow_symlinks=False) == [
        ".dockercise.yml: is a symlink (bot builds read no symlinked pipeline file;"
        " commit the file itself)"
    ]


def test_the_search_does_not_follow_symlinked_directories(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / PIPE).write_text("leak:\n  img: x\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / PIPE).write_text("a:\n  img: x\n")
    (root / "linked").symlink_to(outside)
    (root / "loop").symlink_to(root)
    assert pipeline.find_files(root) == [root / PIPE]
    loaded = pipeline.load(root)
    assert loaded is not None
    assert set(loaded.stages) == {"a"}


def test_a_tree_a_thousand_directories_deep(tmp_path: Path) -> None:
    deep = tmp_path
    for _ in range(1000):  # os.makedirs would recurse as deep
        deep = deep / "d"
        deep.mkdir()
    (deep / PIPE).write_text("a:\n  img: x\n")
    (tmp_path / PIPE).write_text("b:\n  img: x\n")
    found = pipeline.find_files(tmp_path)
    assert found == [tmp_path / PIPE, deep / PIPE]
    loaded = pipeline.load(tmp_path)
    assert loaded is not None
    assert set(loaded.stages) == {"a", "b"}


def test_texts_and_files_give_the_same_pipeline(write_pipeline: WritePipeline) -> None:
    files = {PIPE: "a:\n  img: x\n", "ci/b.dockercise.yml": "b:\n  img: x\n  after: a\n"}
    from_disk = pipeline.load(write_pipeline(files))
    from_texts = pipeline.load_texts(files, root=write_pipeline({}))
    assert isinstance(from_disk, Pipeline)
    assert isinstance(from_texts, Pipeline)
    assert from_disk.stages == from_texts.stages
    assert from_disk.deps == from_texts.deps
    assert pipeline.load_texts({}) is None


# --- linear-time reporting -------------------------------------------------------------------


def _many(kind: str, n: int = 20_000, per_file: int = 4_000) -> dict[str, str]:
    line = {
        "unknown-reference": "s{i}: {{img: x, after: nope{i}}}\n",
        "close-reference": "s{i}: {{img: x, after: s{i}x}}\n",
        "unknown-key": "s{i}: {{rnu: x}}\n",
        "bad-type": "s{i}: {{img: x, retry: 1.0}}\n",
        "bad-name": "'.s{i}': {{img: x}}\n",
        "duplicate": "s: {{img: x}}\n",
        "run-without-img": "s{i}: {{run: x}}\n",
    }[kind]
    return {
        f"f{f}.dockercise.yml": "".join(line.format(i=i) for i in range(f, min(n, f + per_file)))
        for f in range(0, n, per_file)
    }


@pytest.mark.parametrize(
    "kind",
    [
        "unknown-reference",
        "close-reference",
        "unknown-key",
        "bad-type",
        "bad-name",
        "duplicate",
        "run-without-img",
    ],
)
def test_20000_bad_stages_are_reported_in_linear_time(kind: str) -> None:
    files = _many(kind)
    start = time.perf_counter()
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts(files)
    took = time.perf_counter() - start
    assert len(caught.value.problems) >= 19_000
    assert all("\n" not in str(p) for p in caught.value.problems)
    assert took < 15, f"{took:.1f} s: quadratic?"
