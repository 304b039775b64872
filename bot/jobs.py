"""The bot's unit of work: a `Job` (one build to do), its kinds, the job an event asks for.

Pure: the state stores and the queue keep jobs as `Job.to_json()` text, so
nothing here imports a store, and a module that only needs a job's fields
does not load sqlite3 or redis through it.

A job carries the trust it was given when it was recorded (`fork`, SPEC
§10): decided once, from the delivery, and read back from the stored build
by every later step; nothing re-derives it from a payload. Every place that
makes a job says it (`fork` has no default), and a stored job that does not
say it is a fork's: an origin nobody recorded is not trusted.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from webhooks.events import Event, PullRequestEvent, PushEvent, RerunRequested

__all__ = ["Job", "JobKind", "job_for", "new_build_id", "rerun_job"]


class JobKind(StrEnum):
    """How a build was triggered; the value is what the stores, the queue and `run.json` keep."""

    PUSH = "push"
    PULL_REQUEST = "pull_request"
    UPSTREAM = "upstream"
    """A pipeline that `meta.on.upstream` names built green."""
    SCHEDULE = "schedule"
    """`meta.on.schedule` fired (or its watch stage's output changed): the whole pipeline."""
    WATCH = "watch"
    """`meta.on.schedule` with `watch` fired: only the watch stage, to compare its output."""


@dataclass(frozen=True)
class Job:
    """One build to do: what to check out and how it was triggered."""

    id: str
    kind: JobKind
    repo: str
    clone_url: str
    ref: str
    sha: str
    branch: str | None = None
    installation_id: int | None = None
    delivery: str | None = None
    fork: bool = field(kw_only=True)
    """Built as an untrusted commit (a fork's pull request, or an origin nobody knows): no
    secrets, no host paths, no trusted settings, no events out (SPEC §10). No default, so
    that no new way of making a job forgets to decide."""
    number: int | None = None
    changed: tuple[str, ...] | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    """Run only these stages (and what they need): a schedule's `watch` check."""
    author: str | None = None
    """A pull request's author (`pull_request.user.login`): a fork's approval asks about them."""
    approved_by: str | None = None
    """The writer who pressed Approve on this fork build (§11); it stays a fork's build."""

    def to_json(self) -> str:
        """The text the stores and the queue keep; `kind` as its plain string value."""
        # Shallow on purpose: dataclasses.asdict deep-copies, and this runs in every webhook.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["kind"] = str(self.kind)  # a StrEnum's str() is its value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        data["kind"] = JobKind(data["kind"])
        if data.get("changed") is not None:
            data["changed"] = tuple(data["changed"])
        data["targets"] = tuple(data.get("targets") or ())
        fork = data.get("fork")
        data["fork"] = fork is not False  # missing (or not a boolean): unknown origin, a fork's
        return cls(**data)

    def rerun(self) -> Job:
        """A new build of the same commit, exactly as trusted as this one (SPEC §10: a re-run
        keeps the trust of the build it repeats); not tied to the delivery."""
        return replace(self, id=new_build_id(), delivery=None)


def new_build_id() -> str:
    return secrets.token_hex(8)


def job_for(event: Event) -> Job | None:
    """The build a GitHub event asks for, or None (installation events build nothing)."""
    if isinstance(event, PushEvent):
        return Job(
            id=new_build_id(),
            kind=JobKind.PUSH,
            repo=event.repo_full_name,
            clone_url=event.clone_url,
            ref=event.ref,
            sha=event.after,
            branch=event.branch,
            installation_id=event.installation_id,
            delivery=event.delivery,
            fork=False,  # a push is to the repository itself: its writers pushed it
            changed=event.changed_files if event.changed_files_complete else None,
            trigger={
                "ref": event.ref,
                "sha": event.after,
                "sender": event.sender,
                "default_branch": event.default_branch,
            },
        )
    if isinstance(event, PullRequestEvent):
        return Job(
            id=new_build_id(),
            kind=JobKind.PULL_REQUEST,
            repo=event.repo_full_name,
            clone_url=event.clone_url,
            ref=f"refs/pull/{event.number}/head",
            sha=event.head_sha,
            branch=event.head_ref,
            installation_id=event.installation_id,
            delivery=event.delivery,
            fork=event.is_fork,
            number=event.number,
            author=event.author,
            trigger={
                "number": event.number,
                "sha": event.head_sha,
                "sender": event.sender,
                "base": event.base_ref,
                "default_branch": event.default_branch,
            },
        )
    return None


def rerun_job(event: RerunRequested, repeated: Job | None) -> Job:
    """The build a Re-run on GitHub asks for (SPEC §12): the build it repeats, again.

    `repeated` is the stored build the check run names (or the newest of that
    commit); its trust, ref and trigger are kept. Without one, nothing is known
    about where the commit came from: it is built as a fork's, at its branch.
    """
    if repeated is not None:
        trigger = {**repeated.trigger, "rerun_of": repeated.id, "sender": event.sender}
        return replace(
            repeated,
            id=new_build_id(),
            delivery=event.delivery,
            installation_id=event.installation_id or repeated.installation_id,
            trigger=trigger,
            targets=(),
        )
    branch = event.head_branch
    return Job(
        id=new_build_id(),
        kind=JobKind.PUSH,
        repo=event.repo_full_name,
        clone_url=event.clone_url,
        ref=f"refs/heads/{branch}" if branch else event.head_sha,
        sha=event.head_sha,
        branch=branch,
        installation_id=event.installation_id,
        delivery=event.delivery,
        fork=True,  # an origin nobody recorded is not trusted (SPEC §10, §12)
        trigger={"sha": event.head_sha, "sender": event.sender, "rerun_of": None},
    )
