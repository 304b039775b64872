"""`dockercise results [RUN_ID]`: whole names in a pipe, and `--json` holding what the table
shows, read from a local store written here (no Docker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.durations import format_duration
from runner.outcome import RunResult, StageResult, Status, new_run_id
from runner.store import open_store
from tests.cli.test_cli import run_cli

DOCKERCISE = str(Path(sys.executable).parent / "dockercise")

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
# 100 characters each, non-ASCII ones among them (two cells wide, several UTF-8 bytes)
NAMES = [
    "ställe-" + "ß☃漢" * 13 + "x" * 54,
    "b" * 100,
    "測試-" + "é" * 97,
]
PIPELINE = "démo pipeline with a name far longer than any terminal column " + "p" * 40
REASON = "exit 1 because " + "r" * 90


@dataclass(frozen=True)
class Stored:
    root: Path
    run_id: str
    older: str

    def env(self) -> dict[str, str]:
        """A narrow terminal width, which a pipe must not care about."""
        return {**os.environ, "DOCKERCISE_RESULTS": str(self.root), "COLUMNS": "40"}


def _write_run(root: Path, started: datetime, stages: list[StageResult]) -> str:
    store = open_store(str(root), root, {})
    run = RunResult(
        new_run_id(started),
        PIPELINE,
        Status.FAILURE if any(s.status.bad for s in stages) else Status.SUCCESS,
        started,
        trigger={"kind": "manual", "host": "laptop"},
        finished=started + timedelta(seconds=200),
        stages={s.name: s for s in stages},
    )
    store.write_json(run.id, "run.json", run.to_json())
    for stage in stages:
        store.write_json(run.id, f"{stage.name}.json", stage.to_json())
    store.close()
    return run.id


@pytest.fixture
def stored(tmp_path: Path) -> Stored:
    root = tmp_path / "results"
    stages = [
        StageResult(
            NAMES[0], Status.SUCCESS, exit_code=0, started=T0, finished=T0 + timedelta(seconds=3.21)
        ),
        StageResult(
            NAMES[1],
            Status.FAILURE,
            reason=REASON,
            exit_code=1,
            started=T0,
            finished=T0 + timedelta(seconds=103.2),
        ),
        StageResult(NAMES[2], Status.SKIPPED, reason="after failed"),
    ]
    older = _write_run(root, T0 - timedelta(days=1), stages[:1])
    return Stored(root, _write_run(root, T0, stages), older)


def piped(stored: Stored, *args: str) -> str:
    """What `dockercise ARGS | cat` prints: stdout is a pipe."""
    done = subprocess.run(
        [DOCKERCISE, *args],
        env=stored.env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_one_run_in_a_pipe_shows_every_stage_name_whole(stored: Stored) -> None:
    out = piped(stored, "results", stored.run_id)
    assert "…" not in out
    lines = out.splitlines()
    assert lines[0] == f"run {stored.run_id}: {PIPELINE} failure"
    assert lines[1].split() == ["stage", "status", "exit", "time", "reason"]
    rows = lines[2:]
    assert len(rows) == len(NAMES)
    for row, name in zip(rows, NAMES, strict=True):
        assert row.startswith(name + "  ")
    assert rows[0].split()[1:] == ["success", "0", "3.2", "s"]
    assert rows[1].endswith(f"  failure  1     1 min 43 s  {REASON}")
    assert rows[2].split()[1:] == ["skipped", "after", "failed"]


def test_the_run_list_in_a_pipe_shows_whole_lines(stored: Stored) -> None:
    lines = piped(stored, "results").splitlines()
    assert [line.split()[0] for line in lines] == [stored.run_id, stored.older]
    for line in lines:
        assert line.endswith(f"  {PIPELINE}")
    assert lines[0].split()[1:5] == ["failure", "manual", "3", "min"]


def _json(capsys: pytest.CaptureFixture[str], stored: Stored, *args: str) -> Any:
    code, out, err = run_cli(capsys, "results", *args, "--json", "--results", str(stored.root))
    assert (code, err) == (0, "")
    return json.loads(out)


def test_json_of_one_run_holds_what_the_table_shows(
    capsys: pytest.CaptureFixture[str], stored: Stored
) -> None:
    run = _json(capsys, stored, stored.run_id)
    assert (run["id"], run["pipeline"], run["status"]) == (stored.run_id, PIPELINE, "failure")
    assert run["trigger"] == {"kind": "manual", "host": "laptop"}
    assert run["duration"] == 200.0
    table = run_cli(capsys, "results", stored.run_id, "--results", str(stored.root))[1]
    rows = table.splitlines()[2:]
    assert [s["name"] for s in run["stages"]] == NAMES
    for stage, row in zip(run["stages"], rows, strict=True):
        exit_code = "" if stage["exit_code"] is None else str(stage["exit_code"])
        took = format_duration(stage["duration"], unknown="")
        cells = [stage["name"], stage["status"], exit_code, took, stage["reason"] or ""]
        assert " ".join(row.split()) == " ".join(" ".join(cells).split())
    assert run["stages"][1] == {
        "name": NAMES[1],
        "status": "failure",
        "exit_code": 1,
        "started": "2026-03-04T05:06:07.000Z",
        "finished": "2026-03-04T05:07:50.200Z",
        "duration": pytest.approx(103.2),
        "reason": REASON,
    }
    assert run["stages"][2]["duration"] is None


def test_json_of_the_run_list(capsys: pytest.CaptureFixture[str], stored: Stored) -> None:
    runs = _json(capsys, stored)
    assert [r["id"] for r in runs] == [stored.run_id, stored.older]
    assert all("stages" not in r for r in runs)
    assert runs[1] == {
        "id": stored.older,
        "pipeline": PIPELINE,
        "status": "success",
        "trigger": {"kind": "manual", "host": "laptop"},
        "started": "2026-03-03T05:06:07.000Z",
        "finished": "2026-03-03T05:09:27.000Z",
        "duration": 200.0,
    }
    assert _json(capsys, stored, "-n", "1") == runs[:1]


def test_json_of_an_empty_store_is_an_empty_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_cli(capsys, "results", "--json", "--results", str(tmp_path / "none"))
    assert (code, json.loads(out)) == (0, [])


def test_an_unknown_run_is_a_usage_error_with_or_without_json(
    capsys: pytest.CaptureFixture[str], stored: Stored
) -> None:
    for extra in ([], ["--json"]):
        code, out, err = run_cli(capsys, "results", "nope", *extra, "--results", str(stored.root))
        assert (code, out) == (2, "")
        assert err.startswith("dockercise: no run 'nope' in ")


def test_a_terminal_still_gets_the_table(
    capsys: pytest.CaptureFixture[str], stored: Stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.results.stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(capsys, "results", stored.run_id, "--results", str(stored.root))
    assert code == 0
    assert "┃ stage" in out and "│ failure" in out
