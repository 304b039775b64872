"""Caches in bot builds, scoped as branches are (SPEC §13): the fake GitHub, the real engine.

A push on the default branch writes its caches; a pull request reads them
and writes only its own; a fork's pull request reads them and never writes;
and the default branch never sees what the others wrote.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import Job, job_for
from bot.settings import Settings
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import build_now
from webhooks.events import PullRequestEvent, PushEvent

pytestmark = pytest.mark.docker

REPO = "octo/app"
PIPELINE = """
note:
  img: dockercise/busybox
  cache: /c
  run: cat /c/seen 2>/dev/null; echo "$DOCKERCISE_REF" >> /c/seen
"""


def _push(github: FakeGitHub, sha: str, branch: str, n: int) -> Job:
    job = job_for(
        PushEvent(
            delivery=f"push-{n}",
            repo_full_name=REPO,
            clone_url=github.clone_url(REPO),
            ref=f"refs/heads/{branch}",
            branch=branch,
            before="0" * 40,
            after=sha,
            head_commit_message="change",
            changed_files=(),
            changed_files_complete=False,
            installation_id=github.installation_id,
            default_branch="main",
            pusher="octocat",
            sender="octocat",
        )
    )
    assert job is not None
    return job


def _pull_request(github: FakeGitHub, sha: str, number: int, fork: bool) -> Job:
    job = job_for(
        PullRequestEvent(
            delivery=f"pr-{number}-{fork}",
            action="opened",
            number=number,
            repo_full_name=REPO,
            clone_url=github.clone_url(REPO),
            head_sha=sha,
            head_ref="feature",
            head_repo_full_name="mallory/app" if fork else REPO,
            is_fork=fork,
            base_ref="main",
            base_sha="0" * 40,
            installation_id=github.installation_id,
            sender="mallory" if fork else "octocat",
            default_branch="main",
        )
    )
    assert job is not None
    return job


def _build(settings: Settings, job: Job) -> dict[str, Any]:
    build_now(settings, job)
    runs = sorted((Path(settings.results) / REPO / "run").iterdir())
    newest = runs[-1]
    data: dict[str, Any] = json.loads((newest / "note.json").read_text())
    data["log"] = (newest / "note.log").read_text()
    return data


def test_push_on_main_writes_a_pull_request_reads_a_fork_never_writes(
    settings: Settings, github: FakeGitHub
) -> None:
    sha = github.push(REPO, {".dockercise.yml": PIPELINE})
    main = _build(settings, _push(github, sha, "main", 1))
    assert main["status"] == "success" and main["cache"][0]["saved"] is True

    feature = github.push(REPO, {"x": "1"}, branch="feature")
    github.open_pull_request(REPO, 7, "feature")
    pr = _build(settings, _pull_request(github, feature, 7, fork=False))
    assert pr["cache"][0]["restored"] == "exact" and pr["cache"][0]["saved"] is True
    assert "refs/heads/main" in pr["log"]

    github.open_pull_request(REPO, 8, "feature")
    fork = _build(settings, _pull_request(github, feature, 8, fork=True))
    assert fork["cache"][0]["restored"] == "exact"  # the default branch's, not PR 7's
    assert "refs/pull/7/head" not in fork["log"]
    assert fork["cache"][0]["saved"] is False and "read-only in this build" in fork["log"]

    again = _build(settings, _push(github, github.push(REPO, {"y": "2"}), "main", 2))
    assert "refs/pull" not in again["log"]  # neither pull request wrote main's cache
    assert again["cache"][0]["restored"] == "exact"


def test_a_build_prunes_caches_unused_for_the_days(settings: Settings, github: FakeGitHub) -> None:
    stray = settings.data_dir / "cache" / "some-repo" / "some-scope" / "slot" / "old.tar"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"\0" * 1024)
    eight_days_ago = time.time() - 8 * 86400
    os.utime(stray, (eight_days_ago, eight_days_ago))
    sha = github.push(REPO, {".dockercise.yml": PIPELINE})
    assert _build(settings, _push(github, sha, "main", 1))["status"] == "success"
    assert not stray.exists()  # DOCKERCISE_CACHE_DAYS (7) passed without a use
    assert list((settings.data_dir / "cache").rglob("*.tar"))  # the build's own stays
    assert (settings.data_dir / "cache" / ".pruned-kept").is_file()  # kept images looked at
