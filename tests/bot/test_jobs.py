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
    assert json.loads(job.to_json()) == json.loads(WRITTEN_BEFORE)


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
