"""`dockercise validate --json`: the problems as objects, holding what the text lines show."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.test_cli import PIPELINE, run_cli
from tests.conftest import WritePipeline

LONG = "ställe-" + "ß☃漢" * 13 + "x" * 54  # 100 characters


def test_json_problems_hold_what_the_lines_show(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline(
        {".dockercise.yml": f"a:\n  img: x\n  rnu: y\n{LONG}:\n  img: x\n  after: [zz]\n"}
    )
    code, text, lines = run_cli(capsys, "validate", "-C", str(root))
    assert (code, text) == (2, "")
    code, out, err = run_cli(capsys, "validate", "-C", str(root), "--json")
    assert (code, err) == (2, "")
    problems = json.loads(out)
    assert problems == [
        {
            "file": ".dockercise.yml",
            "line": 3,
            "stage": "a",
            "message": "unknown key 'rnu' (did you mean 'run'?)",
        },
        {
            "file": ".dockercise.yml",
            "line": 6,
            "stage": LONG,
            "message": "'after' names unknown stage 'zz'",
        },
    ]
    shown = [f"{p['file']}:{p['line']}: stage '{p['stage']}': {p['message']}" for p in problems]
    assert lines.splitlines()[:-1] == shown


def test_json_problem_without_a_stage_or_line(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline({".dockercise.yml": "- just\n- a list\n"})
    code, out, _ = run_cli(capsys, "validate", "-C", str(root), "--json")
    assert code == 2
    (problem,) = json.loads(out)
    assert problem["file"] == ".dockercise.yml"
    assert problem["stage"] is None
    assert problem["message"]


def test_json_of_a_valid_pipeline_is_an_empty_list(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "validate", "-C", str(write_pipeline(PIPELINE)), "--json")
    assert (code, err, json.loads(out)) == (0, "", [])


def test_json_without_a_pipeline_is_an_empty_list_and_says_why_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "validate", "-C", str(tmp_path), "--json")
    assert (code, json.loads(out)) == (0, [])
    assert err.strip() == f"nothing to do: no pipeline file in {tmp_path}"


def test_a_usage_error_stays_on_stderr(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline(PIPELINE)
    code, out, err = run_cli(capsys, "validate", "-C", str(root), "-f", "nope.yml", "--json")
    assert (code, out) == (2, "")
    assert "-f nope.yml: no such file" in err


@pytest.mark.timeout(20)
def test_a_fifo_named_with_f_gets_the_loaders_verdict_without_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "x.dockercise.yml")
    code, out, err = run_cli(capsys, "validate", "-C", str(tmp_path), "-f", "x.dockercise.yml")
    assert code == 2
    assert "x.dockercise.yml: is a FIFO, not a regular file" in out + err
    assert "no such file" not in out + err
