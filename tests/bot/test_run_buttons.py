"""The run page's Re-run and Cancel (SPEC §11): who sees them, what each answer is, what
pressing them records; the local site has none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.buttons import offer
from bot.jobs import Job, JobKind
from bot.state.base import Phase
from pages.local import create_local_app
from runner.store.local import LocalStore
from tests.bot.fake_github import FakeGitHub
from tests.bot.siteclient import PRIVATE, PUBLIC, SiteUnderTest, make_site, write_bot_run

RUNNING_RUN = "20261124T110000000Z-11111111"
ENDED_RUN = "20261124T120000000Z-22222222"
FORGOTTEN_RUN = "20261124T130000000Z-33333333"


def _job(repo: str, build_id: str) -> Job:
    return Job(
        id=build_id,
        kind=JobKind.PULL_REQUEST,
        repo=repo,
        clone_url=f"http://127.0.0.1:1/git/{repo}.git",
        ref="refs/pull/3/head",
        sha="d" * 40,
        branch="topic",
        installation_id=77,
        delivery=f"d-{build_id}",
        fork=True,
        number=3,
        author="mallory",
        approved_by="writer",
        trigger={"number": 3, "sha": "d" * 40, "sender": "mallory"},
    )


def _bot_run(site: SiteUnderTest, repo: str, run_id: str, build_id: str, running: bool) -> Job:
    """A run of `repo` made by build `build_id`, running (its build too) or ended (done)."""
    job = _job(repo, build_id)
    write_bot_run(site.results, repo, run_id)
    run_json = site.results / repo / "run" / run_id / "run.json"
    run = json.loads(run_json.read_text())
    run["trigger"] = {"kind": "pull_request", **job.trigger, "build": build_id}
    run["status"] = "running" if running else "success"
    run_json.write_text(json.dumps(run))
    site.state.record(job)
    site.state.claim_unannounced(10)
    site.state.handed_over(build_id)
    assert site.state.start(build_id, "worker-1")
    site.state.set_run(build_id, run_id)
    if not running:
        site.state.finish(build_id, "success")
    return job


@pytest.fixture
def site(github: FakeGitHub, tmp_path: Path) -> Iterator[SiteUnderTest]:
    for found in make_site(github, tmp_path):
        for repo in (PUBLIC, PRIVATE):
            _bot_run(found, repo, RUNNING_RUN, f"run{repo[5:]}", running=True)
            _bot_run(found, repo, ENDED_RUN, f"end{repo[5:]}", running=False)
        yield found


def _client(site: SiteUnderTest, who: str) -> FlaskClient:
    client = site.client()
    if who != "anonymous":
        assert site.sign_in(client, who).status_code == 303
    return client


def _csrf(client: FlaskClient) -> str:
    text = client.get("/").get_data(as_text=True)
    return text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def _page(repo: str, run_id: str) -> str:
    return f"/results/{repo}/run/{run_id}"


def _untouched(site: SiteUnderTest, repo: str) -> None:
    """Nothing was asked of the builds: no cancel, no new build."""
    assert site.state.cancel_requested(f"run{repo[5:]}") is None
    assert site.state.claim_unannounced(10) == []


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
def test_permission_is_checked_before_the_token(
    site: SiteUnderTest, repo: str, who: str, expected: int
) -> None:
    client = _client(site, who)
    token = _csrf(client) if who != "anonymous" else "none"
    for data in ({}, {"csrf_token": token}, {"csrf_token": "forged"}):
        assert client.post(f"{_page(repo, RUNNING_RUN)}/cancel", data=data).status_code == expected
        assert client.post(f"{_page(repo, ENDED_RUN)}/rerun", data=data).status_code == expected
    _untouched(site, repo)
    for run_id in (RUNNING_RUN, ENDED_RUN):
        shown = client.get(_page(repo, run_id))
        assert shown.status_code == (404 if expected == 404 else 200)
        assert 'class="actions"' not in shown.get_data(as_text=True)


@pytest.mark.parametrize("repo", [PRIVATE, PUBLIC])
def test_a_writer_with_a_missing_or_bad_token_gets_400(site: SiteUnderTest, repo: str) -> None:
    client = _client(site, "writer")
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        assert client.post(f"{_page(repo, RUNNING_RUN)}/cancel", data=data).status_code == 400
        assert client.post(f"{_page(repo, ENDED_RUN)}/rerun", data=data).status_code == 400
    _untouched(site, repo)


@pytest.mark.parametrize("action", ["cancel", "rerun"])
@pytest.mark.parametrize("who", ["anonymous", "writer"])
def test_a_get_is_405(site: SiteUnderTest, action: str, who: str) -> None:
    client = _client(site, who)
    answer = client.get(f"{_page(PRIVATE, ENDED_RUN)}/{action}")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    _untouched(site, PRIVATE)


def test_a_writer_cancels_a_running_build(site: SiteUnderTest, github: FakeGitHub) -> None:
    client = _client(site, "writer")
    page = _page(PRIVATE, RUNNING_RUN)
    shown = client.get(page).get_data(as_text=True)
    assert "Cancel</button>" in shown and "Re-run</button>" not in shown
    asked = github.calls.count(("GET", f"/repos/{PRIVATE}"))
    done = client.post(f"{page}/cancel", data={"csrf_token": _csrf(client)})
    assert done.status_code == 303 and done.headers["Location"] == page
    assert github.calls.count(("GET", f"/repos/{PRIVATE}")) == asked + 1  # asked afresh
    assert site.state.cancel_requested(f"run{PRIVATE[5:]}") == "cancelled"
    after = client.get(page).get_data(as_text=True)
    assert "Cancel requested (cancelled)" in after and "Cancel</button>" not in after


def test_a_writer_re_runs_an_ended_build_with_its_trust(site: SiteUnderTest) -> None:
    client = _client(site, "writer")
    page = _page(PRIVATE, ENDED_RUN)
    shown = client.get(page).get_data(as_text=True)
    assert "Re-run</button>" in shown and "Cancel</button>" not in shown
    done = client.post(f"{page}/rerun", data={"csrf_token": _csrf(client)})
    assert done.status_code == 303
    (claim,) = site.state.claim_unannounced(10)
    again, repeated = claim.job, _job(PRIVATE, f"end{PRIVATE[5:]}")
    assert done.headers["Location"] == f"/results/{PRIVATE}/build/{again.id}"
    assert again.id != repeated.id
    assert (again.sha, again.ref, again.kind, again.fork, again.number, again.approved_by) == (
        repeated.sha,
        repeated.ref,
        repeated.kind,
        True,
        3,
        "writer",
    )
    assert again.trigger["rerun_of"] == repeated.id and again.trigger["sender"] == "writer"


def test_a_running_build_is_not_re_run(site: SiteUnderTest) -> None:
    client = _client(site, "writer")
    answer = client.post(f"{_page(PUBLIC, RUNNING_RUN)}/rerun", data={"csrf_token": _csrf(client)})
    assert answer.status_code == 409
    _untouched(site, PUBLIC)


def test_write_access_is_asked_afresh_when_pressing(
    site: SiteUnderTest, github: FakeGitHub
) -> None:
    client = _client(site, "writer")
    page = _page(PRIVATE, RUNNING_RUN)
    token = _csrf(client)
    assert "Cancel</button>" in client.get(page).get_data(as_text=True)  # write remembered
    github.grant(PRIVATE, "writer", "read")  # taken away on GitHub since
    assert client.post(f"{page}/cancel", data={"csrf_token": token}).status_code == 403
    _untouched(site, PRIVATE)


def test_runs_without_a_remembered_build_have_no_buttons(site: SiteUnderTest) -> None:
    write_bot_run(site.results, PRIVATE, FORGOTTEN_RUN)  # no build in its trigger
    other = site.results / PRIVATE / "run" / FORGOTTEN_RUN / "run.json"
    client = _client(site, "writer")
    token = _csrf(client)
    for build in (None, "nosuchbuild", f"end{PUBLIC[5:]}"):  # none, forgotten, another repo's
        run = json.loads(other.read_text())
        run["trigger"]["build"] = build
        other.write_text(json.dumps(run))
        page = _page(PRIVATE, FORGOTTEN_RUN)
        assert 'class="actions"' not in client.get(page).get_data(as_text=True)
        assert client.post(f"{page}/rerun", data={"csrf_token": token}).status_code == 404
    assert (
        client.post(f"{_page(PRIVATE, 'nosuchrun')}/rerun", data={"csrf_token": token}).status_code
        == 404
    )
    _untouched(site, PRIVATE)


def test_the_local_site_has_no_buttons(site: SiteUnderTest) -> None:
    store = LocalStore(site.results / PRIVATE)
    app = create_local_app(store)
    page = app.test_client().get(f"/results/local/demo/run/{ENDED_RUN}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "<form" not in text and "Re-run" not in text


@pytest.mark.parametrize(
    ("status", "phase", "asked", "cancel", "rerun", "note"),
    [
        ("running", Phase.RUNNING, None, True, False, False),
        ("running", Phase.QUEUED, None, True, False, False),
        ("running", Phase.RUNNING, "cancelled", False, False, True),
        ("running", Phase.DONE, None, False, False, False),  # ended, its run.json not yet
        ("success", Phase.DONE, None, False, True, False),
        ("cancelled", Phase.RUNNING, None, False, True, False),  # ended, its state not yet
        ("error", Phase.RUNNING, None, False, True, False),  # a run its build left (re-queued)
    ],
)
def test_which_buttons(
    status: str, phase: Phase, asked: str | None, cancel: bool, rerun: bool, note: bool
) -> None:
    found = offer(status, phase, asked)
    assert (found.cancel, found.rerun, found.note is not None) == (cancel, rerun, note)
