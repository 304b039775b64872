"""`dockercise status`: whole commit ids in a pipe, and `--json` holding what the text shows,
read from a SQLite state written here (no queue consumer, no GitHub)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import Job, JobKind
from bot.serve import overview
from bot.settings import Settings, load_settings
from bot.state import Build, Phase, open_state
from cli.bot import status_lines
from tests.bot.fake_github import make_private_key
from tests.cli.test_cli import run_cli

REPO = "an-organisation-with-a-long-name/a-repository-whose-name-is-longer-than-any-column"
WORKER = "build-host-" + "w" * 60 + ":4242"


def job(build_id: str, sha: str) -> Job:
    return Job(
        id=build_id,
        kind=JobKind.PUSH,
        repo=REPO,
        clone_url=f"http://127.0.0.1:1/git/{REPO}.git",
        ref="refs/heads/main",
        sha=sha,
        fork=False,
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    env = {
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": make_private_key(),
        "GITHUB_WEBHOOK_SECRET": "secret",
        "GITHUB_API_URL": "http://127.0.0.1:1",
        "DOCKERCISE_PUBLIC_URL": "http://127.0.0.1:1",
        "DOCKERCISE_DATA_DIR": str(tmp_path / "data"),
    }
    monkeypatch.delenv("DOCKERCISE_REDIS_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(env)


SHAS = {"b-done": "d" * 40, "b-running": "1234567890abcdef" * 2 + "01234567", "b-queued": "e" * 40}


@pytest.fixture
def builds(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    state = open_state(settings)
    try:
        for build_id, sha in SHAS.items():
            state.record(job(build_id, sha))
        state.start("b-done", "old-worker:1")
        state.finish("b-done", "success")
        state.start("b-running", WORKER)
    finally:
        state.close()


@pytest.mark.usefixtures("builds")
def test_status_in_a_pipe_prints_whole_commit_ids(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("queue (") and lines[0].endswith("): 0 task(s) waiting")
    assert lines[1] == "workers: 1 building, 1 more seen in recent builds"
    assert lines[2].startswith(f"  {WORKER}  building {REPO}@{SHAS['b-running']} (build b-running,")
    assert lines[2].endswith(" ago)")
    assert lines[3] == "  old-worker:1  not building now"
    assert lines[4] == "recent builds:"
    recent = sorted(lines[5:])
    assert recent == sorted(
        [
            f"  b-queued  queued   push         {REPO}@{SHAS['b-queued']}  ",
            f"  b-running  running  push         {REPO}@{SHAS['b-running']}  {WORKER}",
            f"  b-done  success  push         {REPO}@{SHAS['b-done']}  old-worker:1",
        ]
    )
    assert "…" not in out


@pytest.mark.usefixtures("builds")
def test_status_json_holds_what_the_text_shows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "status", "--json")
    assert (code, err) == (0, "")
    shown: dict[str, Any] = json.loads(out)
    assert shown["waiting"] == 0
    assert shown["queue"].endswith("data")
    (running,) = shown["running"]
    assert running["heartbeat_age"] >= 0
    assert running | {"heartbeat_age": 0} == {
        "worker": WORKER,
        "build": "b-running",
        "repo": REPO,
        "sha": SHAS["b-running"],
        "attempts": 1,
        "heartbeat_age": 0,
        "presumed_dead": False,
    }
    assert shown["idle"] == ["old-worker:1"]
    by_id = {b["id"]: b for b in shown["recent"]}
    assert by_id == {
        "b-done": {
            "id": "b-done",
            "outcome": "success",
            "kind": "push",
            "repo": REPO,
            "sha": SHAS["b-done"],
            "worker": "old-worker:1",
        },
        "b-running": {
            "id": "b-running",
            "outcome": "running",
            "kind": "push",
            "repo": REPO,
            "sha": SHAS["b-running"],
            "worker": WORKER,
        },
        "b-queued": {
            "id": "b-queued",
            "outcome": "queued",
            "kind": "push",
            "repo": REPO,
            "sha": SHAS["b-queued"],
            "worker": None,
        },
    }
    assert run_cli(capsys, "status", "--json", "-n", "1")[1].count('"outcome"') == 1


def _build(build_id: str, worker: str | None, heartbeat: float | None, state: str | None) -> Build:
    return Build(
        job=job(build_id, "f" * 40),
        status=Phase.DONE if state else Phase.RUNNING,
        run_id=None,
        worker=worker,
        heartbeat=heartbeat,
        attempts=1,
        state=state,
    )


def test_a_silent_worker_is_presumed_dead_and_a_terminal_gets_short_ids() -> None:
    alive, silent = _build("b1", "w1", 95.0, None), _build("b2", "w2", 50.0, None)
    shown = overview("Redis", 3, [alive, silent], [alive, silent], now=100.0, stale_after=30)
    assert [(r.build, r.heartbeat_age, r.presumed_dead) for r in shown.running] == [
        ("b1", 5.0, False),
        ("b2", 50.0, True),
    ]
    lines = status_lines(shown, short_sha=True)
    assert lines[:2] == [
        "queue (Redis): 3 task(s) waiting",
        "workers: 2 building, 0 more seen in recent builds",
    ]
    assert (
        lines[2] == f"  w1  building {REPO}@ffffffffffff (build b1, attempt 1, heartbeat 5.0 s ago)"
    )
    assert lines[3].endswith("heartbeat 50 s ago: presumed dead)")
    assert status_lines(shown, short_sha=False)[2].count("f" * 40) == 1
