"""Which fork builds wait for a writer's Approve, and the build an Approve makes (pure; §11).

A pull request from a fork runs whatever its author pushed: with
`DOCKERCISE_FORK_APPROVAL=outside` (the default) the bot builds it only when
its author is a collaborator of the repository, or once a user with write
access presses Approve on the build's page; `always` makes every fork wait,
`never` none. Each new commit is a new build, so it waits again. An approved
build is still a fork's build: approval changes when it runs, never what it
may use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot.jobs import Job, JobKind
from bot.settings import ForkApproval
from bot.state.base import WAITING, approved_id, waited_id

__all__ = [
    "WAITING",
    "WAITING_TEXT",
    "approved",
    "approved_id",
    "approved_text",
    "needs_approval",
    "waiting_of",
]

WAITING_TEXT = "waiting for approval"


def needs_approval(mode: ForkApproval, job: Job, is_collaborator: Callable[[str], bool]) -> bool:
    """Whether `job` waits; `is_collaborator` (a GitHub round trip) is asked only when it matters.

    A pull request whose author is unknown waits (as an outsider would).
    """
    if job.kind is not JobKind.PULL_REQUEST or not job.fork or job.approved_by is not None:
        return False
    if mode is ForkApproval.NEVER:
        return False
    if mode is ForkApproval.ALWAYS or job.author is None:
        return True
    return not is_collaborator(job.author)


def waiting_of(job: Job) -> str | None:
    """The waiting build whose Approve made `job` (its check run is taken over, SPEC §11);
    None for any other build, a re-run of an approved one included (its id is its own)."""
    return None if job.approved_by is None else waited_id(job.id)


def approved_text(job: Job) -> str:
    """What the check run taken over from the waiting build says while the build goes on."""
    return f"approved by {job.approved_by}"


def approved(job: Job, login: str) -> Job:
    """The build that runs `job` once `login` approved it: the same commit, ref and trust."""
    return replace(job, id=approved_id(job.id), delivery=f"approval:{job.id}", approved_by=login)
