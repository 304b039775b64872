"""One bot build reported as GitHub check runs (SPEC §12), against the strict fake GitHub and
the real engine; the fallback to statuses; cancelling a build (SPEC §11)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.acting import cancel, rerun
from bot.builds import Builder
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import Settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import build_now, push_job, wait_for

pytestmark = pytest.mark.docker

PASSING = "test: {img: dockercise/busybox, run: echo all good}\n"
FAILING = """
lint: {img: dockercise/busybox, run: echo ok}
test:
  img: dockercise/busybox
  run: |
    echo "src/app.py:2: AssertionError: expected 2"
    echo "src/app.py:1:5: E225 missing whitespace"
    echo "/etc/passwd:1: not ours"
    echo "nowhere.py:1: not a file of the checkout"
    echo "the last words"
    exit 3
"""
APP = "x = 1\ny=2\n"


def _job(github: FakeGitHub, repo: str, sha: str, **extra: Any) -> Job:
    """A push build whose id looks like the bot's own (16 hex digits, as check runs carry it)."""
    return push_job(github, repo, sha, **({"id": sha[:16]} | extra))


def _builder(settings: Settings) -> tuple[Builder, SqliteState]:
    state = SqliteState(settings.data_dir / "state.db")
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    return Builder(settings, app, state, "test-worker"), state


def _build(settings: Settings, job: Job) -> SqliteState:
    return build_now(settings, job)


def _only_check_run(github: FakeGitHub, sha: str, name: str = "dockercise") -> dict[str, Any]:
    (found,) = github.check_runs_for(sha, name)
    return found


def test_a_passing_build_is_one_check_run_queued_in_progress_completed(
    settings: Settings, github: FakeGitHub
) -> None:
    github.grant_checks()
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    job = _job(github, "octo/app", sha)
    _build(settings, job)
    run = _only_check_run(github, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["external_id"] == job.id
    assert run["details_url"].startswith(f"{settings.public_url}/results/octo/app/run/")
    assert run["output"]["title"] == "1 of 1 stages passed"
    assert "| [test](" in run["output"]["summary"]
    assert [u.get("status") for u in github.check_run_updates] == ["in_progress", "completed"]
    assert github.statuses_for(sha) == []  # checks granted: no commit statuses at all


def test_a_failing_build_shows_the_log_s_last_lines_and_annotations(
    settings: Settings, github: FakeGitHub
) -> None:
    github.grant_checks()
    sha = github.push("octo/app", {".dockercise.yml": FAILING, "src/app.py": APP})
    _build(settings, _job(github, "octo/app", sha))
    run = _only_check_run(github, sha)
    assert run["conclusion"] == "failure"
    assert run["output"]["title"] == "1 of 2 stages passed; failed: test"
    assert "failure: exit 3" in run["output"]["summary"]
    text = run["output"]["text"]
    assert text.startswith("### test: failure") and "the last words" in text
    assert [(a["path"], a["start_line"], a.get("start_column")) for a in run["annotations"]] == [
        ("src/app.py", 2, None),
        ("src/app.py", 1, 5),
    ]
    assert run["annotations"][0]["message"] == "AssertionError: expected 2"


def test_per_stage_check_runs(settings: Settings, github: FakeGitHub) -> None:
    github.grant_checks()
    pipeline = "meta: {statuses: stages}\n" + FAILING
    sha = github.push("octo/app", {".dockercise.yml": pipeline, "src/app.py": APP})
    _build(settings, _job(github, "octo/app", sha))
    assert _only_check_run(github, sha, "dockercise/lint")["conclusion"] == "success"
    assert _only_check_run(github, sha, "dockercise/test")["conclusion"] == "failure"
    assert _only_check_run(github, sha)["conclusion"] == "failure"


@pytest.mark.parametrize("how", ["not granted", "403", "DOCKERCISE_REPORT=statuses"])
def test_statuses_where_checks_are_not_granted_or_not_wanted(
    settings: Settings, github: FakeGitHub, how: str
) -> None:
    if how != "not granted":
        github.grant_checks()
    if how == "403":
        github.refuse_checks = True
    if how == "DOCKERCISE_REPORT=statuses":
        settings = replace(settings, report=type(settings.report)("statuses"))
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    _build(settings, _job(github, "octo/app", sha))
    assert [s["state"] for s in github.statuses_for(sha)] == ["pending", "success"]
    assert github.check_runs_for(sha) == []
    asked = [c for c in github.calls if "/check-runs" in c[1]]
    assert bool(asked) is (how == "403")  # only a refusal costs a request


def test_a_build_cancelled_while_queued_never_runs(settings: Settings, github: FakeGitHub) -> None:
    github.grant_checks()
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    job = _job(github, "octo/app", sha)
    builder, state = _builder(settings)
    state.record(job)
    assert cancel(state, job.id) == "queued"
    builder.build(job)
    run = _only_check_run(github, sha)
    assert (run["conclusion"], run["output"]["title"]) == ("cancelled", "cancelled")
    assert not (Path(settings.results) / "octo/app").exists()  # nothing ran
    build = state.get(job.id)
    assert build is not None and build.state == "cancelled"
    assert cancel(state, job.id) == "done"


def test_a_running_build_is_cancelled_within_seconds(
    settings: Settings, github: FakeGitHub, docker_client: docker.DockerClient
) -> None:
    slow = (
        "slow: {img: dockercise/busybox, run: sleep 60}\n"
        "after: {img: dockercise/busybox, after: [slow], run: echo no}\n"
    )
    sha = github.push("octo/app", {".dockercise.yml": slow})
    job = _job(github, "octo/app", sha)
    builder, state = _builder(settings)
    state.record(job)
    building = threading.Thread(target=builder.build, args=(job,))
    building.start()
    store = (Path(settings.results) / "octo" / "app").as_uri()

    def running() -> list[Any]:
        return docker_client.containers.list(
            filters={"label": ["dockercise.stage=slow", f"dockercise.store={store}"]}
        )

    wait_for(running, 60)
    asked = time.monotonic()
    assert cancel(state, job.id) == "running"
    building.join(30)
    assert not building.is_alive()
    assert time.monotonic() - asked < 10
    assert running() == []
    final = [s for s in github.statuses_for(sha) if s["state"] != "pending"]
    assert [(s["state"], s["description"]) for s in final] == [("error", "cancelled")]
    stages = {
        p.stem: p.read_text()
        for p in (Path(settings.results) / "octo/app/run").rglob("*.json")
        if p.name != "run.json"
    }
    assert all('"cancelled"' in text for text in stages.values()), stages


def test_rerun_records_the_same_build_again_with_its_trust(
    settings: Settings, github: FakeGitHub
) -> None:
    state = SqliteState(settings.data_dir / "state.db")
    sha = "a" * 40
    fork = _job(github, "octo/app", sha, kind=JobKind.PULL_REQUEST, fork=True, number=4)
    state.record(fork)
    again = rerun(state, fork.id, "octocat")
    assert again is not None and again.id != fork.id
    assert (again.fork, again.sha, again.ref, again.kind) == (True, sha, fork.ref, fork.kind)
    assert again.trigger["rerun_of"] == fork.id
    assert [c.job for c in state.claim_unannounced(5)] == [fork, again]  # queued like a delivery
    assert rerun(state, "0" * 16) is None
