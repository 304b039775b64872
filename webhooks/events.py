"""Webhook payloads -> typed, frozen events (pure: no I/O, no Flask).

The bot acts only on these values, never on raw dicts, so what it relies on
is checked once, here.  `parse_github` answers `Ignored(reason)` for what
SPEC §8 does not build, and raises `PayloadInvalid` naming the dotted path of
a missing or mistyped field.

Decisions where SPEC §8 is silent:

- Tag pushes are ignored: the default trigger is "push to any branch"
  (SPEC §6), and a tag usually points at a commit its branch push already
  built.  Other non-branch refs (`refs/notes/...`) are ignored likewise.
- A deletion (`deleted: true` or `after` all zeros) is ignored first, whatever
  the ref, since there is nothing to check out.
- A pull request whose head repository is gone (`head.repo: null`, a deleted
  fork) counts as a fork: it gets no secrets (SPEC §5).
- Unknown fields are ignored everywhere, so GitHub may add to its payloads.
- Refs and branch names must be valid git ref names (`git check-ref-format`),
  at most 255 bytes (GitHub's own limit): they reach git commands and logs.
  Pull request numbers run from 1 to 2^31 - 1, ids from 1 to 2^53 - 1.
- A `remote-build-complete` is finished between 1970 and 9999 (in UTC), and
  its `url` is an http(s) URL.
- `check_run.rerequested` and `check_suite.rerequested` ask for a re-run
  (SPEC §12): only the commit, its repository and the check run's
  `external_id` are read (an `external_id` that is not a build id counts as
  none); `pull_requests` is never read, as it is empty for forks.
  `check_suite.requested` (and `completed`) and every other check action are
  ignored: the push already builds the commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from webhooks._fields import Fields
from webhooks.errors import PayloadInvalid

__all__ = [
    "BUILT_PR_ACTIONS",
    "BuildStatus",
    "Event",
    "Ignored",
    "InstallationEvent",
    "PingEvent",
    "PullRequestEvent",
    "PushEvent",
    "RemoteBuildComplete",
    "RepositoryEvent",
    "RerunRequested",
    "parse_dockercise",
    "parse_github",
    "skips_ci",
]

BUILT_PR_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
"""The pull_request actions that build the head commit (SPEC §8)."""

GITHUB_COMMITS_LIMIT = 20
"""A push payload lists at most this many commits; beyond, its file lists are partial."""

BuildStatus = Literal["success", "failure", "error", "cancelled"]
_STATUSES: dict[str, BuildStatus] = {status: status for status in get_args(BuildStatus)}

_ZERO_SHA = re.compile(r"0+")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 and SHA-256 repositories
# owner/repo, as GitHub allows them; never `.`/`..`, so it is safe as a store path.
_FULL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*/(?!\.\.?$)[A-Za-z0-9_.-]+")
_SKIP_CI = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)  # SPEC §12
_BUILD_ID = re.compile(r"[0-9a-f]{16}(?:-approved)?")  # new_build_id, bot.approval
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")  # never ext:: or file: transports
_BRANCH_PREFIX = "refs/heads/"
MAX_PR_NUMBER = 2**31 - 1
"""GitHub's pull request numbers are 32-bit (its GraphQL `Int`)."""
MAX_REF_BYTES = 255
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Ignored:
    """A delivery that is valid but builds nothing; `reason` says why (answered with 202)."""

    reason: str


@dataclass(frozen=True)
class PushEvent:
    """A push to a branch: build `after` on `branch`.

    `changed_files` is the union of the files added, modified and removed by
    the listed commits (sorted), for `paths:` stages.  It is complete only when
    `changed_files_complete`: not for a new branch, a forced push, or a push
    of more commits than GitHub lists; the bot then diffs `before..after`
    itself (or runs every `paths:` stage).
    """

    delivery: str
    repo_full_name: str
    clone_url: str
    ref: str
    branch: str
    before: str
    after: str
    head_commit_message: str | None
    changed_files: tuple[str, ...]
    changed_files_complete: bool
    installation_id: int | None
    default_branch: str
    pusher: str
    sender: str | None
    private: bool = True
    """`repository.private` (absent: private, SPEC §11's "unknown counts as private")."""


@dataclass(frozen=True)
class PullRequestEvent:
    """A pull request opened, reopened or pushed to: build `head_sha`.

    `repo_full_name` and `clone_url` are the base repository's, where GitHub
    keeps `refs/pull/<number>/head`; `is_fork` builds get no secrets (SPEC §5).
    """

    delivery: str
    action: str
    number: int
    repo_full_name: str
    clone_url: str
    head_sha: str
    head_ref: str
    head_repo_full_name: str | None
    is_fork: bool
    base_ref: str
    base_sha: str
    installation_id: int | None
    sender: str | None
    default_branch: str | None = None
    """The repository's default branch, whose caches a pull request reads last (SPEC §13)."""
    author: str | None = None
    """`pull_request.user.login`: whose collaboration decides a fork's approval (§11)."""
    private: bool = True


@dataclass(frozen=True)
class InstallationEvent:
    """The app was installed, removed, suspended...: logged, it builds nothing."""

    delivery: str
    action: str
    account: str
    installation_id: int
    repositories: tuple[str, ...]


@dataclass(frozen=True)
class PingEvent:
    """GitHub checks a new hook; answered with 200 and its `zen`, never queued."""

    delivery: str
    zen: str
    hook_id: int
    repo_full_name: str | None


@dataclass(frozen=True)
class RepositoryEvent:
    """A `repository` delivery (privatized, publicized, renamed...): the repository's privacy."""

    delivery: str
    action: str
    repo_full_name: str
    private: bool
    installation_id: int | None


@dataclass(frozen=True)
class RerunRequested:
    """Someone pressed Re-run on GitHub (`check_run`/`check_suite` `rerequested`, SPEC §12).

    Carries no trust: the build it repeats is found by `external_id` (the build
    id the bot gave the check run) or by the commit, never judged from here.
    """

    delivery: str
    event: str
    repo_full_name: str
    clone_url: str
    head_sha: str
    head_branch: str | None
    external_id: str | None
    installation_id: int | None
    sender: str | None


Event = (
    PushEvent | PullRequestEvent | InstallationEvent | PingEvent | RepositoryEvent | RerunRequested
)


@dataclass(frozen=True)
class RemoteBuildComplete:
    """A pipeline's build ended (SPEC §8); deduplicated by `run_id`.

    `pipeline` is `owner/repo`.  `to_json` gives the body the bot signs and
    sends, which `parse_dockercise` reads back to an equal value.
    """

    pipeline: str
    ref: str
    sha: str
    status: BuildStatus
    run_id: str
    url: str
    finished: datetime

    def to_json(self) -> dict[str, str]:
        finished = self.finished.astimezone(UTC).isoformat(timespec="milliseconds")
        return {
            "pipeline": self.pipeline,
            "ref": self.ref,
            "sha": self.sha,
            "status": self.status,
            "run_id": self.run_id,
            "url": self.url,
            "finished": finished.replace("+00:00", "Z"),
        }


def _full_name(fields: Fields) -> str:
    return fields.string("full_name", pattern=_FULL_NAME, what="'owner/repo'")


def _clone_url(fields: Fields) -> str:
    return fields.string("clone_url", pattern=_URL, what="an http(s) URL")


def _sha(fields: Fields, key: str) -> str:
    return fields.string(key, pattern=_SHA, what="a commit SHA (40 or 64 lowercase hex digits)")


def skips_ci(message: str | None) -> bool:
    """Whether a head commit's message asks for no build: `[skip ci]` or `[ci skip]`."""
    return message is not None and _SKIP_CI.search(message) is not None


def _ref_problem(name: str) -> str | None:
    """Why `name` is not a ref or branch name git accepts (`git check-ref-format`), or None."""
    if not name:
        return "expected a ref name, got ''"
    if len(name.encode()) > MAX_REF_BYTES:
        return f"longer than {MAX_REF_BYTES} bytes"
    if (
        _REF_FORBIDDEN.search(name)
        or name.startswith(("-", "/"))
        or name.endswith(("/", ".", ".lock"))
        or name == "@"
        or any(part.startswith(".") for part in name.split("/"))
    ):
        return "expected a valid git ref name"
    return None


def _ref(fields: Fields, key: str) -> str:
    value = fields.string(key)
    problem = _ref_problem(value)
    if problem is not None:
        raise PayloadInvalid(fields.where(key), problem)
    return value


def _installation_id(payload: Fields) -> int | None:
    installation = payload.optional_object("installation")
    return None if installation is None else installation.integer("id")


def _sender(payload: Fields) -> str | None:
    sender = payload.optional_object("sender")
    return None if sender is None else sender.optional_string("login")


def _push(delivery: str, payload: Fields) -> PushEvent | Ignored:
    ref = _ref(payload, "ref")
    before = _sha(payload, "before")
    after = _sha(payload, "after")
    if payload.boolean("deleted", False) or _ZERO_SHA.fullmatch(after):
        return Ignored(f"push deletes {ref}: nothing to build")
    if not ref.startswith(_BRANCH_PREFIX):
        kind = "tag" if ref.startswith("refs/tags/") else "non-branch ref"
        return Ignored(f"push of {kind} {ref}: only branch pushes are built")
    repository = payload.object("repository")
    commits = payload.objects("commits", optional=True)
    changed: set[str] = set()
    for commit in commits:
        for key in ("added", "modified", "removed"):
            changed.update(commit.strings(key, optional=True))
    head_commit = payload.optional_object("head_commit")
    message = None if head_commit is None else head_commit.optional_string("message", line=False)
    if skips_ci(message):
        return Ignored("the head commit's message says [skip ci]: nothing to build")
    return PushEvent(
        delivery=delivery,
        repo_full_name=_full_name(repository),
        clone_url=_clone_url(repository),
        ref=ref,
        branch=ref.removeprefix(_BRANCH_PREFIX),
        before=before,
        after=after,
        head_commit_message=message,
        changed_files=tuple(sorted(changed)),
        changed_files_complete=not (
            _ZERO_SHA.fullmatch(before)
            or payload.boolean("forced", False)
            or len(commits) >= GITHUB_COMMITS_LIMIT
        ),
        installation_id=_installation_id(payload),
        default_branch=_ref(repository, "default_branch"),
        pusher=payload.object("pusher").string("name"),
        sender=_sender(payload),
        private=repository.boolean("private", True),
    )


def _pull_request(delivery: str, payload: Fields) -> PullRequestEvent | Ignored:
    action = payload.string("action")
    if action not in BUILT_PR_ACTIONS:
        return Ignored(f"pull_request action '{action}' builds nothing")
    repository = payload.object("repository")
    repo_full_name = _full_name(repository)
    pull_request = payload.object("pull_request")
    head = pull_request.object("head")
    base = pull_request.object("base")
    head_repo = head.optional_object("repo")
    user = pull_request.optional_object("user")
    head_repo_full_name = None if head_repo is None else _full_name(head_repo)
    return PullRequestEvent(
        delivery=delivery,
        action=action,
        number=payload.integer("number", maximum=MAX_PR_NUMBER),
        repo_full_name=repo_full_name,
        clone_url=_clone_url(repository),
        head_sha=_sha(head, "sha"),
        head_ref=_ref(head, "ref"),
        head_repo_full_name=head_repo_full_name,
        # GitHub names are case-insensitive; a vanished head repo is treated as a fork.
        is_fork=head_repo_full_name is None
        or head_repo_full_name.casefold() != repo_full_name.casefold(),
        base_ref=_ref(base, "ref"),
        base_sha=_sha(base, "sha"),
        installation_id=_installation_id(payload),
        sender=_sender(payload),
        default_branch=_optional_ref(repository, "default_branch"),
        author=None if user is None else user.optional_string("login"),
        private=repository.boolean("private", True),
    )


def _repository(delivery: str, payload: Fields) -> RepositoryEvent:
    repository = payload.object("repository")
    return RepositoryEvent(
        delivery=delivery,
        action=payload.string("action"),
        repo_full_name=_full_name(repository),
        private=repository.boolean("private", True),
        installation_id=_installation_id(payload),
    )


def _optional_ref(fields: Fields, key: str) -> str | None:
    return None if fields.optional_string(key) is None else _ref(fields, key)


def _installation(delivery: str, payload: Fields) -> InstallationEvent:
    installation = payload.object("installation")
    return InstallationEvent(
        delivery=delivery,
        action=payload.string("action"),
        account=installation.object("account").string("login"),
        installation_id=installation.integer("id"),
        repositories=tuple(
            _full_name(repo) for repo in payload.objects("repositories", optional=True)
        ),
    )


def _ping(delivery: str, payload: Fields) -> PingEvent:
    repository = payload.optional_object("repository")
    return PingEvent(
        delivery=delivery,
        zen=payload.string("zen", line=False),
        hook_id=payload.integer("hook_id"),
        repo_full_name=None if repository is None else _full_name(repository),
    )


def _rerun(event: str, delivery: str, payload: Fields) -> RerunRequested | Ignored:
    action = payload.string("action")
    if action != "rerequested":
        return Ignored(f"{event} action '{action}' builds nothing (the push builds the commit)")
    repository = payload.object("repository")
    subject = payload.object(event)
    external_id = None
    if event == "check_run":
        found = subject.optional_string("external_id") or ""
        external_id = found if _BUILD_ID.fullmatch(found) else None
        suite = subject.optional_object("check_suite")
        head_branch_from = suite if suite is not None else subject
    else:
        head_branch_from = subject
    branch = head_branch_from.optional_string("head_branch")
    if branch is not None:
        problem = _ref_problem(branch)
        if problem is not None:
            raise PayloadInvalid(head_branch_from.where("head_branch"), problem)
    return RerunRequested(
        delivery=delivery,
        event=event,
        repo_full_name=_full_name(repository),
        clone_url=_clone_url(repository),
        head_sha=_sha(subject, "head_sha"),
        head_branch=branch,
        external_id=external_id,
        installation_id=_installation_id(payload),
        sender=_sender(payload),
    )


def parse_github(event: str, delivery: str, payload: Any) -> Event | Ignored:
    """Turn one GitHub delivery (`X-GitHub-Event`, `X-GitHub-Delivery`, decoded body) into a value.

    Raises PayloadInvalid for a payload of a handled event that lacks what the
    bot needs; an event the bot does not handle is `Ignored`, whatever its body.
    """
    if event == "push":
        return _push(delivery, Fields(payload))
    if event == "pull_request":
        return _pull_request(delivery, Fields(payload))
    if event == "installation":
        return _installation(delivery, Fields(payload))
    if event == "ping":
        return _ping(delivery, Fields(payload))
    if event == "repository":
        return _repository(delivery, Fields(payload))
    if event in ("check_run", "check_suite"):
        return _rerun(event, delivery, Fields(payload))
    return Ignored(f"event '{event}' is not handled")


def _finished(payload: Fields) -> datetime:
    text = payload.string("finished")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PayloadInvalid("finished", "expected an ISO-8601 time with a UTC offset")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed out of range by its offset
        moment = None
    if moment is None or moment < _EARLIEST:
        raise PayloadInvalid("finished", "expected a time from 1970 to 9999 (UTC)")
    return moment


def parse_dockercise(payload: Any) -> RemoteBuildComplete:
    """A decoded `remote-build-complete` body (SPEC §8) as a value; PayloadInvalid if malformed."""
    fields = Fields(payload)
    status = _STATUSES.get(fields.string("status"))
    if status is None:
        raise PayloadInvalid("status", f"expected one of {', '.join(_STATUSES)}")
    ref = _ref(fields, "ref")
    return RemoteBuildComplete(
        pipeline=fields.string("pipeline", pattern=_FULL_NAME, what="'owner/repo'"),
        ref=ref,
        sha=_sha(fields, "sha"),
        status=status,
        run_id=fields.string("run_id", pattern=_RUN_ID, what="a run id"),
        url=fields.string("url", pattern=_URL, what="an http(s) URL"),
        finished=_finished(fields),
    )
