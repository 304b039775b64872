"""runner/pipeline.py: pipeline files -> validated model (SPEC §1, §2, §6)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from runner import pipeline
from runner.errors import PipelineInvalid
from runner.model import EnvItem, Mount, MountKind, Pipeline, When

WritePipeline = Callable[[Mapping[str, str]], Path]
"""The `write_pipeline` fixture of tests/conftest.py."""

PIPE = ".dockercise.yml"


def _load(write_pipeline: WritePipeline, files: dict[str, str]) -> Pipeline:
    result = pipeline.load(write_pipeline(files))
    assert result is not None
    return result


def _problems(write_pipeline: WritePipeline, files: dict[str, str]) -> list[str]:
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load(write_pipeline(files))
    assert caught.value.exit_code == 2
    lines = [str(p) for p in caught.value.problems]
    assert str(caught.value) == "\n".join(lines)
    return lines


# --- finding files -------------------------------------------------------------------------


def test_find_files_collects_every_pipeline_file_recursively(write_pipeline: WritePipeline) -> None:
    found = {
        PIPE,
        "dockercise.yml",
        "x.dockercise.yml",
        "ci/y.dockercise.yaml",
        "ci/deep/er/.dockercise.yml",
        "ci/deep/z.dockercise.yml",
    }
    ignored = {
        ".git/.dockercise.yml",
        "node_modules/pkg/.dockercise.yml",
        "ci/node_modules/dockercise.yml",
        ".hidden/a.dockercise.yml",
        "ci/.cache/.dockercise.yml",
        ".dockercise/results/dockercise.yml",
        "other.yml",
        "notdockercise.yml",
        "x.dockercise.yml.bak",
        "x.dockercise.json",
    }
    root = write_pipeline(dict.fromkeys(found | ignored, "a:\n"))
    paths = pipeline.find_files(root)
    assert {p.relative_to(root).as_posix() for p in paths} == found
    assert len(paths) == len(found)


def test_the_root_itself_may_be_a_hidden_directory(tmp_path: Path) -> None:
    root = tmp_path / ".checkout" / "node_modules"
    (root / "sub").mkdir(parents=True)
    (root / PIPE).write_text("a:\n")
    (root / "sub" / "b.dockercise.yml").write_text("b:\n")
    found = pipeline.find_files(root)
    assert [p.relative_to(root).as_posix() for p in found] == [PIPE, "sub/b.dockercise.yml"]
    loaded = pipeline.load(root)
    assert loaded is not None
    assert set(loaded.stages) == {"a", "b"}


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": "hello"},
        {".hidden/.dockercise.yml": "a:\n  img: x\n"},
        {"node_modules/x/.dockercise.yml": "a:\n  img: x\n"},
    ],
)
def test_no_pipeline_file_means_none(write_pipeline: WritePipeline, files: dict[str, str]) -> None:
    assert pipeline.load(write_pipeline(files)) is None


def test_empty_file_list_means_none(write_pipeline: WritePipeline) -> None:
    root = write_pipeline({PIPE: "a:\n  img: x\n"})
    assert pipeline.load(root, files=[]) is None


def test_the_pipeline_is_the_union_of_every_file(write_pipeline: WritePipeline) -> None:
    loaded = _load(
        write_pipeline,
        {
            PIPE: "meta:\n  name: union\nbuild:\n  img: x\n",
            "ci/test.dockercise.yml": "# tests\n\ntest:\n  img: x\n  after: build\n",
            "deploy/dockercise.yml": "deploy:\n  img: x\n  after: [test, build]\n",
        },
    )
    assert set(loaded.stages) == {"build", "test", "deploy"}
    assert sorted(loaded.files) == sorted([PIPE, "ci/test.dockercise.yml", "deploy/dockercise.yml"])
    assert loaded.stages["test"].file == "ci/test.dockercise.yml"
    assert loaded.stages["test"].line == 3
    assert loaded.stages["deploy"].file == "deploy/dockercise.yml"
    assert loaded.deps == {"build": set(), "test": {"build"}, "deploy": {"test", "build"}}
    assert loaded.meta.name == "union"


def test_explicit_files_only_those(write_pipeline: WritePipeline) -> None:
    root = write_pipeline(
        {PIPE: "a:\n  img: x\n", "ci/b.dockercise.yml": "b:\n  img: x\n  after: a\n"}
    )
    loaded = pipeline.load(root, files=[root / PIPE])
    assert loaded is not None
    assert set(loaded.stages) == {"a"}
    assert loaded.files == [PIPE]
    both = pipeline.load(root, files=[Path(PIPE), Path("ci/b.dockercise.yml")])
    assert both is not None
    assert both.deps == {"a": set(), "b": {"a"}}
    assert both.stages["b"].file == "ci/b.dockercise.yml"


# --- the model -----------------------------------------------------------------------------

FULL = """\
meta:
  name: full
  concurrency: 3
  timeout: 10m
  network: host
  secrets: {NPM_TOKEN: "secure:abc"}
  statuses: stages
  on:
    push: {branches: [main]}
    pull_request: true
  downstream: https://ci.example.com/webhooks/dockercise
image:
  build: docker/
version:
  img: alpine
  run: echo 1.2.3
check:
  img: alpine
  run: test -f /code/x
main:
  img: image
  run:
    - echo one
    - echo "two $VERSION"
  after: version
  env:
    - version
    - token
    - {LITERAL: "a b", PORT: 8080}
    - {DEBUG: true, OFF: false, RATIO: 1.5, WORD: yes}
  vol:
    - version
    - version:/data
    - code
    - code:/src
    - /etc/hosts:/hosts
    - /tmp/cache:/cache:rw
    - ./rel:/rel:ro
  on: version
  dir: /main/sub
  noLog: true
  neverFail: true
  when: always
  if: check
  unless: check
  timeout: 1h30m
  retry: 5
  paths: ["src/**", "*.py"]
remote:
  remote: owner/repo@release
  timeout: 90s
"""


def test_every_stage_key_builds_the_model(write_pipeline: WritePipeline) -> None:
    loaded = _load(write_pipeline, {PIPE: FULL})
    main = loaded.stages["main"]
    assert main.name == "main"
    assert main.file == PIPE
    assert main.line == 20
    assert main.key_lines["run"] == 22
    assert main.key_lines["env"] == 26
    assert main.img == "image"
    assert main.build is None
    assert main.run == 'set -e\necho one\necho "two $VERSION"'
    assert main.after == ("version",)
    assert main.env == (
        EnvItem("version"),
        EnvItem("token"),
        EnvItem("LITERAL", "a b"),
        EnvItem("PORT", "8080"),
        EnvItem("DEBUG", "true"),
        EnvItem("OFF", "false"),
        EnvItem("RATIO", "1.5"),
        EnvItem("WORD", "yes"),
    )
    # References (no value) and literals keep their names as written; the names the
    # container sees (VERSION, TOKEN, LITERAL) are the plan's: test_plan's test_container_env.
    assert [(item.name, item.value is None) for item in main.env[:3]] == [
        ("version", True),
        ("token", True),
        ("LITERAL", False),
    ]
    assert main.vol == (
        Mount(MountKind.STAGE, "version", "/version", True),
        Mount(MountKind.STAGE, "version", "/data", True),
        Mount(MountKind.CODE, "code", "/code", True),
        Mount(MountKind.CODE, "code", "/src", True),
        Mount(MountKind.HOST, "/etc/hosts", "/hosts", True),
        Mount(MountKind.HOST, "/tmp/cache", "/cache", False),
        Mount(MountKind.HOST, "./rel", "/rel", True),
    )
    assert main.on == "version"
    assert main.dir == "/main/sub"
    assert main.no_log is True
    assert main.never_fail is True
    assert main.when is When.ALWAYS
    assert main.if_ == "check"
    assert main.unless == "check"
    assert main.timeout == 5400.0
    assert main.retry == 5
    assert main.paths == ("src/**", "*.py")
    assert main.remote is None

    image = loaded.stages["image"]
    assert (image.build, image.img, image.run) == ("docker/", None, None)
    version = loaded.stages["version"]
    assert version.run == "echo 1.2.3"
    assert (version.no_log, version.never_fail, version.when, version.retry) == (
        False,
        False,
        When.SUCCESS,
        0,
    )
    assert (version.timeout, version.if_, version.unless, version.on, version.dir) == (
        None,
        None,
        None,
        None,
        None,
    )
    remote = loaded.stages["remote"]
    assert remote.remote == "owner/repo@release"
    assert remote.timeout == 90.0

    meta = loaded.meta
    assert meta.name == "full"
    assert meta.concurrency == 3
    assert meta.timeout == 600.0
    assert meta.network == "host"
    assert meta.secrets == {"NPM_TOKEN": "secure:abc"}
    assert meta.statuses == "stages"
    assert loaded.deps["main"] == {"version", "check", "image"}
    assert loaded.root == write_pipeline({}).resolve()


@pytest.mark.parametrize(
    ("yaml_text", "attribute", "expected"),
    [
        ("a:\n  img: x\n  after: b\nb:\n  img: x\n", "after", ("b",)),
        ("a:\n  img: x\n  env: TOKEN\n", "env", (EnvItem("TOKEN"),)),
        ("a:\n  img: x\n  vol: code\n", "vol", (Mount(MountKind.CODE, "code", "/code"),)),
        ("a:\n  img: x\n  paths: docs/*\n", "paths", ("docs/*",)),
        ("a:\n  img: x\n  run: |\n    echo 1\n    echo 2\n", "run", "echo 1\necho 2\n"),
        ("a:\n  img: x\n  run: [only]\n", "run", "set -e\nonly"),
        ("a:\n  img: x\n  env: [{N: 010}]\n", "env", (EnvItem("N", "10"),)),
        ("a:\n  img: x\n  env: [{N: '010'}]\n", "env", (EnvItem("N", "010"),)),
        ("a:\n  img: x\n  env: [{N: on}]\n", "env", (EnvItem("N", "on"),)),
        ("a:\n  img: x\n  env: [{N: 'secure:xyz'}]\n", "env", (EnvItem("N", "secure:xyz"),)),
        ("a:\n  img: x\n  when: failure\n", "when", When.FAILURE),
        ("a:\n  img: x\n  timeout: 90s\n", "timeout", 90.0),
        ("a:\n  img: x\n  timeout: 10m\n", "timeout", 600.0),
        ("a:\n  img: x\n  timeout: 1h\n", "timeout", 3600.0),
        ("a:\n  img: x\n  timeout: 500ms\n", "timeout", 0.5),
        ("a:\n  img: x\n  timeout: 1m 30s\n", "timeout", 90.0),
        ("a:\n  img: x\n  timeout: 45\n", "timeout", 45.0),
        ("a:\n  img: x\n  on: code\n", "on", "code"),
        ("a:\n  remote: owner/repo\n", "remote", "owner/repo"),
        ("a:\n", "run", None),
        ("a: {}\n", "img", None),
    ],
)
def test_stage_values(
    write_pipeline: WritePipeline, yaml_text: str, attribute: str, expected: object
) -> None:
    loaded = _load(write_pipeline, {PIPE: yaml_text})
    assert getattr(loaded.stages["a"], attribute) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("10m", 600.0), ("1h", 3600.0), ("1h30m", 5400.0), ("500ms", 0.5), (7, 7.0)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert pipeline.parse_duration(text) == seconds


def test_meta_defaults(write_pipeline: WritePipeline) -> None:
    loaded = _load(write_pipeline, {PIPE: "a:\n  img: x\n"})
    assert loaded.meta.name == "project"  # the directory's name
    assert loaded.meta.concurrency is None
    assert loaded.meta.timeout is None
    assert loaded.meta.network is None
    assert loaded.meta.secrets == {}
    assert loaded.meta.statuses == "pipeline"


@pytest.mark.parametrize("name", ["☃", "deploy-prod", "on", "yes", "a b", "x" * 100, "a.b", "CAPS"])
def test_good_stage_names(write_pipeline: WritePipeline, name: str) -> None:
    loaded = _load(
        write_pipeline, {PIPE: f"'{name}':\n  img: x\nlater:\n  img: x\n  after: '{name}'\n"}
    )
    assert set(loaded.stages) == {name, "later"}
    assert loaded.deps["later"] == {name}


def test_a_stage_may_build_without_img_or_run(write_pipeline: WritePipeline) -> None:
    loaded = _load(write_pipeline, {PIPE: "image:\n  build: .\nuse:\n  img: image\n  run: x\n"})
    assert loaded.deps == {"image": set(), "use": {"image"}}


def test_external_env_items_are_not_errors(write_pipeline: WritePipeline) -> None:
    loaded = _load(write_pipeline, {PIPE: "a:\n  img: x\n  env: [NPM_TOKEN, home, {a: b}]\n"})
    assert loaded.deps == {"a": set()}


# --- edges ---------------------------------------------------------------------------------

_BASE = "a:\n  img: x\nb:\n  img: x\nbuilder:\n  build: .\n"


@pytest.mark.parametrize(
    ("body", "deps"),
    [
        ("after: a", {"a"}),
        ("after: [a, b]", {"a", "b"}),
        ("env: [a, EXTERNAL]", {"a"}),
        ("env: b", {"b"}),
        ("env: [{a: literal}]", set()),
        ("vol: [a, 'b:/data', code, '/tmp:/tmp']", {"a", "b"}),
        ("on: a", {"a"}),
        ("on: code", set()),
        ("if: a", {"a"}),
        ("unless: b", {"b"}),
        ("img: builder", {"builder"}),
        ("img: a", set()),  # a plain image name that happens to be a stage without `build`
        ("run: cat out/a", {"a"}),
        ("run: cat /out/a", {"a"}),
        ("run: 'echo \"$(cat /out/a)\" > x'", {"a"}),
        ("run: [cat out/a, 'cat \"/out/b\"']", {"a", "b"}),
        ("run: cat out/a;cat /out/b|wc", {"a", "b"}),
        ("run: cat stdout/a about/b", set()),
        ("run: cat layout/a my-out/a .out/b", set()),
        ("run: cat $OUT/a", set()),
        ("run: cat out/x out/unknown", set()),  # own name and unknown names are ignored
        ("run: echo a b", set()),
    ],
)
def test_edges(write_pipeline: WritePipeline, body: str, deps: set[str]) -> None:
    img = "" if body.startswith("img:") else "img: x\n  "
    loaded = _load(write_pipeline, {PIPE: _BASE + f"x:\n  {img}{body}\n"})
    assert loaded.deps["x"] == deps
    assert loaded.deps["a"] == set()


def test_mentions_of_out_in_a_non_ascii_stage(write_pipeline: WritePipeline) -> None:
    loaded = _load(write_pipeline, {PIPE: "☃:\n  img: x\nx:\n  img: x\n  run: cat out/☃\n"})
    assert loaded.deps["x"] == {"☃"}


# --- every bad input -----------------------------------------------------------------------

BAD = [
    pytest.param(
        {"ci/.dockercise.yml": "ok:\n  img: x\n\n\ntypo:\n  img: x\n  rnu: echo\n"},
        ["ci/.dockercise.yml:7: stage 'typo': unknown key 'rnu' (did you mean 'run'?)"],
        id="unknown-key",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  colour: blue\n"},
        [".dockercise.yml:3: stage 'a': unknown key 'colour'"],
        id="unknown-key-no-suggestion",
    ),
    pytest.param(
        {PIPE: "a:\n  img: 3\n"},
        [".dockercise.yml:2: stage 'a': 'img' must be an image name (a string), not the number 3"],
        id="img-number",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  noLog: yes\n"},
        [".dockercise.yml:3: stage 'a': 'noLog' must be true or false, not 'yes'"],
        id="noLog-yes-is-a-string",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  neverFail: on\n"},
        [".dockercise.yml:3: stage 'a': 'neverFail' must be true or false, not 'on'"],
        id="neverFail-on-is-a-string",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  retry: 9\n"},
        [
            ".dockercise.yml:3: stage 'a': 'retry' must be a whole number from 0"
            " to 5, not the number 9"
        ],
        id="retry-too-big",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  retry: -1\n"},
        [
            ".dockercise.yml:3: stage 'a': 'retry' must be a whole number from 0"
            " to 5, not the number -1"
        ],
        id="retry-negative",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  when: sometimes\n"},
        [
            ".dockercise.yml:3: stage 'a': 'when' must be one of success, failure, always,"
            " not 'sometimes'"
        ],
        id="when-sometimes",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  timeout: soon\n"},
        [
            ".dockercise.yml:3: stage 'a': 'timeout' must be a duration such as"
            " 90s, 10m or 1h, not 'soon'"
        ],
        id="timeout-word",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  run: {x: 1}\n"},
        [
            ".dockercise.yml:3: stage 'a': 'run' must be a script (a string) or a list of commands,"
            " not a mapping"
        ],
        id="run-mapping",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  remote: nope\n"},
        [
            ".dockercise.yml:3: stage 'a': 'remote' must be owner/repo or"
            " owner/repo@branch, not 'nope'"
        ],
        id="remote-format",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  run: echo\n  remote: o/r\n"},
        [
            ".dockercise.yml:4: stage 'a': a 'remote' stage runs no container"
            " (remove 'run', 'img' and 'build')"
        ],
        id="remote-with-run",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  after:\n"},
        [
            ".dockercise.yml:3: stage 'a': 'after' must be a stage name or a list of stage names,"
            " not empty"
        ],
        id="empty-value-is-null-not-a-name",
    ),
    pytest.param(
        {PIPE: "a: 3\n"},
        [".dockercise.yml:1: stage 'a': a stage must be a mapping of keys, not the number 3"],
        id="stage-not-mapping",
    ),
    pytest.param(
        {PIPE: "build:\n  img: x\na:\n  img: x\n  after: [build, biuld]\n"},
        [
            ".dockercise.yml:5: stage 'a': 'after' names unknown stage 'biuld'"
            " (did you mean 'build'?)"
        ],
        id="after-unknown",
    ),
    pytest.param(
        {PIPE: "build:\n  img: x\na:\n  img: x\n  vol: [code, biuld]\n"},
        [".dockercise.yml:5: stage 'a': 'vol' names unknown stage 'biuld' (did you mean 'build'?)"],
        id="vol-unknown",
    ),
    pytest.param(
        {PIPE: "build:\n  img: x\na:\n  img: x\n  vol: 'biuld:/data'\n"},
        [".dockercise.yml:5: stage 'a': 'vol' names unknown stage 'biuld' (did you mean 'build'?)"],
        id="vol-unknown-with-target",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  on: cdoe\n"},
        [".dockercise.yml:3: stage 'a': 'on' names unknown stage 'cdoe' (did you mean 'code'?)"],
        id="on-unknown",
    ),
    pytest.param(
        {PIPE: "check:\n  img: x\na:\n  img: x\n  if: chekc\n"},
        [".dockercise.yml:5: stage 'a': 'if' names unknown stage 'chekc' (did you mean 'check'?)"],
        id="if-unknown",
    ),
    pytest.param(
        {PIPE: "check:\n  img: x\na:\n  img: x\n  unless: chekc\n"},
        [
            ".dockercise.yml:5: stage 'a': 'unless' names unknown stage 'chekc'"
            " (did you mean 'check'?)"
        ],
        id="unless-unknown",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  vol: /x\n"},
        [
            ".dockercise.yml:3: stage 'a': host volume '/x' must be"
            " /host/path:/container/path[:ro|:rw]"
        ],
        id="host-vol-without-target",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  vol: '/h:/c:xx'\n"},
        [".dockercise.yml:3: stage 'a': host volume '/h:/c:xx' has mode 'xx' (use ro or rw)"],
        id="host-vol-bad-mode",
    ),
    pytest.param(
        {PIPE: "b:\n  img: x\na:\n  img: x\n  vol: 'b:data'\n"},
        [".dockercise.yml:5: stage 'a': volume 'b:data' must be NAME or NAME:/absolute/path"],
        id="stage-vol-relative-target",
    ),
    pytest.param(
        {PIPE: "../etc:\n  img: x\n"},
        [".dockercise.yml:1: stage name '../etc' must not contain '/', '\\' or NUL"],
        id="name-dotdot",
    ),
    pytest.param(
        {PIPE: ".hidden:\n  img: x\n"},
        [".dockercise.yml:1: stage name '.hidden' must not start with '.'"],
        id="name-leading-dot",
    ),
    pytest.param(
        {PIPE: "ok:\n  img: x\na/b:\n  img: x\n"},
        [".dockercise.yml:3: stage name 'a/b' must not contain '/', '\\' or NUL"],
        id="name-slash",
    ),
    pytest.param(
        {PIPE: "'a\\b':\n  img: x\n"},
        [".dockercise.yml:1: stage name 'a\\\\b' must not contain '/', '\\' or NUL"],
        id="name-backslash",
    ),
    pytest.param(
        {PIPE: '"a\\0b":\n  img: x\n'},
        [".dockercise.yml:1: NUL character in 'a\\x00b' (remove it)"],
        id="name-nul",
    ),
    pytest.param(
        {PIPE: "x" * 101 + ":\n  img: x\n"},
        [".dockercise.yml:1: a stage name must be at most 100 characters"],
        id="name-101-chars",
    ),
    pytest.param(
        {PIPE: "'':\n  img: x\n"},
        [".dockercise.yml:1: a stage name must not be empty"],
        id="name-empty",
    ),
    pytest.param(
        {PIPE: "code:\n  img: x\n"},
        [".dockercise.yml:1: 'code' is reserved for the checkout (rename the stage)"],
        id="name-code",
    ),
    pytest.param(
        {PIPE: "123:\n  img: x\n"},
        [".dockercise.yml:1: stage name 123 must be a string (quote it: '123')"],
        id="name-not-a-string",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n", "ci/more.dockercise.yml": "b:\n  img: x\na:\n  img: y\n"},
        [
            "ci/more.dockercise.yml:3: stage 'a': defined again (first in .dockercise.yml:1;"
            " rename one)"
        ],
        id="stage-in-two-files",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  run: one\n  img: y\n"},
        [".dockercise.yml:4: stage 'a': 'img' is given twice (first at line 2)"],
        id="duplicate-key",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\nb:\n  img: x\na:\n  img: y\n"},
        [".dockercise.yml:5: 'a' is given twice (first at line 1)"],
        id="duplicate-stage-in-one-file",
    ),
    pytest.param(
        {PIPE: "a:\n  img: x\n  run: a: b\n"},
        [".dockercise.yml:3: YAML syntax error: mapping values are not allowed in this context"],
        id="yaml-syntax",
    ),
    pytest.param(
        {PIPE: "- a\n- b\n"},
        [".dockercise.yml:1: a pipeline file must be a mapping of stages, not a list"],
        id="file-is-a-list",
    ),
    pytest.param(
        {PIPE: "just text\n"},
        [".dockercise.yml:1: a pipeline file must be a mapping of stages, not 'just text'"],
        id="file-is-a-string",
    ),
    pytest.param(
        {PIPE: "a:\n  run: echo\n"},
        [".dockercise.yml:1: stage 'a': has 'run' but no 'img' (add img: IMAGE)"],
        id="run-without-img",
    ),
    pytest.param(
        {PIPE: "meta:\n  name: x\n  nmae: y\n"},
        [".dockercise.yml:3: unknown meta key 'nmae' (did you mean 'name'?)"],
        id="unknown-meta-key",
    ),
    pytest.param(
        {PIPE: "meta: 3\n"},
        [".dockercise.yml:1: meta must be a mapping of keys, not the number 3"],
        id="meta-not-mapping",
    ),
    pytest.param(
        {PIPE: "meta:\n  statuses: all\n"},
        [".dockercise.yml:2: 'statuses' must be pipeline or stages, not 'all'"],
        id="meta-bad-value",
    ),
    pytest.param(
        {
            PIPE: "meta:\n  name: one\n",
            "ci/.dockercise.yml": "meta:\n  network: host\n  name: two\n",
        },
        ["ci/.dockercise.yml:3: meta key 'name' is also set in .dockercise.yml"],
        id="meta-key-in-two-files",
    ),
    pytest.param(
        {
            PIPE: "a:\n  img: 3\nb:\n  rnu: x\n  img: x\nc:\n  img: x\n  after: [zz]\n",
            "ci/.dockercise.yml": "d:\n  run: x\n- broken\n",
            "ci/e.dockercise.yml": "e:\n  run: x\n",
        },
        [
            ".dockercise.yml:2: stage 'a': 'img' must be an image name (a string),"
            " not the number 3",
            ".dockercise.yml:4: stage 'b': unknown key 'rnu' (did you mean 'run'?)",
            ".dockercise.yml:8: stage 'c': 'after' names unknown stage 'zz'",
            "ci/.dockercise.yml:3: YAML syntax error: did not find expected key",
            "ci/e.dockercise.yml:1: stage 'e': has 'run' but no 'img' (add img: IMAGE)",
        ],
        id="several-problems-in-several-files",
    ),
]


@pytest.mark.parametrize(("files", "expected"), BAD)
def test_bad_input(
    write_pipeline: WritePipeline, files: dict[str, str], expected: list[str]
) -> None:
    assert _problems(write_pipeline, files) == expected


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / PIPE).write_bytes(b"a:\n  img: \xff\n")
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        ".dockercise.yml: not UTF-8 text (save the file as UTF-8)"
    ]


def test_a_broken_stage_does_not_cascade(write_pipeline: WritePipeline) -> None:
    """A stage with a problem is still known by name: references to it are not reported too."""
    problems = _problems(
        write_pipeline, {PIPE: "a:\n  img: x\n  rnu: 1\nb:\n  img: x\n  after: a\n"}
    )
    assert problems == [".dockercise.yml:3: stage 'a': unknown key 'rnu' (did you mean 'run'?)"]


_CYCLE = re.compile(r"dependency cycle: (.+) \(remove one of these dependencies\)$")


@pytest.mark.parametrize(
    ("yaml_text", "deps"),
    [
        (
            "a:\n  img: x\n  after: c\nb:\n  img: x\n  after: a\nc:\n  img: x\n  after: b\n",
            {"a": {"c"}, "b": {"a"}, "c": {"b"}},
        ),
        ("a:\n  img: x\n  after: a\n", {"a": {"a"}}),
        # implicit edges: env item naming a stage, and out/NAME mentioned in run
        (
            "a:\n  img: x\n  env: [b]\nb:\n  img: x\n  run: cat out/a\nfree:\n  img: x\n",
            {"a": {"b"}, "b": {"a"}},
        ),
        (
            "a:\n  img: x\n  vol: b\nb:\n  img: x\n  on: c\nc:\n  img: x\n  if: a\n",
            {"a": {"b"}, "b": {"c"}, "c": {"a"}},
        ),
    ],
)
def test_cycle_is_printed_in_run_order(
    write_pipeline: WritePipeline, yaml_text: str, deps: dict[str, set[str]]
) -> None:
    problems = _problems(write_pipeline, {PIPE: yaml_text})
    assert len(problems) == 1
    assert problems[0].startswith(".dockercise.yml:")
    match = _CYCLE.search(problems[0])
    assert match is not None, problems[0]
    cycle = match.group(1).split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == set(deps)
    assert len(cycle) == len(deps) + 1
    for before, after in itertools.pairwise(cycle):
        assert before in deps[after], f"{before} does not run before {after}"
    assert f"stage '{cycle[0]}':" in problems[0]


def test_problem_lines_are_one_line_each(write_pipeline: WritePipeline) -> None:
    problems = _problems(
        write_pipeline, {PIPE: "a:\n  img: x\n  run: |\n    a\n  rnu: 1\n  ruin: 2\n"}
    )
    assert problems == [
        ".dockercise.yml:5: stage 'a': unknown key 'rnu' (did you mean 'run'?)",
        ".dockercise.yml:6: stage 'a': unknown key 'ruin' (did you mean 'run'?)",
    ]
    assert all("\n" not in p for p in problems)
