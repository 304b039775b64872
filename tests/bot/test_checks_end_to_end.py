"""GitHub Checks through the bot as a user runs it (`dockercise serve`; gunicorn and two
`dockercise worker`s on Redis for cancel): re-runs from GitHub keeping the trust of the
build they repeat, `[skip ci]`, superseded pull request builds, cancel across workers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.acting import cancel
from bot.state.redis_store import RedisState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import (
    BIN,
    PAYLOADS,
    Bot,
    pull_request_payload,
    push_payload,
    rerequest,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PASSING = "test: {img: dockercise/busybox, run: echo all good}\n"
FORK_PIPELINE = "meta: {secrets: {TOKEN: plain-secret-value}}\n" + (
    "leak: {img: dockercise/busybox, env: [token], run: echo $TOKEN}\n"
)
FORK_REASON = "secrets are not available to pull requests from forks"


def completed(github: FakeGitHub, sha: str, count: int = 1, seconds: float = 90) -> list[Any]:
    """The commit's `dockercise` check runs once `count` of them have completed."""

    def done() -> list[Any] | None:
        runs = [r for r in github.check_runs_for(sha, "dockercise") if r["status"] == "completed"]
        return runs if len(runs) >= count else None

    found: list[Any] = wait_for(done, seconds)
    return found


def test_rerequested_check_run_and_check_suite_build_the_commit_again(
    bot: Bot, github: FakeGitHub
) -> None:
    github.grant_checks()
    bot.serve()
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    assert bot.deliver("push", push_payload(github, "octo/app", sha), "push-1") == 202
    (first,) = completed(github, sha)
    assert first["conclusion"] == "success", bot.output()
    suite = json.loads((PAYLOADS / "check_suite.requested.payload.json").read_text())
    suite["check_suite"]["head_sha"] = sha
    assert bot.deliver("check_suite", suite, "suite-requested") == 202  # the push builds it

    again = rerequest(github, "check_run", "octo/app", sha, "main", first["external_id"])
    assert bot.deliver("check_run", again, "rerun-1") == 202
    runs = completed(github, sha, 2)
    assert len({r["external_id"] for r in runs}) == 2
    assert all(r["conclusion"] == "success" for r in runs)
    assert bot.deliver("check_run", again, "rerun-1") == 200  # a redelivery: built already

    suite_again = rerequest(github, "check_suite", "octo/app", sha, "main")
    assert bot.deliver("check_suite", suite_again, "rerun-2") == 202
    runs = completed(github, sha, 3)
    time.sleep(2)  # nothing else comes: check_suite.requested built nothing
    assert len(github.check_runs_for(sha, "dockercise")) == 3
    assert github.statuses_for(sha) == []


def test_a_re_run_of_a_fork_s_commit_is_still_a_fork_s_build(bot: Bot, github: FakeGitHub) -> None:
    github.grant_checks()
    bot.serve()
    github.push("octo/app", {"README": "main\n"})
    github.push("octo/app", {".dockercise.yml": FORK_PIPELINE}, branch="from-fork")
    sha = github.open_pull_request("octo/app", 4, "from-fork")
    fork = pull_request_payload(github, "octo/app", 4, sha, "mallory/app")
    github.grant("octo/app", fork["pull_request"]["user"]["login"], "read")  # no approval (§11)
    assert bot.deliver("pull_request", fork, "pr-fork") == 202
    (first,) = completed(github, sha)
    assert first["conclusion"] == "failure" and FORK_REASON in first["output"]["summary"]

    # The check suite's payload says nothing of the fork (its pull_requests even name the
    # repository itself): the re-run repeats the stored build, a fork's.
    again = rerequest(github, "check_suite", "octo/app", sha, "from-fork")
    assert bot.deliver("check_suite", again, "rerun-fork-1") == 202
    again = rerequest(github, "check_run", "octo/app", sha, "from-fork", first["external_id"])
    assert bot.deliver("check_run", again, "rerun-fork-2") == 202
    runs = completed(github, sha, 3)
    for run in runs:
        assert run["conclusion"] == "failure", bot.output()
        assert FORK_REASON in run["output"]["summary"]
    assert "plain-secret-value" not in bot.output()

    # A commit the bot never built: unknown origin, built as a fork's.
    unknown = github.push("octo/app", {".dockercise.yml": FORK_PIPELINE}, branch="never-seen")
    again = rerequest(github, "check_suite", "octo/app", unknown, "never-seen")
    assert bot.deliver("check_suite", again, "rerun-unknown") == 202
    (run,) = completed(github, unknown)
    assert run["conclusion"] == "failure" and FORK_REASON in run["output"]["summary"]


def test_skip_ci_builds_and_reports_nothing(bot: Bot, github: FakeGitHub) -> None:
    github.grant_checks()
    bot.serve()
    skipped = github.push("octo/app", {".dockercise.yml": PASSING}, message="docs [skip ci]")
    payload = push_payload(github, "octo/app", skipped)
    payload["head_commit"] = {"id": skipped, "tree_id": skipped, "message": "docs [skip ci]"}
    assert bot.deliver("push", payload, "skip-push") == 202  # ignored: 202, queued false

    github.push("octo/app", {"x": "1"}, branch="topic", message="wip\n\n[ci skip]")
    pr_skipped = github.open_pull_request("octo/app", 7, "topic")
    payload = pull_request_payload(github, "octo/app", 7, pr_skipped, "octo/app")
    assert bot.deliver("pull_request", payload, "skip-pr") == 202

    github.push("octo/app", {"y": "2"}, branch="other")
    built = github.open_pull_request("octo/app", 8, "other")
    payload = pull_request_payload(github, "octo/app", 8, built, "octo/app")
    assert bot.deliver("pull_request", payload, "built-pr") == 202
    assert completed(github, built)[0]["conclusion"] == "success", bot.output()
    time.sleep(2)
    for sha in (skipped, pr_skipped):
        assert github.check_runs_for(sha) == [] and github.statuses_for(sha) == []
    assert any(path.endswith(f"/commits/{pr_skipped}") for _, path in github.calls)


def test_a_newer_commit_supersedes_the_pull_request_s_running_build(
    bot: Bot, github: FakeGitHub, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    github.grant_checks()
    bot.serve()
    github.push("octo/app", {"README": "main\n"})
    slow = "slow: {img: dockercise/busybox, run: sleep 120}\n"
    old = github.push("octo/app", {".dockercise.yml": slow}, branch="topic")
    github.open_pull_request("octo/app", 5, "topic")
    payload = pull_request_payload(github, "octo/app", 5, old, "octo/app")
    assert bot.deliver("pull_request", payload, "pr-old") == 202
    store = (tmp_path / "results" / "octo" / "app").as_uri()

    def running() -> list[Any]:
        return docker_client.containers.list(
            filters={"label": ["dockercise.stage=slow", f"dockercise.store={store}"]}
        )

    wait_for(running, 60)
    new = github.push("octo/app", {".dockercise.yml": PASSING}, branch="topic")
    github.open_pull_request("octo/app", 5, "topic")
    payload = pull_request_payload(github, "octo/app", 5, new, "octo/app")
    payload["action"] = "synchronize"
    asked = time.monotonic()
    assert bot.deliver("pull_request", payload, "pr-new") == 202
    (ended,) = completed(github, old, seconds=30)
    assert time.monotonic() - asked < 15
    assert ended["conclusion"] == "cancelled"
    assert ended["output"]["title"].endswith("cancelled: superseded")
    assert running() == []
    assert completed(github, new)[0]["conclusion"] == "success"


@pytest.fixture
def two_workers(bot: Bot, fresh_redis: str, tmp_path: Path) -> Iterator[Bot]:
    (tmp_path / "tmp").mkdir()
    bot.env.update(DOCKERCISE_REDIS_URL=fresh_redis, TMPDIR=str(tmp_path / "tmp"))
    bot.start(str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{bot.port}", "bot.web:create_bot_app()")
    bot.wait_healthy()
    for number in (1, 2):
        env = {**bot.env, "DOCKERCISE_DATA_DIR": str(tmp_path / f"worker-{number}")}
        with (bot.logs / f"worker-{number}.log").open("wb") as out:
            bot.procs.append(
                subprocess.Popen(
                    [str(BIN / "dockercise"), "worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    yield bot
    bot.stop()


def test_cancel_reaches_the_worker_running_the_build_from_another_process(
    two_workers: Bot,
    github: FakeGitHub,
    fresh_redis: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    github.grant_checks()
    bot = two_workers
    slow = "slow: {img: dockercise/busybox, run: sleep 120}\n"
    sha = github.push("octo/app", {".dockercise.yml": slow})
    assert bot.deliver("push", push_payload(github, "octo/app", sha), "slow-push") == 202
    store = (tmp_path / "results" / "octo" / "app").as_uri()

    def running() -> list[Any]:
        return docker_client.containers.list(
            filters={"label": ["dockercise.stage=slow", f"dockercise.store={store}"]}
        )

    wait_for(running, 90)
    state = RedisState(fresh_redis)  # this test's process: neither worker, nor the web side
    try:
        (build,) = state.running()
        assert build.worker is not None and build.worker.split(":")[-1] in {
            str(p.pid) for p in bot.procs[1:]
        }
        asked = time.monotonic()
        assert cancel(state, build.job.id) == "running"
        wait_for(lambda: not running(), 10)
        assert time.monotonic() - asked < 10
        (ended,) = completed(github, sha, seconds=30)
        assert (ended["conclusion"], ended["output"]["title"]) == (
            "cancelled",
            "0 of 1 stages passed; cancelled",
        )
        assert "| cancelled: run interrupted |" in ended["output"]["summary"]
        # The worker reports to GitHub first, then records the end in the state.
        finished = wait_for(
            lambda: (b := state.get(build.job.id)) is not None and b.state == "cancelled", 10
        )
        assert finished
    finally:
        state.close()
