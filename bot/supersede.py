"""Superseded builds (`meta.supersede`, SPEC §11) and `[skip ci]` (SPEC §12): pure decisions.

A newer commit of a pull request (with `all`, of a branch too) cancels the
queued and running builds of its older commits; they end as cancelled ones
do, "cancelled: superseded". The cancel is only asked for in the state: the
worker on each build stops it (`bot.builds`). A fork's build still waiting
for approval is ended at once (`bot.announce`), as nobody runs it.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.jobs import Job, JobKind
from bot.state.base import Build, waited_id
from runner.model import Supersede
from webhooks.events import skips_ci

__all__ = ["SUPERSEDED", "in_line", "skip_applies", "skip_ci", "superseded"]

SUPERSEDED = "cancelled: superseded"


def skip_ci(message: str | None) -> bool:
    """Whether a head commit's message asks for no build (`[skip ci]` or `[ci skip]`)."""
    return skips_ci(message)


def skip_applies(job: Job) -> bool:
    """Whether a `[skip ci]` in `job`'s head commit skips it (SPEC §12): a pull request's
    build, unless it is a re-run (from GitHub or the run page: a person asked for it).
    A push's message is read from its delivery, which is ignored then (`webhooks.events`)."""
    return job.kind is JobKind.PULL_REQUEST and "rerun_of" not in job.trigger


def _same_line(job: Job, other: Job, policy: Supersede) -> bool:
    """Whether `other` is a build of the same pull request (or, with `all`, branch)."""
    if other.repo != job.repo or other.sha == job.sha or other.kind is not job.kind:
        return False
    if job.kind is JobKind.PULL_REQUEST:
        return job.number is not None and other.number == job.number
    if job.kind is JobKind.PUSH and policy is Supersede.ALL:
        return job.branch is not None and other.branch == job.branch
    return False


def superseded(job: Job, policy: Supersede, unfinished: list[Build]) -> list[str]:
    """The ids of the builds that `job` supersedes: those of the same pull request (or
    branch) recorded before it, of another commit. `unfinished` oldest first, `job` in it."""
    if policy is Supersede.NONE:
        return []
    ids = [b.job.id for b in unfinished]
    older = unfinished[: ids.index(job.id)] if job.id in ids else []
    return [b.job.id for b in older if _same_line(job, b.job, policy)]


def in_line(builds: list[Build], waited: Mapping[str, float]) -> list[Build]:
    """`builds` (waiting, queued, running) in the order their commits came, for `superseded`.

    An approved build stands where its waiting build stood (`waited`: those
    builds' creation times): approving an older commit after a newer one was
    pushed does not make it the newer.
    """

    def place(build: Build) -> float:
        twin_of = waited_id(build.job.id) if build.job.approved_by is not None else None
        if twin_of is not None and twin_of in waited:
            return waited[twin_of]
        return build.created or 0.0

    return sorted(builds, key=place)
