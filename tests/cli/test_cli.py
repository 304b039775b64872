"""The `dockercise` command without Docker: validate, graph, completion, bad arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import WritePipeline

DOCKERCISE = str(Path(sys.executable).parent / "dockercise")

PIPELINE = {
    ".dockercise.yml": """
        lint: {img: busybox, run: echo lint}
        build: {img: busybox, after: lint, run: echo build}
        """,
    "deploy/prod.dockercise.yml": """
        deploy-prod: {img: busybox, after: build, run: cat out/build}
        """,
}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_validate_counts_stages_of_every_file(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline(PIPELINE)
    code, out, _ = run_cli(capsys, "validate", "-C", str(root))
    assert code == 0
    assert out.strip() == "ok: 3 stage(s) in .dockercise.yml, deploy/prod.dockercise.yml"


def test_validate_reports_every_problem_and_exits_2(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline(
        {".dockercise.yml": "a:\n  img: x\n  rnu: y\nb:\n  img: x\n  after: [zz]\n"}
    )
    code, _, err = run_cli(capsys, "validate", "-C", str(root))
    assert code == 2
    assert err.splitlines() == [
        ".dockercise.yml:3: stage 'a': unknown key 'rnu' (did you mean 'run'?)",
        ".dockercise.yml:6: stage 'b': 'after' names unknown stage 'zz'",
        "2 problem(s) found; nothing was run",
    ]


def test_file_option_uses_only_that_file(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline(PIPELINE)
    code, out, _ = run_cli(capsys, "validate", "-C", str(root), "-f", ".dockercise.yml")
    assert code == 0
    assert "ok: 2 stage(s)" in out
    code, _, err = run_cli(capsys, "validate", "-C", str(root), "-f", "nope.yml")
    assert code == 2
    assert "-f nope.yml: no such file" in err


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", ["lint", "build        <- lint", "deploy-prod  <- build"]),
        ("dot", ['  "lint" -> "build";', '  "build" -> "deploy-prod";']),
        ("mermaid", ["graph LR", "  s0 --> s1", "  s1 --> s2"]),
    ],
)
def test_graph_formats(
    write_pipeline: WritePipeline,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    expected: list[str],
) -> None:
    root = write_pipeline(PIPELINE)
    code, out, _ = run_cli(capsys, "graph", "-C", str(root), "--format", fmt)
    assert code == 0
    for line in expected:
        assert line in out.splitlines()


def test_no_pipeline_is_nothing_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "validate", "-C", str(tmp_path))
    assert code == 0
    assert out.strip() == f"nothing to do: no pipeline file in {tmp_path}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-C", "/no/such/dir"], "-C /no/such/dir: no such directory"),
        (["run", "--env", "=x"], "--env =x: expected NAME=VALUE"),
        (["run", "--env-file", "/no/such/file"], "--env-file /no/such/file: cannot read it"),
        (["run", "-j", "0"], "Invalid value for '-j'"),
        (["run", "--results", "ftp://host/x"], "use a directory, file:///path or s3://"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_command_lines_exit_2_with_one_clear_line(
    write_pipeline: WritePipeline,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(write_pipeline(PIPELINE))
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("run", "validate", "graph", "results", "logs", "completion"):
        assert command in out


def test_completion_script_and_stage_names(write_pipeline: WritePipeline) -> None:
    root = write_pipeline(PIPELINE)
    script = subprocess.run(
        [DOCKERCISE, "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    assert "_DOCKERCISE_COMPLETE=bash_complete" in script
    env = {
        **os.environ,
        "_DOCKERCISE_COMPLETE": "bash_complete",
        "COMP_WORDS": "dockercise run de",
        "COMP_CWORD": "2",
    }
    found = subprocess.run(
        [DOCKERCISE], capture_output=True, text=True, env=env, cwd=root, check=True
    ).stdout
    assert "plain,deploy-prod" in found.splitlines()
