"""Whether a pipeline wants a build (`meta.on`), and when its schedule is due (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from wcmatch import glob

from bot.jobs import Job, JobKind
from runner.model import Triggers

__all__ = ["due", "unwanted"]


def unwanted(on: Triggers, job: Job) -> str | None:
    """Why the pipeline's `meta.on` refuses this build, or None to build it."""
    if job.kind is JobKind.PUSH:
        if not on.push:
            return "meta.on.push is false"
        branch = job.branch or ""
        if on.branches and not glob.globmatch(branch, list(on.branches), flags=glob.GLOBSTAR):
            return f"branch {branch} is not in meta.on.push.branches"
    if job.kind is JobKind.PULL_REQUEST and not on.pull_request:
        return "meta.on.pull_request is false"
    return None


def due(cron: str, last: float | None, now: float) -> bool:
    """Whether a schedule fired since `last` (or, never run, within the last minute)."""
    since = last if last is not None else now - 60
    following = croniter(cron, datetime.fromtimestamp(since, UTC)).get_next(datetime)
    return bool(following.timestamp() <= now)
