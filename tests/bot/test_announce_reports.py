"""What the announcer tells GitHub besides `queued` (SPEC §11, §12), against the strict fake:
its give-up goes the way the build's reports go, an approved build takes over the check run
"waiting for approval", `[skip ci]` on every path that can start a pull request's build."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.acting import rerun
from bot.announce import MAX_TRIES, Reporting, announce, give_up
from bot.approval import WAITING, approved, approved_id
from bot.builds import Builder
from bot.checkout import Mirrors
from bot.checks import ReportMode
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import ForkApproval, Settings, load_settings
from bot.state import Claim, StateStore, open_state
from bot.web import create_bot_app
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import WEBHOOK_SECRET, bot_env, pull_request_payload, rerequest
from webhooks.verify import sign

PIPELINE = "test: {img: dockercise/busybox, run: 'true'}\n"
PUBLIC_URL = "http://ci.example"


@dataclass
class Announcing:
    """The announcer's parts, over the fake GitHub and a state of their own."""

    github: FakeGitHub
    settings: Settings
    state: StateStore
    app: GitHubApp
    mirrors: Mirrors
    queued: list[Job]

    def announce(self, job: Job) -> str:
        return announce(
            self.app,
            self.state,
            self.queued.append,
            job,
            self.mirrors,
            ForkApproval.OUTSIDE,
            lambda j: f"{PUBLIC_URL}/results/{j.repo}/build/{j.id}",
            Reporting(ReportMode.CHECKS, PUBLIC_URL),
        )

    def announce_recorded(self) -> list[str]:
        """Announce every recorded build, as the consumers' announcers would."""
        return [self.announce(c.job) for c in self.state.claim_unannounced(20)]

    def reports(self, sha: str) -> list[Any]:
        return [*self.github.check_runs_for(sha), *self.github.statuses_for(sha)]


@pytest.fixture
def parts(github: FakeGitHub, tmp_path: Path) -> Iterator[Announcing]:
    settings = load_settings(bot_env(github, tmp_path))
    state = open_state(settings)
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    try:
        yield Announcing(github, settings, state, app, mirrors, [])
    finally:
        state.close()


def _pull_request(github: FakeGitHub, sha: str, build_id: str, author: str = "mallory") -> Job:
    return Job(
        id=build_id,
        kind=JobKind.PULL_REQUEST,
        repo="octo/app",
        clone_url=github.clone_url("octo/app"),
        ref="refs/pull/7/head",
        sha=sha,
        branch="topic",
        installation_id=github.installation_id,
        delivery=f"d-{build_id}",
        fork=True,
        number=7,
        author=author,
        trigger={"number": 7, "sha": sha, "sender": author},
    )


# --- the give-up and the announcer's crash -------------------------------------------------


@pytest.mark.parametrize("checks", [True, False])
@pytest.mark.parametrize("how", ["give up", "crash"])
def test_an_announcer_that_ends_a_build_reports_as_the_build_would(
    parts: Announcing, monkeypatch: pytest.MonkeyPatch, checks: bool, how: str
) -> None:
    if checks:
        parts.github.grant_checks()
    sha = parts.github.push("octo/app", {".dockercise.yml": PIPELINE})
    job = _pull_request(parts.github, sha, "b1", "octo")
    job = Job(**{**job.__dict__, "fork": False, "kind": JobKind.PUSH, "ref": "refs/heads/main"})
    parts.state.record(job)
    if how == "give up":
        reporting = Reporting(ReportMode.CHECKS, PUBLIC_URL)
        assert give_up(parts.app, parts.state, Claim(job, MAX_TRIES + 1), reporting) == "error"
        why = f"build error: could not be announced ({MAX_TRIES} tries)"
    else:

        def broken(files: dict[str, str]) -> None:
            raise RuntimeError("the loader broke")

        monkeypatch.setattr("bot.announce.pipelines.load_texts", broken)
        assert parts.announce(job) == "error"
        why = "build error: internal error while reading the pipeline (RuntimeError)"
    found = parts.state.get("b1")
    assert found is not None and found.state == "error" and parts.queued == []
    if checks:
        (run,) = parts.github.check_runs_for(sha)
        assert (run["name"], run["status"], run["conclusion"]) == (
            "dockercise",
            "completed",
            "failure",
        )
        assert run["output"]["title"] == why and run["external_id"] == "b1"
        assert run["details_url"] == f"{PUBLIC_URL}/results/octo/app/"
        assert parts.github.statuses_for(sha) == []  # check runs only, as the build would
    else:
        (status,) = parts.github.statuses_for(sha)
        assert (status["state"], status["description"]) == ("error", why)
        assert parts.github.check_runs_for(sha) == []


# --- approval: the waiting check run is taken over ----------------------------------------


def test_the_approved_build_takes_over_the_waiting_check_run(parts: Announcing) -> None:
    parts.github.grant_checks()
    sha = parts.github.push("octo/app", {".dockercise.yml": PIPELINE})
    waiting = _pull_request(parts.github, sha, "w1")
    parts.state.record(waiting)
    assert parts.announce(waiting) == WAITING
    (run,) = parts.github.check_runs_for(sha)
    assert (run["status"], run["output"]["title"], run["external_id"]) == (
        "queued",
        "waiting for approval",
        "w1",
    )
    twin = approved(waiting, "writer")
    parts.state.record(twin)
    assert parts.announce(twin) == "announced"
    (run,) = parts.github.check_runs_for(sha)  # still one check run: the same one
    assert run["status"] == "queued" and run["external_id"] == approved_id("w1")
    assert run["output"]["title"] == "approved by writer"
    assert run["details_url"] == f"{PUBLIC_URL}/results/octo/app/"
    assert [j.id for j in parts.queued] == [approved_id("w1")]
    # The worker finds it by the approved build's id, as for any build.
    found = parts.app.installation("octo/app", None).find_check_run(
        "octo/app", sha, "dockercise", approved_id("w1")
    )
    assert found == run["id"]
    assert parts.github.statuses_for(sha) == []


def test_an_approved_build_whose_waiting_check_run_is_gone_makes_its_own(
    parts: Announcing,
) -> None:
    parts.github.grant_checks()
    sha = parts.github.push("octo/app", {".dockercise.yml": PIPELINE})
    waiting = _pull_request(parts.github, sha, "w2")
    parts.state.record(waiting)
    parts.state.finish("w2", WAITING)  # waited while checks were not granted: no check run
    twin = approved(waiting, "writer")
    parts.state.record(twin)
    assert parts.announce(twin) == "announced"
    (run,) = parts.github.check_runs_for(sha)
    assert run["status"] == "queued" and run["external_id"] == approved_id("w2")


# --- [skip ci] on a pull request ------------------------------------------------------------


def _deliver(client: FlaskClient, event: str, payload: dict[str, Any], delivery: str) -> int:
    body = json.dumps(payload).encode()
    answer = client.post(
        "/webhooks/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET),
        },
    )
    return answer.status_code


@pytest.mark.parametrize("marker", ["[skip ci]", "[CI Skip]"])
def test_a_skip_ci_pull_request_builds_nothing_on_any_action_but_a_re_run_builds(
    parts: Announcing, github: FakeGitHub, tmp_path: Path, marker: str
) -> None:
    github.grant_checks()
    github.push("octo/app", {"README": "main\n"})
    sha = github.push(
        "octo/app", {".dockercise.yml": PIPELINE}, branch="topic", message=f"wip {marker}"
    )
    github.open_pull_request("octo/app", 7, "topic")
    github.grant("octo/app", "octocat", "read")  # the example payload's author collaborates
    client = create_bot_app(bot_env(github, tmp_path)).test_client()
    for action in ("opened", "synchronize", "reopened"):
        payload = pull_request_payload(github, "octo/app", 7, sha, "octo/app")
        payload["action"] = action
        assert _deliver(client, "pull_request", payload, f"pr-{action}") == 202
    assert parts.announce_recorded() == ["skipped"] * 3
    assert parts.queued == [] and parts.reports(sha) == []

    # Re-run on GitHub (the check suite: no check run was ever made) was asked for by a
    # person: it builds, as the stored build of that commit (a pull request's, same trust).
    again = rerequest(github, "check_suite", "octo/app", sha, "topic")
    assert _deliver(client, "check_suite", again, "rerun-skipped") == 202
    assert parts.announce_recorded() == ["announced"]
    (built,) = parts.queued
    skipped = {b.job.id for b in parts.state.builds_of("octo/app", sha) if b.state == "skipped"}
    assert len(skipped) == 3
    assert (built.kind, built.sha, built.number) == (JobKind.PULL_REQUEST, sha, 7)
    assert built.trigger["rerun_of"] in skipped
    (run,) = github.check_runs_for(sha)
    assert run["status"] == "queued" and run["external_id"] == built.id

    # So does a re-run of a skipped build asked for some other way (`bot.acting.rerun`).
    assert rerun(parts.state, sorted(skipped)[0], "writer") is not None
    assert parts.announce_recorded() == ["announced"]


def test_the_worker_skips_a_pull_request_whose_message_the_announcer_could_not_read(
    parts: Announcing, github: FakeGitHub
) -> None:
    """Queued unannounced (GitHub did not answer the announcer): the checkout's commit says
    `[skip ci]`, so the worker ends the build before loading it, reporting nothing."""
    github.grant_checks()
    github.push("octo/app", {"README": "main\n"})
    sha = github.push(
        "octo/app", {".dockercise.yml": PIPELINE}, branch="topic", message="docs\n\n[ci skip]"
    )
    github.open_pull_request("octo/app", 7, "topic")
    job = _pull_request(github, sha, "s1")
    parts.state.record(job)
    Builder(parts.settings, parts.app, parts.state, "test-worker").build(job)
    found = parts.state.get("s1")
    assert found is not None and (found.status, found.state) == ("done", "skipped")
    assert parts.reports(sha) == []
    assert not (parts.settings.data_dir / "checkouts" / "s1").exists()


# --- a newer commit supersedes the waiting build (SPEC §11) -----------------------------------


def _fork_push(client: FlaskClient, github: FakeGitHub, sha: str, action: str) -> None:
    """GitHub tells of a fork's pull request #7 by Codertocat (no collaborator) at `sha`."""
    payload = pull_request_payload(github, "octo/app", 7, sha, "Codertocat/app")
    payload["action"] = action
    assert _deliver(client, "pull_request", payload, f"pr-{action}-{sha[:8]}") == 202


@pytest.mark.parametrize("checks", [True, False])
def test_a_newer_commit_ends_the_waiting_build_of_the_older(
    parts: Announcing, github: FakeGitHub, tmp_path: Path, checks: bool
) -> None:
    if checks:
        github.grant_checks()
    github.push("octo/app", {"README": "main\n"})
    first = github.push("octo/app", {".dockercise.yml": PIPELINE}, branch="topic")
    github.open_pull_request("octo/app", 7, "topic")
    client = create_bot_app(bot_env(github, tmp_path)).test_client()
    _fork_push(client, github, first, "opened")
    assert parts.announce_recorded() == [WAITING]
    (older,) = parts.state.builds_of("octo/app", first)
    assert older.state == WAITING

    second = github.push("octo/app", {"more": "x\n"}, branch="topic")
    github.open_pull_request("octo/app", 7, "topic")
    _fork_push(client, github, second, "synchronize")
    assert parts.announce_recorded() == [WAITING]
    (newer,) = parts.state.builds_of("octo/app", second)
    assert newer.state == WAITING  # only the newest waits
    ended = parts.state.get(older.job.id)
    assert ended is not None and ended.state == "cancelled: superseded"
    assert [b.job.id for b in parts.state.waiting("octo/app", 7)] == [newer.job.id]
    assert parts.queued == []
    page = f"{PUBLIC_URL}/results/octo/app/build/{older.job.id}"
    if checks:
        (run,) = github.check_runs_for(first)  # the same check run, completed
        assert (run["status"], run["conclusion"], run["external_id"]) == (
            "completed",
            "cancelled",
            older.job.id,
        )
        assert run["output"]["title"] == "cancelled: superseded" and run["details_url"] == page
        (waiting,) = github.check_runs_for(second)
        assert (waiting["status"], waiting["output"]["title"]) == ("queued", "waiting for approval")
        assert github.statuses_for(first) == github.statuses_for(second) == []
    else:
        assert [
            (s["state"], s["description"], s["target_url"]) for s in github.statuses_for(first)
        ] == [
            ("pending", "waiting for approval", page),
            ("error", "cancelled: superseded", page),
        ]
        assert [(s["state"], s["description"]) for s in github.statuses_for(second)] == [
            ("pending", "waiting for approval")
        ]
    # An Approve pressed on the old page too late records nothing.
    assert isinstance(parts.state.record(approved(older.job, "writer")), str)
    assert parts.state.get(approved_id(older.job.id)) is None


def test_a_newer_commit_cancels_the_older_commit_s_approved_build(parts: Announcing) -> None:
    """Approved before the push, the older commit's build is queued: cancelled as any other;
    its waiting build, whose check run the approved build took over, is left alone."""
    parts.github.grant_checks()
    first = parts.github.push("octo/app", {".dockercise.yml": PIPELINE})
    waiting = _pull_request(parts.github, first, "w1")
    parts.state.record(waiting)
    assert parts.announce(waiting) == WAITING
    twin = approved(waiting, "writer")
    parts.state.record(twin)
    assert parts.announce(twin) == "announced"
    second = parts.github.push("octo/app", {"more": "x\n"})
    newer = _pull_request(parts.github, second, "w2")
    parts.state.record(newer)
    assert parts.announce(newer) == WAITING
    assert parts.state.cancel_requested(twin.id) == "cancelled: superseded"
    kept = parts.state.get("w1")
    assert kept is not None and kept.state == WAITING
    (run,) = parts.github.check_runs_for(first)  # the approved build's now: its worker ends it
    assert run["status"] == "queued" and run["external_id"] == twin.id
