"""One bot build against the fake GitHub and the real engine: statuses, checkout, clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.jobs import Job, JobKind
from bot.settings import Settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import build_now, push_job

pytestmark = pytest.mark.docker

PASSING = """
test:
  img: dockercise/busybox
  vol: [code]
  run: |
    cat /code/README
    cat /code/.git/config
    env | sort
"""
FAILING = """
lint: {img: dockercise/busybox, run: echo ok}
test: {img: dockercise/busybox, run: echo broken; exit 3}
"""


def _build(settings: Settings, github: FakeGitHub, job: Job) -> SqliteState:
    return build_now(settings, job)


def _stored(settings: Settings, repo: str) -> str:
    root = Path(settings.results) / repo / "run"
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_a_push_builds_and_reports_pending_then_success(
    settings: Settings, github: FakeGitHub
) -> None:
    sha = github.push("octo/app", {".dockercise.yml": PASSING, "README": "hello from the repo\n"})
    state = _build(settings, github, push_job(github, "octo/app", sha))
    posted = github.statuses_for(sha)
    assert [s["state"] for s in posted] == ["pending", "success"]
    final = posted[-1]
    assert final["context"] == "dockercise"
    assert final["description"] == "1 of 1 stages passed"
    run_id = final["target_url"].rsplit("/", 1)[1]
    assert final["target_url"] == f"{settings.public_url}/results/octo/app/run/{run_id}"
    run = json.loads((Path(settings.results) / "octo/app/run" / run_id / "run.json").read_text())
    assert run["status"] == "success" and run["trigger"]["kind"] == "push"
    log = (Path(settings.results) / "octo/app/run" / run_id / "test.log").read_text()
    assert "hello from the repo" in log
    assert f"DOCKERCISE_SHA={sha}" in log and "DOCKERCISE_REPO=octo/app" in log
    assert "extraheader" not in log.lower() and "ghs_" not in log  # no token in the checkout
    assert not any(token in _stored(settings, "octo/app") for token in github.tokens)
    assert not (settings.data_dir / "checkouts" / f"b-{sha[:8]}").exists()
    build = state.get(f"b-{sha[:8]}")
    assert build is not None and (build.status, build.state) == ("done", "success")


def test_a_failing_pipeline_reports_failure_naming_the_stage(
    settings: Settings, github: FakeGitHub
) -> None:
    sha = github.push("octo/broken", {".dockercise.yml": FAILING})
    _build(settings, github, push_job(github, "octo/broken", sha))
    final = github.statuses_for(sha)[-1]
    assert final["state"] == "failure"
    assert final["description"] == "1 of 2 stages passed; failed: test (exit 3)"


def test_no_pipeline_no_status(settings: Settings, github: FakeGitHub) -> None:
    sha = github.push("octo/plain", {"README": "no pipeline here\n"})
    state = _build(settings, github, push_job(github, "octo/plain", sha))
    assert github.statuses_for(sha) == []
    build = state.get(f"b-{sha[:8]}")
    assert build is not None and build.state == "none"


def test_an_invalid_pipeline_reports_failure_with_the_problem(
    settings: Settings, github: FakeGitHub
) -> None:
    sha = github.push("octo/typo", {".dockercise.yml": "a:\n  img: x\n  rnu: y\n"})
    _build(settings, github, push_job(github, "octo/typo", sha))
    (final,) = github.statuses_for(sha)
    assert final["state"] == "failure"
    assert (
        "pipeline invalid: .dockercise.yml:3: stage 'a': unknown key 'rnu'" in final["description"]
    )


def test_a_commit_that_cannot_be_fetched_ends_in_error(
    settings: Settings, github: FakeGitHub
) -> None:
    sha = github.push("octo/app", {".dockercise.yml": PASSING, "README": "x\n"})
    job = push_job(github, "octo/app", "f" * 40)
    _build(settings, github, job)
    (final,) = github.statuses_for("f" * 40)
    assert final["state"] == "error"
    assert final["description"].startswith("build error: cannot check out ffffffffffff")
    assert sha  # the repository exists; only the commit does not


def test_per_stage_statuses(settings: Settings, github: FakeGitHub) -> None:
    sha = github.push("octo/stages", {".dockercise.yml": "meta: {statuses: stages}\n" + FAILING})
    _build(settings, github, push_job(github, "octo/stages", sha))
    by_context = {s["context"]: s["state"] for s in github.statuses_for(sha)}
    assert by_context == {
        "dockercise": "failure",
        "dockercise/lint": "success",
        "dockercise/test": "failure",
    }


def test_pull_request_from_a_fork_gets_no_secrets(
    settings: Settings, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.encryption import encrypt, generate_key

    key = generate_key()
    pipeline = f"""
meta:
  secrets: {{TOKEN: "secure:{encrypt("s3cr3t-value", key, "octo/app")}"}}
uses-secret: {{img: dockercise/busybox, env: [token], run: echo $TOKEN}}
plain: {{img: dockercise/busybox, run: echo fine}}
"""
    github.push("octo/app", {".dockercise.yml": pipeline}, branch="feature")
    sha = github.open_pull_request("octo/app", 7, "feature")
    from dataclasses import replace

    keyed = replace(settings, secret_key=key)
    job = push_job(
        github, "octo/app", sha, kind=JobKind.PULL_REQUEST, ref="refs/pull/7/head", fork=True
    )
    _build(keyed, github, job)
    final = github.statuses_for(sha)[-1]
    assert final["state"] == "failure"
    assert (
        "uses-secret (secrets are not available to pull requests from forks)"
        in final["description"]
    )
    assert "s3cr3t-value" not in _stored(keyed, "octo/app")
    same_repo = push_job(github, "octo/app", sha, id="b-same", delivery="d-same",
                     kind=JobKind.PULL_REQUEST, ref="refs/pull/7/head")  # fmt: skip
    _build(keyed, github, same_repo)
    assert github.statuses_for(sha)[-1]["state"] == "success"
