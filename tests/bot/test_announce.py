"""The announcer of a queue consumer: recorded builds -> `pending` -> the queue (fake GitHub)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

from bot.announce import Announcer
from bot.checkout import Mirrors
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import Settings
from bot.state import ANNOUNCE_LEASE, Claim
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import wait_for

PIPELINE = "test: {img: dockercise/busybox, run: 'true'}\n"


def _job(github: FakeGitHub, repo: str, sha: str, build_id: str) -> Job:
    return Job(
        id=build_id,
        kind=JobKind.PUSH,
        repo=repo,
        clone_url=github.clone_url(repo),
        ref="refs/heads/main",
        sha=sha,
        branch="main",
        installation_id=github.installation_id,
        delivery=f"d-{build_id}",
        fork=False,
        trigger={"default_branch": "main"},
    )


class Queue:
    """Stands in for Huey's `build` task: what the announcer queued, and when."""

    def __init__(self, github: FakeGitHub) -> None:
        self.github = github
        self.jobs: list[Job] = []
        self.statuses_then: list[int] = []

    def enqueue(self, job: Job) -> None:
        self.statuses_then.append(len(self.github.statuses_for(job.sha)))
        self.jobs.append(job)


def _announcer(settings: Settings, state: SqliteState, queue: Queue) -> Announcer:
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    return Announcer(app, state, queue.enqueue, mirrors)


def test_a_recorded_build_is_announced_then_queued_once(
    settings: Settings, github: FakeGitHub, tmp_path: Path
) -> None:
    sha = github.push("octo/app", {".dockercise.yml": PIPELINE})
    plain = github.push("octo/plain", {"README": "no pipeline\n"})
    state = SqliteState(tmp_path / "state.db")
    queue = Queue(github)
    announcer = _announcer(settings, state, queue)
    announcer.start()
    try:
        state.record(_job(github, "octo/app", sha, "b1"))
        state.record(_job(github, "octo/plain", plain, "b2"))
        wait_for(lambda: queue.jobs, 10)
        wait_for(lambda: (build := state.get("b2")) is not None and build.status == "done", 10)
        time.sleep(0.3)  # a second announcement would have happened by now
    finally:
        announcer.stop()
    assert [j.id for j in queue.jobs] == ["b1"]
    assert queue.statuses_then == [1]  # `pending` was posted before the build was queued
    (pending,) = github.statuses_for(sha)
    assert (pending["state"], pending["description"]) == ("pending", "build queued")
    assert github.statuses_for(plain) == []  # no pipeline: no status, nothing queued
    assert state.claim_unannounced(4, lease=ANNOUNCE_LEASE) == []  # handed over or done


def test_an_unreadable_state_is_retried_after_a_pause(
    settings: Settings, github: FakeGitHub, tmp_path: Path
) -> None:
    tries: list[float] = []

    class Unreachable(SqliteState):
        def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Claim]:
            tries.append(time.monotonic())
            raise ConnectionError("state unreachable")

    announcer = _announcer(settings, Unreachable(tmp_path / "state.db"), Queue(github))
    announcer.BACKOFF = 0.2
    announcer.start()
    time.sleep(0.5)
    announcer.stop()
    assert 2 <= len(tries) <= 4, tries  # not a busy loop, and it kept trying
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(tries))
    assert not any(t.name.startswith("announce") for t in threading.enumerate())
