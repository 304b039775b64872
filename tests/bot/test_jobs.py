"""Jobs as text (pure): what the stores and the queue keep, and what events ask for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.jobs import Job, JobKind, job_for, new_build_id
from webhooks.events import InstallationEvent, PullRequestEvent, PushEvent, parse_github

PAYLOADS = Path(__file__).parent.parent / "webhooks" / "github-payloads"

# As the bot wrote jobs before JobKind: a kind is its plain string, and stays so.
WRITTEN_BEFORE = (
    '{"id": "b1", "kind": "pull_request", "repo": "octo/app", "clone_url":'
    ' "http://127.0.0.1:1/git/octo/app.git", "ref": "refs/pull/7/head", "sha": "aaaa",'
    ' "branch": "feature", "installation_id": 77, "delivery": "d-1", "fork": true,'
    ' "number": 7, "changed": null, "trigger": {"number": 7}, "targets": []}'
)


@pytest.mark.parametrize("kind", list(JobKind))
def test_every_kind_round_trips_through_text_as_its_plain_string(kind: JobKind) -> None:
    job = Job(
        id="b1",
        kind=kind,
        repo="octo/app",
        clone_url="http://x/octo/app.git",
        ref="refs/heads/main",
        sha="a" * 40,
        changed=("README",),
        targets=("version",),
        fork=False,
    )
    text = job.to_json()
    assert json.loads(text)["kind"] == kind.value
    again = Job.from_json(text)
    assert again == job
    assert again.kind is kind


def test_jobs_written_before_kinds_were_an_enum_still_read() -> None:
    job = Job.from_json(WRITTEN_BEFORE)
    assert job.kind is JobKind.PULL_REQUEST
    assert (job.fork, job.number, job.changed, job.targets) == (True, 7, None, ())
    assert (job.author, job.approved_by) == (None, None)  # fields added since: their defaults
    added = {"author": None, "approved_by": None}
    assert json.loads(job.to_json()) == json.loads(WRITTEN_BEFORE) | added


def test_the_stored_values_of_the_kinds_do_not_change() -> None:
    assert [k.value for k in JobKind] == ["push", "pull_request", "upstream", "schedule", "watch"]


@pytest.mark.parametrize(
    ("event", "payload", "kind"),
    [
        ("push", "push.with-new-branch.payload.json", JobKind.PUSH),
        ("pull_request", "pull_request.opened.payload.json", JobKind.PULL_REQUEST),
    ],
)
def test_a_github_event_asks_for_a_job_of_its_kind(event: str, payload: str, kind: JobKind) -> None:
    parsed = parse_github(event, "d-1", json.loads((PAYLOADS / payload).read_bytes()))
    assert isinstance(parsed, PushEvent | PullRequestEvent)
    job = job_for(parsed)
    assert job is not None and job.kind is kind and job.delivery == "d-1"


def test_an_installation_event_builds_nothing() -> None:
    assert job_for(InstallationEvent("d-1", "created", "octo", 77, ("octo/app",))) is None


def test_build_ids_are_new_each_time() -> None:
    assert len({new_build_id() for _ in range(100)}) == 100


def _stored(**changes: object) -> str:
    data = json.loads(WRITTEN_BEFORE) | {"kind": "push", "ref": "refs/heads/main"}
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not _GONE})


_GONE = object()


@pytest.mark.parametrize("fork", [_GONE, None, "false", 0, True])
def test_a_stored_job_that_does_not_say_it_is_trusted_is_a_fork_s(fork: object) -> None:
    """SPEC §10: a commit whose origin is unknown is a fork's, whatever its kind."""
    assert Job.from_json(_stored(fork=fork)).fork is True


def test_a_stored_trusted_job_stays_trusted() -> None:
    assert Job.from_json(_stored(fork=False)).fork is False


def test_every_job_says_how_far_it_is_trusted() -> None:
    with pytest.raises(TypeError, match="fork"):
        Job(id="b", kind=JobKind.PUSH, repo="o/r", clone_url="http://x", ref="r", sha="s")  # type: ignore[call-arg]


@pytest.mark.parametrize("fork", [True, False])
def test_a_rerun_is_as_trusted_as_the_build_it_repeats(fork: bool) -> None:
    job = Job.from_json(_stored(fork=fork))
    again = job.rerun()
    assert again.fork is fork
    assert again.id != job.id and again.delivery is None
    assert (again.repo, again.sha, again.ref, again.kind) == (job.repo, job.sha, job.ref, job.kind)


@pytest.mark.parametrize(
    ("head", "fork"),
    [("octo/app", False), ("OCTO/App", False), ("mallory/app", True), (None, True)],
)
def test_a_pull_request_is_a_fork_s_unless_its_head_is_the_repository_itself(
    head: str | None, fork: bool
) -> None:
    payload = json.loads((PAYLOADS / "pull_request.opened.payload.json").read_bytes())
    payload["repository"]["full_name"] = "octo/app"
    payload["pull_request"]["base"]["repo"]["full_name"] = "octo/app"
    if head is None:  # the head repository was deleted
        payload["pull_request"]["head"]["repo"] = None
    else:
        payload["pull_request"]["head"]["repo"]["full_name"] = head
    event = parse_github("pull_request", "d-1", payload)
    assert isinstance(event, PullRequestEvent)
    job = job_for(event)
    assert job is not None and job.fork is fork
    assert Job.from_json(job.to_json()).fork is fork


def test_a_push_is_trusted() -> None:
    payload = json.loads((PAYLOADS / "push.with-new-branch.payload.json").read_bytes())
    event = parse_github("push", "d-1", payload)
    assert isinstance(event, PushEvent)
    job = job_for(event)
    assert job is not None and job.fork is False
