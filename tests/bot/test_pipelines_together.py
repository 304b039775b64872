"""Pipelines that trigger each other, remote stages and watched schedules (SPEC §8),
with the bot running for real against the fake GitHub and the Docker engine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.builds import Builder
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.schedules import Scheduler
from bot.settings import Settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import WEBHOOK_SECRET, Bot, final_status, push_payload
from webhooks.verify import sign

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LIB = "test: {img: dockercise/busybox, run: echo lib ok}\n"
LIB_RED = "test: {img: dockercise/busybox, run: exit 1}\n"
APP = """
meta: {on: {upstream: [octo/lib]}}
test: {img: dockercise/busybox, run: echo app ok}
"""


def _finals(github: FakeGitHub, sha: str) -> list[str]:
    return [s["state"] for s in github.statuses_for(sha) if s["state"] != "pending"]


def _send(bot: Bot, event: dict[str, str], secret: str = WEBHOOK_SECRET) -> int:
    body = json.dumps(event).encode()
    return bot.post(
        "/webhooks/dockercise", body, {"X-Dockercise-Signature-256": sign(body, secret)}
    )


def test_a_green_library_rebuilds_the_app_and_a_red_one_does_not(
    bot: Bot, github: FakeGitHub
) -> None:
    bot.serve()
    app_sha = github.push("octo/app", {".dockercise.yml": APP})
    assert bot.deliver("push", push_payload(github, "octo/app", app_sha), "app-1") == 202
    assert final_status(github, app_sha)["state"] == "success"  # the bot now knows app's upstream

    red = github.push("octo/lib", {".dockercise.yml": LIB_RED})
    assert bot.deliver("push", push_payload(github, "octo/lib", red), "lib-red") == 202
    assert final_status(github, red)["state"] == "failure"
    time.sleep(3)
    assert _finals(github, app_sha) == ["success"]  # a red upstream starts nothing

    green = github.push("octo/lib", {".dockercise.yml": LIB})
    assert bot.deliver("push", push_payload(github, "octo/lib", green), "lib-green") == 202
    assert final_status(github, green)["state"] == "success"
    deadline = time.monotonic() + 60
    while _finals(github, app_sha) != ["success", "success"]:
        assert time.monotonic() < deadline, bot.output()
        time.sleep(0.3)
    run_url = github.statuses_for(app_sha)[-1]["target_url"]
    run_id = run_url.rsplit("/", 1)[1]
    results = Path(bot.env["DOCKERCISE_RESULTS"]) / "octo/app/run" / run_id / "run.json"
    trigger = json.loads(results.read_text())["trigger"]
    assert trigger["kind"] == "upstream" and trigger["pipeline"] == "octo/lib"

    # A forged event does nothing; a replayed one is recognised.
    lib_run = github.statuses_for(green)[-1]["target_url"].rsplit("/", 1)[1]
    event = {
        "pipeline": "octo/lib",
        "ref": "refs/heads/main",
        "sha": green,
        "status": "success",
        "run_id": lib_run,
        "url": "http://example.invalid/run",
        "finished": "2026-11-24T08:00:00.000Z",
    }
    assert _send(bot, event, secret="forged") == 401
    assert _send(bot, event) == 200  # already received from the bot itself: a duplicate
    time.sleep(3)
    assert _finals(github, app_sha) == ["success", "success"]


def test_a_remote_stage_waits_for_the_library(bot: Bot, github: FakeGitHub) -> None:
    bot.serve()
    app = """
lib: {remote: octo/lib@main, timeout: 90s}
test: {img: dockercise/busybox, after: lib, run: echo built against the new lib}
"""
    github.push("octo/lib", {"README": "lib\n"})  # a repository of the same installation
    app_sha = github.push("octo/app", {".dockercise.yml": app})
    assert bot.deliver("push", push_payload(github, "octo/app", app_sha), "app-remote") == 202
    time.sleep(2)
    assert _finals(github, app_sha) == []  # waiting for lib
    lib_sha = github.push("octo/lib", {".dockercise.yml": LIB})
    assert bot.deliver("push", push_payload(github, "octo/lib", lib_sha), "lib-1") == 202
    status = final_status(github, app_sha, 90)
    assert status["state"] == "success", bot.output()


def test_a_watch_stage_builds_only_when_its_output_changes(
    settings: Settings, github: FakeGitHub
) -> None:
    pipeline = """
meta:
  on: {schedule: {cron: "0 3 * * *", watch: version}}
version: {img: dockercise/busybox, vol: [code], run: cat /code/VERSION}
build: {img: dockercise/busybox, after: version, run: echo building}
"""
    first = github.push("octo/tool", {".dockercise.yml": pipeline, "VERSION": "1.0\n"})
    state = SqliteState(settings.data_dir / "state.db")
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    queued: list[Job] = []

    def enqueue(job: Job) -> None:
        recorded = state.record(job)
        if not isinstance(recorded, str):
            queued.append(recorded)

    builder = Builder(settings, app, state, "test", enqueue)
    push = Job(
        id="push-1",
        kind=JobKind.PUSH,
        repo="octo/tool",
        clone_url=github.clone_url("octo/tool"),
        ref="refs/heads/main",
        sha=first,
        branch="main",
        installation_id=github.installation_id,
        fork=False,
        trigger={"default_branch": "main"},
    )
    enqueue(push)
    builder.build(queued.pop())
    assert _finals(github, first) == ["success"]
    scheduler = Scheduler(state, enqueue)

    def night(day: int) -> None:
        """03:00 on day `day`: the scheduler fires, and every job it queues is built."""
        scheduler.tick(time.mktime((2026, 11, day, 3, 0, 20, 0, 0, 0)) - time.timezone)
        while queued:
            builder.build(queued.pop(0))

    night(25)  # first check: the output is recorded, nothing is built
    assert _finals(github, first) == ["success"]
    night(26)  # same output: nothing
    assert _finals(github, first) == ["success"]
    second = github.push("octo/tool", {"VERSION": "1.1\n"})
    night(27)  # the output changed: the whole pipeline builds the new head
    assert _finals(github, second) == ["success"]
    night(28)
    assert _finals(github, second) == ["success"]
