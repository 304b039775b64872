"""runner/plan.py: what each stage's container gets (SPEC §3, §4)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from runner import pipeline, plan
from runner.errors import MissingVariables
from runner.model import Pipeline
from runner.plan import Bind, RunDirs

WritePipeline = Callable[[Mapping[str, str]], Path]
"""The `write_pipeline` fixture of tests/conftest.py."""

RUN_ID = "20260101T000000000Z-abcdef01"

PIPE = """\
meta:
  network: isolated
version:
  img: alpine
  run: echo 1.2.3
token-source:
  img: alpine
  run: echo secret
main:
  img: alpine
  env:
    - version
    - token
    - HOME_DIR
    - {Literal_Name: "a b", PORT: 8080}
  run: echo "$VERSION"
other:
  img: alpine
  env: [token, Region]
  run: echo
unused:
  img: alpine
  env: [NEVER_SELECTED]
"""


@pytest.fixture
def pipe(write_pipeline: WritePipeline) -> Pipeline:
    loaded = pipeline.load(write_pipeline({".dockercise.yml": PIPE}))
    assert loaded is not None
    return loaded


def _load(write_pipeline: WritePipeline, text: str) -> Pipeline:
    loaded = pipeline.load(write_pipeline({".dockercise.yml": text}))
    assert loaded is not None
    return loaded


@pytest.fixture
def dirs(tmp_path: Path, write_pipeline: WritePipeline) -> RunDirs:
    return RunDirs(tmp_path / "private", write_pipeline({}).resolve())


# --- external variables --------------------------------------------------------------------


def test_external_variables_of_the_selected_stages(pipe: Pipeline) -> None:
    assert plan.external_variables(pipe, ["main", "other", "version"]) == {
        "token": ["main", "other"],
        "HOME_DIR": ["main"],
        "Region": ["other"],
    }
    assert plan.external_variables(pipe, ["version"]) == {}
    assert plan.external_variables(pipe, pipe.stages)["NEVER_SELECTED"] == ["unused"]


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        # the first source that has it wins
        ([{"TOKEN": "one"}, {"TOKEN": "two"}], "one"),
        ([{}, {"TOKEN": "two"}], "two"),
        # within one source, NAME.upper() before the name as written
        ([{"token": "lower", "TOKEN": "upper"}], "upper"),
        ([{"token": "lower"}], "lower"),
        # the source order matters more than the spelling
        ([{"token": "lower"}, {"TOKEN": "upper"}], "lower"),
        # an empty value is a value
        ([{"TOKEN": ""}, {"TOKEN": "later"}], ""),
    ],
)
def test_resolve_external_lookup_order(
    pipe: Pipeline, sources: list[dict[str, str]], expected: str
) -> None:
    found = plan.resolve_external(pipe, ["other"], [*sources, {"REGION": "eu"}])
    assert found == {"token": expected, "Region": "eu"}


def test_resolve_external_mixed_case_name(pipe: Pipeline) -> None:
    assert plan.resolve_external(pipe, ["other"], [{"TOKEN": "t", "Region": "as-written"}]) == {
        "token": "t",
        "Region": "as-written",
    }


def test_missing_variables_names_every_variable_and_who_wants_it(pipe: Pipeline) -> None:
    with pytest.raises(MissingVariables) as caught:
        plan.resolve_external(pipe, ["main", "other"], [{"HOME_DIR": "/h"}, {}])
    error = caught.value
    assert error.missing == {"TOKEN": ["main", "other"], "REGION": ["other"]}
    assert error.exit_code == 2
    message = str(error)
    assert "REGION (wanted by other)" in message
    assert "TOKEN (wanted by main, other)" in message
    assert "HOME_DIR" not in message
    assert message.startswith("missing variables: ")
    assert "--env" in message  # the way out


def test_missing_one_variable(pipe: Pipeline) -> None:
    with pytest.raises(MissingVariables) as caught:
        plan.resolve_external(pipe, ["unused"], [{"OTHER": "x"}])
    assert str(caught.value).startswith("missing variable: NEVER_SELECTED (wanted by unused)")


def test_unselected_stages_need_nothing(pipe: Pipeline) -> None:
    assert plan.resolve_external(pipe, ["version", "token-source"], []) == {}


# --- the container -------------------------------------------------------------------------


def test_container_env(pipe: Pipeline, dirs: RunDirs) -> None:
    spec = plan.container_spec(
        pipe,
        pipe.stages["main"],
        dirs,
        RUN_ID,
        external={"token": "tok", "HOME_DIR": "/home/x"},
        outputs={"version": "1.2.3"},
        extra_env={"DOCKERCISE_REPO": "owner/repo", "DOCKERCISE_SHA": "abc"},
    )
    assert spec.env == {
        "OUT": "/main",
        "DOCKERCISE_RUN_ID": RUN_ID,
        "DOCKERCISE_STAGE": "main",
        "DOCKERCISE_REPO": "owner/repo",
        "DOCKERCISE_SHA": "abc",
        "VERSION": "1.2.3",
        "TOKEN": "tok",
        "HOME_DIR": "/home/x",
        "Literal_Name": "a b",
        "PORT": "8080",
    }
    assert spec.image == "alpine"
    assert spec.command == ["/bin/sh", "-c", 'echo "$VERSION"']
    assert spec.network == "isolated"
    assert spec.labels == {"dockercise.run": RUN_ID, "dockercise.stage": "main"}


def test_stage_env_item_without_output_is_empty(pipe: Pipeline, dirs: RunDirs) -> None:
    spec = plan.container_spec(
        pipe, pipe.stages["main"], dirs, RUN_ID, {"token": "", "HOME_DIR": ""}, outputs={}
    )
    assert spec.env["VERSION"] == ""


def test_default_binds_and_workdir(write_pipeline: WritePipeline, dirs: RunDirs) -> None:
    pipe = _load(write_pipeline, "a:\n  img: x\n  run: ls\n")
    spec = plan.container_spec(pipe, pipe.stages["a"], dirs, RUN_ID, {}, {})
    assert spec.binds == [
        Bind(dirs.private / "out", "/out", True),
        Bind(dirs.private / "vol" / "a", "/a", False),
    ]
    assert spec.workdir == "/"  # SPEC §4: `/`, not the image's WORKDIR
    assert spec.copy_from is None
    assert spec.network is None
    assert spec.env["OUT"] == "/a"


def test_a_stage_without_run_has_no_command(write_pipeline: WritePipeline, dirs: RunDirs) -> None:
    pipe = _load(write_pipeline, "image:\n  build: .\n")
    assert plan.container_spec(pipe, pipe.stages["image"], dirs, RUN_ID, {}, {}).command is None


VOLS = """\
a:
  img: x
b:
  img: x
x:
  img: x
  vol:
    - a
    - b:/data/b
    - code
    - /etc/hosts:/hosts
    - /tmp/cache:/cache:rw
    - ./rel/dir:/rel
    - ../sibling:/sib:rw
"""


def test_vol_items(write_pipeline: WritePipeline, dirs: RunDirs) -> None:
    pipe = _load(write_pipeline, VOLS)
    spec = plan.container_spec(pipe, pipe.stages["x"], dirs, RUN_ID, {}, {})
    project = dirs.project
    assert spec.binds == [
        Bind(dirs.out, "/out", True),
        Bind(dirs.volume("x"), "/x", False),
        Bind(dirs.volume("a"), "/a", True),
        Bind(dirs.volume("b"), "/data/b", True),
        Bind(project, "/code", True),
        Bind(Path("/etc/hosts"), "/hosts", True, host=True),
        Bind(Path("/tmp/cache"), "/cache", False, host=True),
        Bind(project / "rel" / "dir", "/rel", True, host=True),
        Bind(project.parent / "sibling", "/sib", False, host=True),
    ]


def test_home_in_host_path(
    write_pipeline: WritePipeline, dirs: RunDirs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pipe = _load(write_pipeline, "x:\n  img: x\n  vol: '~/cache:/cache'\n")
    spec = plan.container_spec(pipe, pipe.stages["x"], dirs, RUN_ID, {}, {})
    assert spec.binds[-1] == Bind(tmp_path / "home" / "cache", "/cache", True, host=True)


@pytest.mark.parametrize(
    ("vol", "hidden_dir", "expected"),
    [
        ("code", False, [("project", "/code")]),
        ("code", True, [("project", "/code"), ("empty", "/code/.dockercise")]),
        ("'code:/src/'", True, [("project", "/src/"), ("empty", "/src/.dockercise")]),
    ],
)
def test_code_hides_the_dockercise_folder_only_when_there_is_one(
    write_pipeline: WritePipeline,
    dirs: RunDirs,
    vol: str,
    hidden_dir: bool,
    expected: list[tuple[str, str]],
) -> None:
    pipe = _load(write_pipeline, f"x:\n  img: x\n  vol: {vol}\n")
    if hidden_dir:
        (dirs.project / ".dockercise" / "results").mkdir(parents=True)
    spec = plan.container_spec(pipe, pipe.stages["x"], dirs, RUN_ID, {}, {})
    sources = {"project": dirs.project, "empty": dirs.empty}
    assert spec.binds[2:] == [Bind(sources[s], target, True) for s, target in expected]


@pytest.mark.parametrize(
    ("keys", "copy_from", "workdir"),
    [
        ("on: a", "vol-a", "/x"),
        ("on: code", "project", "/x"),
        ("on: a\n  dir: /elsewhere", "vol-a", "/elsewhere"),
        ("dir: /work", None, "/work"),
    ],
)
def test_on_and_dir(
    write_pipeline: WritePipeline,
    dirs: RunDirs,
    keys: str,
    copy_from: str | None,
    workdir: str,
) -> None:
    pipe = _load(write_pipeline, f"a:\n  img: x\nx:\n  img: x\n  {keys}\n")
    spec = plan.container_spec(pipe, pipe.stages["x"], dirs, RUN_ID, {}, {})
    sources = {"vol-a": dirs.volume("a"), "project": dirs.project, None: None}
    assert spec.copy_from == sources[copy_from]
    assert spec.workdir == workdir
    # `on` gives a copy as the stage's own (writable) volume, not a mount of the original
    assert spec.binds[:2] == [Bind(dirs.out, "/out", True), Bind(dirs.volume("x"), "/x", False)]
    assert len(spec.binds) == 2


ODD_VALUES = [
    "two  spaces ",
    "'single' \"double\"",
    "$HOME ${PATH} $(id) `id`",
    "line one\nline two\n",
    "☃ ünïcødé 漢字",
    "back\\slash; rm -rf / && echo",
    "  ",
]


@pytest.mark.parametrize("value", ODD_VALUES)
def test_values_are_passed_verbatim(
    write_pipeline: WritePipeline, dirs: RunDirs, value: str
) -> None:
    pipe = _load(
        write_pipeline,
        "src:\n  img: x\nx:\n  img: x\n  env: [src, ext]\n  run: echo\n",
    )
    spec = plan.container_spec(
        pipe, pipe.stages["x"], dirs, RUN_ID, external={"ext": value}, outputs={"src": value}
    )
    assert spec.env["SRC"] == value
    assert spec.env["EXT"] == value


@pytest.mark.parametrize("value", ODD_VALUES)
def test_literal_values_and_scripts_are_verbatim(
    write_pipeline: WritePipeline, dirs: RunDirs, value: str
) -> None:
    # a double-quoted YAML scalar can carry any of the values
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    pipe = _load(
        write_pipeline,
        f'x:\n  img: x\n  env: [{{LIT: "{quoted}"}}]\n  run: "{quoted}"\n',
    )
    spec = plan.container_spec(pipe, pipe.stages["x"], dirs, RUN_ID, {}, {})
    assert spec.env["LIT"] == value
    assert spec.command == ["/bin/sh", "-c", value]
