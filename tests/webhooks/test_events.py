"""Payload -> typed event: every real delivery is accepted or ignored, never crashes."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.webhooks.conftest import PAYLOAD_FILES, event_name, load
from webhooks.errors import PayloadInvalid
from webhooks.events import (
    Ignored,
    InstallationEvent,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    RemoteBuildComplete,
    RepositoryEvent,
    RerunRequested,
    parse_dockercise,
    parse_github,
)

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
OTHER_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
ZEROS = "0" * 40

# What each real payload must give; a new file fails until it is listed here.
EXPECTED: dict[str, type] = {
    # Re-runs from GitHub (SPEC §12); the rest is ignored: the push builds the commit.
    "check_run.completed.2.payload.json": Ignored,
    "check_run.completed.3.payload.json": Ignored,
    "check_run.completed.payload.json": Ignored,
    "check_run.created.2.payload.json": Ignored,
    "check_run.created.3.payload.json": Ignored,
    "check_run.created.payload.json": Ignored,
    "check_run.requested_action.payload.json": Ignored,
    "check_run.rerequested.2.payload.json": RerunRequested,
    "check_run.rerequested.payload.json": RerunRequested,
    "check_suite.completed.2.payload.json": Ignored,
    "check_suite.completed.3.payload.json": Ignored,
    "check_suite.completed.4.payload.json": Ignored,
    "check_suite.completed.payload.json": Ignored,
    "check_suite.requested.2.payload.json": Ignored,
    "check_suite.requested.3.payload.json": Ignored,
    "check_suite.requested.payload.json": Ignored,
    "check_suite.rerequested.2.payload.json": RerunRequested,
    "check_suite.rerequested.payload.json": RerunRequested,
    "installation.created.payload.json": InstallationEvent,
    "installation.deleted.payload.json": InstallationEvent,
    "ping.payload.json": PingEvent,
    "ping.with-app_id.payload.json": PingEvent,
    "ping.with-organization.payload.json": PingEvent,
    "pull_request.closed.payload.json": Ignored,
    "pull_request.labeled.payload.json": Ignored,
    "pull_request.opened.payload.json": PullRequestEvent,
    "pull_request.opened.with-null-body.json": PullRequestEvent,
    "pull_request.ready_for_review.with-installation.payload.json": Ignored,
    "pull_request.reopened.payload.json": PullRequestEvent,
    "pull_request.synchronize.payload.json": PullRequestEvent,
    # These four delete the tag simple-tag: nothing to build.
    "push.1.payload.json": Ignored,
    "push.payload.json": Ignored,
    "push.with-installation.payload.json": Ignored,
    "push.with-organization.payload.json": Ignored,
    "push.with-new-branch.payload.json": PushEvent,
    "push.with-no-username-committer.payload.json": PushEvent,
}


def expected_type(path: Path) -> type:
    assert path.name in EXPECTED, f"decide what {path.name} should parse to, in EXPECTED"
    return EXPECTED[path.name]


def test_every_payload_file_has_an_expectation() -> None:
    assert sorted(p.name for p in PAYLOAD_FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.name)
def test_real_payload_parses_to_expected_type(path: Path) -> None:
    parsed = parse_github(event_name(path), "d-1", json.loads(path.read_bytes()))
    assert type(parsed) is expected_type(path)
    if isinstance(parsed, Ignored):
        assert parsed.reason
    else:
        assert parsed.delivery == "d-1"


def test_push_fields() -> None:
    event = parse_github("push", "d-1", load("push.with-new-branch.payload"))
    assert event == PushEvent(
        delivery="d-1",
        repo_full_name="Codertocat/Hello-World",
        clone_url="https://github.com/Codertocat/Hello-World.git",
        ref="refs/heads/master",
        branch="master",
        before=ZEROS,
        after=OTHER_SHA,
        head_commit_message="Initial commit",
        changed_files=("README.md",),
        changed_files_complete=False,  # a new branch: the bot must diff itself
        installation_id=1,
        default_branch="master",
        pusher="Codertocat",
        private=False,
        sender="Codertocat",
    )


def _branch_push(**changes: Any) -> dict[str, Any]:
    payload = load("push.with-new-branch.payload")
    payload.update({"before": SHA, "created": False, **changes})
    return payload


def test_push_changed_files_are_the_union_of_all_commits() -> None:
    commits = [
        {"added": ["b.txt"], "modified": ["a.txt"], "removed": []},
        {"added": [], "modified": ["a.txt", "src/☃.py"], "removed": ["old.txt"]},
    ]
    event = parse_github("push", "d", _branch_push(commits=commits))
    assert isinstance(event, PushEvent)
    assert event.changed_files == ("a.txt", "b.txt", "old.txt", "src/☃.py")
    assert event.changed_files_complete


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"forced": True}, id="forced"),
        pytest.param({"commits": [{"added": [f"f{i}"]} for i in range(20)]}, id="20-commits"),
        pytest.param({"before": ZEROS}, id="new-branch"),
    ],
)
def test_push_changed_files_incomplete(changes: dict[str, Any]) -> None:
    event = parse_github("push", "d", _branch_push(**changes))
    assert isinstance(event, PushEvent)
    assert not event.changed_files_complete


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"deleted": True, "after": ZEROS}, "deletes refs/heads/master", id="deleted"),
        pytest.param({"after": ZEROS}, "deletes", id="after-zeros-only"),
        pytest.param({"deleted": True}, "deletes", id="deleted-flag-only"),
        pytest.param({"ref": "refs/tags/v1.0"}, "tag refs/tags/v1.0", id="tag"),
        pytest.param({"ref": "refs/notes/commits"}, "non-branch ref", id="notes"),
    ],
)
def test_push_ignored(changes: dict[str, Any], reason: str) -> None:
    event = parse_github("push", "d", _branch_push(**changes))
    assert isinstance(event, Ignored)
    assert reason in event.reason


def test_pull_request_fields() -> None:
    event = parse_github("pull_request", "d-2", load("pull_request.synchronize.payload"))
    assert event == PullRequestEvent(
        delivery="d-2",
        action="synchronize",
        number=2,
        repo_full_name="Codertocat/Hello-World",
        clone_url="https://github.com/Codertocat/Hello-World.git",
        head_sha=SHA,
        head_ref="changes",
        head_repo_full_name="Codertocat/Hello-World",
        is_fork=False,
        base_ref="master",
        base_sha="f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        installation_id=1,
        sender="Codertocat",
        default_branch="master",
        author="Codertocat",
        private=False,
    )


@pytest.mark.parametrize(
    ("head_repo", "is_fork"),
    [
        pytest.param({"full_name": "codertocat/hello-world"}, False, id="same-repo-other-case"),
        pytest.param({"full_name": "Mallory/Hello-World"}, True, id="fork"),
        pytest.param(None, True, id="deleted-fork"),
    ],
)
def test_pull_request_fork(head_repo: dict[str, Any] | None, is_fork: bool) -> None:
    payload = load("pull_request.opened.payload")
    payload["pull_request"]["head"]["repo"] = head_repo
    event = parse_github("pull_request", "d", payload)
    assert isinstance(event, PullRequestEvent)
    assert event.is_fork is is_fork
    assert event.head_repo_full_name == (head_repo and head_repo["full_name"])


@pytest.mark.parametrize("action", ["closed", "labeled", "edited", "ready_for_review", "assigned"])
def test_pull_request_actions_that_build_nothing(action: str) -> None:
    payload = load("pull_request.opened.payload")
    payload["action"] = action
    event = parse_github("pull_request", "d", payload)
    assert event == Ignored(f"pull_request action '{action}' builds nothing")


def test_check_run_rerequested_fields() -> None:
    payload = load("check_run.rerequested.payload")
    payload["check_run"]["external_id"] = "0123456789abcdef"
    event = parse_github("check_run", "d-9", payload)
    assert event == RerunRequested(
        delivery="d-9",
        event="check_run",
        repo_full_name="github/hello-world",
        clone_url="http://github.com/github/hello-world.git",
        head_sha="d6fde92930d4715a2b49857d24b940956b26d2d3",
        head_branch="master",
        external_id="0123456789abcdef",
        installation_id=1,
        sender=payload["sender"]["login"],
    )


@pytest.mark.parametrize("external_id", ["", "42", "../../x", "0123456789ABCDEF", None])
def test_an_external_id_that_is_no_build_id_is_none(external_id: str | None) -> None:
    payload = load("check_run.rerequested.payload")
    payload["check_run"]["external_id"] = external_id
    event = parse_github("check_run", "d", payload)
    assert isinstance(event, RerunRequested) and event.external_id is None


def test_check_suite_rerequested_never_reads_its_pull_requests() -> None:
    payload = load("check_suite.rerequested.payload")
    payload["check_suite"]["pull_requests"] = "not even a list"
    event = parse_github("check_suite", "d", payload)
    assert isinstance(event, RerunRequested)
    assert (event.head_sha, event.head_branch, event.external_id) == (SHA, "changes", None)


@pytest.mark.parametrize("marker", ["[skip ci]", "[ci skip]", "[Skip CI]"])
def test_a_push_whose_head_commit_says_skip_ci_is_ignored(marker: str) -> None:
    payload = load("push.with-new-branch.payload")
    payload["head_commit"]["message"] = f"docs: typo\n\n{marker}"
    ignored = parse_github("push", "d", payload)
    assert isinstance(ignored, Ignored) and "[skip ci]" in ignored.reason


def test_installation_fields() -> None:
    event = parse_github("installation", "d", load("installation.created.payload"))
    assert event == InstallationEvent(
        delivery="d",
        action="created",
        account="Codertocat",
        installation_id=957387,
        repositories=("Codertocat/Hello-World",),
    )


@pytest.mark.parametrize(
    ("name", "repo"),
    [("ping.payload", "Octocoders/Hello-World"), ("ping.with-organization.payload", None)],
)
def test_ping_fields(name: str, repo: str | None) -> None:
    event = parse_github("ping", "d", load(name))
    assert event == PingEvent(
        delivery="d", zen="Anything added dilutes everything else.", hook_id=109948940,
        repo_full_name=repo,
    )  # fmt: skip


@pytest.mark.parametrize("payload", [{}, [], "x", None])
def test_unknown_event_is_ignored_whatever_its_body(payload: Any) -> None:
    assert parse_github("star", "d", payload) == Ignored("event 'star' is not handled")


def test_events_are_frozen() -> None:
    event = parse_github("push", "d", load("push.with-new-branch.payload"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.after = SHA  # type: ignore[misc, union-attr]


_DELETE = object()


def _mutate(payload: Any, path: str, value: Any) -> Any:
    """Set (or with _DELETE remove) the value at a dotted path; numbers index lists."""
    *parents, last = path.split(".")
    node = payload
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return payload


@pytest.mark.parametrize(
    ("event", "example", "path", "value", "field"),
    [
        ("push", "with-new-branch", "repository", _DELETE, "repository"),
        ("push", "with-new-branch", "repository", "Codertocat/Hello-World", "repository"),
        ("push", "with-new-branch", "after", 123, "after"),
        ("push", "with-new-branch", "after", "master", "after"),
        ("push", "with-new-branch", "after", "--upload-pack=x" + "0" * 25, "after"),
        ("push", "with-new-branch", "before", _DELETE, "before"),
        ("push", "with-new-branch", "ref", None, "ref"),
        ("push", "with-new-branch", "deleted", "no", "deleted"),
        ("push", "with-new-branch", "repository.full_name", _DELETE, "repository.full_name"),
        ("push", "with-new-branch", "repository.full_name", "../etc", "repository.full_name"),
        ("push", "with-new-branch", "repository.full_name", "o/..", "repository.full_name"),
        ("push", "with-new-branch", "repository.clone_url", "ext::sh", "repository.clone_url"),
        ("push", "with-new-branch", "repository.default_branch", 1, "repository.default_branch"),
        ("push", "with-new-branch", "commits", {}, "commits"),
        ("push", "with-new-branch", "commits.0", "abc", "commits.0"),
        ("push", "with-new-branch", "commits.0.added", [1], "commits.0.added.0"),
        ("push", "with-new-branch", "installation.id", "1", "installation.id"),
        ("push", "with-new-branch", "installation.id", True, "installation.id"),
        ("push", "with-new-branch", "pusher", _DELETE, "pusher"),
        ("push", "with-new-branch", "head_commit.message", 5, "head_commit.message"),
        ("pull_request", "opened", "action", _DELETE, "action"),
        ("pull_request", "opened", "number", "2", "number"),
        ("pull_request", "opened", "pull_request", _DELETE, "pull_request"),
        ("pull_request", "opened", "pull_request.head.sha", _DELETE, "pull_request.head.sha"),
        ("pull_request", "opened", "pull_request.head.repo", [], "pull_request.head.repo"),
        ("pull_request", "opened", "pull_request.base.ref", 7, "pull_request.base.ref"),
        ("pull_request", "opened", "repository.clone_url", None, "repository.clone_url"),
        ("installation", "created", "installation.account.login", _DELETE,
         "installation.account.login"),
        ("installation", "created", "repositories.0.full_name", 3, "repositories.0.full_name"),
        ("ping", "", "hook_id", _DELETE, "hook_id"),
        ("ping", "", "zen", ["x"], "zen"),
    ],
)  # fmt: skip
def test_malformed_payload_names_the_field(
    event: str, example: str, path: str, value: Any, field: str
) -> None:
    payload = _mutate(load(".".join(filter(None, [event, example, "payload"]))), path, value)
    with pytest.raises(PayloadInvalid) as caught:
        parse_github(event, "d", payload)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize("event", ["push", "pull_request", "installation", "ping"])
@pytest.mark.parametrize("payload", [[], "x", 3, None])
def test_body_not_an_object(event: str, payload: Any) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        parse_github(event, "d", payload)
    assert caught.value.field == "body"


REMOTE = {
    "pipeline": "owner/lib",
    "ref": "refs/heads/main",
    "sha": SHA,
    "status": "success",
    "run_id": "20240501T120000123Z-0a1b2c3d",
    "url": "https://ci.example.com/owner/lib/run/20240501T120000123Z-0a1b2c3d",
    "finished": "2024-05-01T12:03:04.500Z",
}


def test_remote_build_complete_round_trips() -> None:
    event = parse_dockercise(dict(REMOTE, extra="ignored"))
    assert event == RemoteBuildComplete(
        pipeline="owner/lib",
        ref="refs/heads/main",
        sha=SHA,
        status="success",
        run_id="20240501T120000123Z-0a1b2c3d",
        url=REMOTE["url"],
        finished=datetime(2024, 5, 1, 12, 3, 4, 500000, tzinfo=UTC),
    )
    assert event.to_json() == REMOTE
    assert parse_dockercise(json.loads(json.dumps(event.to_json()))) == event


def test_remote_build_complete_offset_becomes_utc() -> None:
    event = parse_dockercise(dict(REMOTE, finished="2024-05-01T14:03:04+02:00"))
    assert event.finished == datetime(2024, 5, 1, 12, 3, 4, tzinfo=UTC)


@pytest.mark.parametrize("status", ["success", "failure", "error", "cancelled"])
def test_remote_build_complete_statuses(status: str) -> None:
    assert parse_dockercise(dict(REMOTE, status=status)).status == status


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pipeline", _DELETE),
        ("pipeline", "lib"),
        ("pipeline", "owner/.."),
        ("ref", ""),
        ("ref", None),
        ("sha", "abc"),
        ("status", "passed"),
        ("status", "running"),
        ("run_id", "../../etc"),
        ("run_id", ""),
        ("url", 1),
        ("finished", "yesterday"),
        ("finished", "2024-05-01T12:03:04"),  # no offset: ambiguous
        ("finished", 1714564984),
    ],
)
def test_remote_build_complete_malformed(field: str, value: Any) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        parse_dockercise(_mutate(dict(REMOTE), field, value))
    assert caught.value.field == field


def test_remote_build_complete_body_not_an_object() -> None:
    with pytest.raises(PayloadInvalid, match=r"^body: "):
        parse_dockercise([REMOTE])


def _repository_payload(**repository: Any) -> dict[str, Any]:
    base = {"id": 7, "name": "app", "full_name": "octo/app", "private": True}
    return {
        "action": "privatized",
        "repository": {**base, **repository},
        "installation": {"id": 77},
        "sender": {"login": "octocat"},
    }


def test_repository_events_say_the_privacy() -> None:
    event = parse_github("repository", "d", _repository_payload())
    assert event == RepositoryEvent("d", "privatized", "octo/app", True, 77)
    public = parse_github("repository", "d", _repository_payload(private=False))
    assert isinstance(public, RepositoryEvent) and not public.private
    absent = _repository_payload()
    del absent["repository"]["private"]
    unknown = parse_github("repository", "d", absent)
    assert isinstance(unknown, RepositoryEvent) and unknown.private  # unknown: private


@pytest.mark.parametrize(
    "repository",
    [
        pytest.param({"private": "false"}, id="private-string"),
        pytest.param({"private": 0}, id="private-number"),
        pytest.param({"full_name": "../x"}, id="climbing-name"),
        pytest.param({"full_name": "a/b/c"}, id="three-parts"),
    ],
)
def test_repository_events_with_bad_values_are_refused(repository: dict[str, Any]) -> None:
    with pytest.raises(PayloadInvalid):
        parse_github("repository", "d", _repository_payload(**repository))


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("check_suite.head_sha", "HEAD", "check_suite.head_sha"),
        ("check_suite.head_branch", "a..b", "check_suite.head_branch"),
        ("check_suite", _DELETE, "check_suite"),
        ("repository.clone_url", "file:///etc", "repository.clone_url"),
        ("installation.id", 0, "installation.id"),
    ],
)
def test_malformed_rerequests_name_the_field(path: str, value: Any, field: str) -> None:
    payload = _mutate(load("check_suite.rerequested.payload"), path, value)
    with pytest.raises(PayloadInvalid) as caught:
        parse_github("check_suite", "d", payload)
    assert caught.value.field == field
