"""SPEC §10 forks: a build keeps the trust it was recorded with, whatever copies of it say
later, through the worker and the reaper's re-queue; an origin nobody knows is a fork's."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from typing import Any

import docker
import pytest

from bot.builds import Builder
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import Settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import Bot, final_status, pull_request_payload, wait_for

pytestmark = pytest.mark.docker

FORK_SECRETS = "uses-secret (secrets are not available to pull requests from forks)"
PIPELINE = """
meta: {secrets: {TOKEN: plain-secret-value}}
uses-secret: {img: dockercise/busybox, env: [token], run: echo $TOKEN}
plain: {img: dockercise/busybox, run: echo fine}
"""


def _job(github: FakeGitHub, repo: str, sha: str, **extra: Any) -> Job:
    fields: dict[str, Any] = {
        "id": f"b-{sha[:8]}",
        "kind": JobKind.PULL_REQUEST,
        "repo": repo,
        "clone_url": github.clone_url(repo),
        "ref": "refs/pull/7/head",
        "sha": sha,
        "branch": "main",
        "installation_id": github.installation_id,
        "delivery": f"d-{sha[:8]}",
        "trigger": {"default_branch": "main"},
    }
    return Job(**(fields | extra))


def test_the_worker_builds_the_stored_build_not_the_queue_s_copy(
    settings: Settings, github: FakeGitHub
) -> None:
    github.push("octo/app", {".dockercise.yml": PIPELINE}, branch="feature")
    sha = github.open_pull_request("octo/app", 7, "feature")
    state = SqliteState(settings.data_dir / "state.db")
    stored = _job(github, "octo/app", sha, fork=True)
    state.record(stored)
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    Builder(settings, app, state, "test").build(replace(stored, fork=False))  # a forged copy
    final = github.statuses_for(sha)[-1]
    assert final["state"] == "failure"
    assert FORK_SECRETS in final["description"]


def test_a_build_of_unknown_origin_teaches_the_bot_nothing(
    settings: Settings, github: FakeGitHub
) -> None:
    """A fork's build (here: a push whose origin was not recorded) of the default branch
    subscribes to no upstream and schedules nothing: those builds would be trusted."""
    on = "on: {push: true, upstream: [octo/lib], schedule: {cron: '* * * * *'}}, "
    pipeline = PIPELINE.replace("meta: {", "meta: {" + on)
    sha = github.push("octo/app", {".dockercise.yml": pipeline})
    state = SqliteState(settings.data_dir / "state.db")
    text = _job(github, "octo/app", sha, kind=JobKind.PUSH, ref="refs/heads/main", fork=False)
    unknown = Job.from_json(text.to_json().replace('"fork": false', '"fork": null'))
    assert unknown.fork
    state.record(unknown)
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    Builder(settings, app, state, "test").build(unknown)
    assert FORK_SECRETS in github.statuses_for(sha)[-1]["description"]
    assert state.known() == []
    trusted = replace(unknown, id="b-trusted", delivery="d-trusted", fork=False)
    state.record(trusted)
    Builder(settings, app, state, "test").build(trusted)
    assert [k.repo for k in state.known()] == ["octo/app"]


@pytest.mark.slow
def test_a_pull_request_whose_head_repository_is_gone_is_a_fork_s(
    bot: Bot, github: FakeGitHub
) -> None:
    bot.serve()
    github.push("octo/app", {".dockercise.yml": PIPELINE}, branch="gone")
    sha = github.open_pull_request("octo/app", 5, "gone")
    payload = pull_request_payload(github, "octo/app", 5, sha, "octo/app")
    payload["pull_request"]["head"]["repo"] = None  # the fork was deleted
    # A collaborating author: the build runs without waiting for approval (§11).
    github.grant("octo/app", payload["pull_request"]["user"]["login"], "read")
    assert bot.deliver("pull_request", payload, "pr-gone") == 202
    status = final_status(github, sha)
    assert status["state"] == "failure", bot.output()
    assert FORK_SECRETS in status["description"]


@pytest.mark.slow
def test_a_fork_s_build_queued_again_by_the_reaper_is_still_a_fork_s(
    bot: Bot, github: FakeGitHub, docker_client: docker.DockerClient
) -> None:
    server = bot.serve()
    slow = PIPELINE + "slow-fork-trust: {img: dockercise/busybox, run: sleep 4; echo done}\n"
    github.push("octo/app", {".dockercise.yml": slow}, branch="from-fork")
    sha = github.open_pull_request("octo/app", 4, "from-fork")
    payload = pull_request_payload(github, "octo/app", 4, sha, "mallory/app")
    github.grant("octo/app", payload["pull_request"]["user"]["login"], "read")  # no approval
    assert bot.deliver("pull_request", payload, "pr-fork") == 202

    def running() -> list[Any]:
        found: list[Any] = docker_client.containers.list(
            filters={"label": "dockercise.stage=slow-fork-trust", "status": "running"}
        )
        return found

    wait_for(running, 60)
    server.send_signal(signal.SIGKILL)
    server.wait()
    time.sleep(4)  # longer than DOCKERCISE_STALE_AFTER: the build's heartbeat is gone
    bot.serve()
    status = final_status(github, sha, 90)
    descriptions = [s["description"] for s in github.statuses_for(sha)]
    assert "worker died; build queued again" in descriptions, descriptions
    assert status["state"] == "failure", bot.output()
    assert FORK_SECRETS in status["description"]
