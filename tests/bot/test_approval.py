"""Outside contributors wait for approval (SPEC §11): who waits, the pending report, Approve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.announce import announce
from bot.approval import WAITING, approved_id, needs_approval
from bot.checkout import Mirrors
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import ForkApproval, Settings
from bot.state.sqlite_store import SqliteState
from bot.supersede import SUPERSEDED
from tests.bot.fake_github import FakeGitHub
from tests.bot.siteclient import PRIVATE, PUBLIC, SiteUnderTest, make_site

PIPELINE = "test: {img: dockercise/busybox, run: 'true'}\n"


def _fork_job(repo: str, sha: str, build_id: str = "b1", author: str | None = "mallory") -> Job:
    return Job(
        id=build_id,
        kind=JobKind.PULL_REQUEST,
        repo=repo,
        clone_url=f"http://127.0.0.1:1/git/{repo}.git",
        ref="refs/pull/7/head",
        sha=sha,
        branch="feature",
        installation_id=77,
        delivery=f"d-{build_id}",
        fork=True,
        number=7,
        author=author,
        trigger={"number": 7, "sha": sha, "sender": author},
    )


@pytest.mark.parametrize(
    ("mode", "fork", "author", "collaborator", "approved_by", "waits"),
    [
        (ForkApproval.OUTSIDE, True, "mallory", False, None, True),
        (ForkApproval.OUTSIDE, True, "alice", True, None, False),
        (ForkApproval.OUTSIDE, True, None, True, None, True),  # unknown author: an outsider
        (ForkApproval.OUTSIDE, False, "mallory", False, None, False),  # not a fork
        (ForkApproval.OUTSIDE, True, "mallory", False, "writer", False),  # approved already
        (ForkApproval.ALWAYS, True, "alice", True, None, True),
        (ForkApproval.NEVER, True, "mallory", False, None, False),
    ],
)
def test_who_waits(
    mode: ForkApproval,
    fork: bool,
    author: str | None,
    collaborator: bool,
    approved_by: str | None,
    waits: bool,
) -> None:
    job = _fork_job("octo/app", "a" * 40, author=author)
    job = Job(**{**job.__dict__, "fork": fork, "approved_by": approved_by})
    asked: list[str] = []

    def is_collaborator(login: str) -> bool:
        asked.append(login)
        return collaborator

    assert needs_approval(mode, job, is_collaborator) is waits
    if mode is not ForkApproval.OUTSIDE or not fork or approved_by or author is None:
        assert asked == []  # GitHub is asked only when its answer decides


def test_an_outsiders_fork_build_waits_with_a_pending_link_and_a_collaborators_runs(
    settings: Settings, github: FakeGitHub, tmp_path: Path
) -> None:
    sha = github.push("octo/app", {".dockercise.yml": PIPELINE})
    github.grant("octo/app", "alice", "read")  # a collaborator, even read-only
    state = SqliteState(tmp_path / "state.db")
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    queued: list[Job] = []
    link = "http://ci.example/results/octo/app/build/b1"
    outsider = _fork_job("octo/app", sha, "b1", "mallory")
    state.record(outsider)
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    outcome = announce(
        app, state, queued.append, outsider, mirrors, ForkApproval.OUTSIDE, lambda j: link
    )
    assert outcome == WAITING and queued == []
    found = state.get("b1")
    assert found is not None and found.state == WAITING
    (pending,) = github.statuses_for(sha)
    assert (pending["state"], pending["description"], pending["target_url"]) == (
        "pending",
        "waiting for approval",
        link,
    )
    collaborator = _fork_job("octo/app", sha, "b2", "alice")
    state.record(collaborator)
    assert announce(app, state, queued.append, collaborator, mirrors) == "announced"
    assert [j.id for j in queued] == ["b2"]
    assert ("GET", "/repos/octo/app/collaborators/alice") in github.calls
    state.close()


@pytest.fixture
def site(github: FakeGitHub, tmp_path: Path) -> Iterator[SiteUnderTest]:
    yield from make_site(github, tmp_path)


def _waiting(site: SiteUnderTest, repo: str, build_id: str = "w1") -> Job:
    job = _fork_job(repo, "c" * 40, build_id)
    site.state.record(job)
    site.state.finish(build_id, WAITING)
    return job


def _csrf(client: FlaskClient, page: str) -> str:
    text = client.get(page).get_data(as_text=True)
    return text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def _client(site: SiteUnderTest, who: str) -> FlaskClient:
    client = site.client()
    if who != "anonymous":
        assert site.sign_in(client, who).status_code == 303
    return client


@pytest.mark.parametrize(
    ("repo", "who", "expected"),
    [
        (PRIVATE, "anonymous", 404),
        (PRIVATE, "outsider", 404),
        (PRIVATE, "reader", 403),
        (PUBLIC, "anonymous", 403),
        (PUBLIC, "outsider", 403),
        (PUBLIC, "reader", 403),
    ],
)
def test_approve_is_checked_before_its_token(
    site: SiteUnderTest, repo: str, who: str, expected: int
) -> None:
    _waiting(site, repo)
    client = _client(site, who)
    page = f"/results/{repo}/build/w1"
    token = _csrf(client, "/") if who != "anonymous" else "none"
    for data in ({}, {"csrf_token": token}, {"csrf_token": "forged"}):
        assert client.post(f"{page}/approve", data=data).status_code == expected
    assert site.state.get(approved_id("w1")) is None
    shown = client.get(page)
    assert shown.status_code == (404 if expected == 404 else 200)
    assert "Approve</button>" not in shown.get_data(as_text=True)


def test_a_writer_approves_once_and_the_build_stays_a_forks(site: SiteUnderTest) -> None:
    job = _waiting(site, PRIVATE)
    client = _client(site, "writer")
    page = f"/results/{PRIVATE}/build/w1"
    shown = client.get(page).get_data(as_text=True)
    assert "waiting for approval" in shown and "Approve</button>" in shown
    assert client.post(f"{page}/approve").status_code == 400  # no token
    assert client.post(f"{page}/approve", data={"csrf_token": "forged"}).status_code == 400
    assert site.state.get(approved_id("w1")) is None
    token = _csrf(client, page)
    done = client.post(f"{page}/approve", data={"csrf_token": token})
    assert done.status_code == 303
    assert done.headers["Location"] == f"/results/{PRIVATE}/build/{approved_id('w1')}"
    again = client.post(f"{page}/approve", data={"csrf_token": token})  # a second press
    assert again.status_code == 303
    twin = site.state.get(approved_id("w1"))
    assert twin is not None and twin.job.approved_by == "writer"
    assert twin.job.fork and twin.job.sha == job.sha and twin.job.ref == job.ref
    claimed = site.state.claim_unannounced(10)
    assert [c.job.id for c in claimed] == [approved_id("w1")]  # one build to run, queued once
    assert client.get(page).headers["Location"] == f"/results/{PRIVATE}/build/{approved_id('w1')}"


def test_a_build_of_another_repository_is_not_found_under_this_one(site: SiteUnderTest) -> None:
    _waiting(site, PRIVATE, "w9")
    client = _client(site, "writer")
    assert client.get(f"/results/{PUBLIC}/build/w9").status_code == 404
    assert client.get(f"/results/{PUBLIC}/build/nope").status_code == 404


def test_a_superseded_build_has_no_approve_and_an_approve_of_it_does_nothing(
    site: SiteUnderTest,
) -> None:
    _waiting(site, PRIVATE)
    client = _client(site, "writer")
    page = f"/results/{PRIVATE}/build/w1"
    token = _csrf(client, page)  # the page was open before the newer commit came
    assert site.state.end_waiting("w1", SUPERSEDED)
    shown = client.get(page).get_data(as_text=True)
    assert "Approve</button>" not in shown and "superseded" in shown
    done = client.post(f"{page}/approve", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"] == page
    assert site.state.get(approved_id("w1")) is None
    assert site.state.claim_unannounced(10) == []
