"""Whether a pipeline wants a build (`meta.on`), and when its schedule is due (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from wcmatch import glob

from bot.state import Job
from runner.model import Triggers

__all__ = ["due", "unwanted"]


def unwanted(on: Triggers, job: Job) -> str | None:
    """Why the pipeline's `meta.on` refuses this build, or None to build it."""
    if job.kind == "push":
        if not on.push:
            return "meta.on.push is false"
        branch = job.branch or ""
        if on.branches and not glob.globmatch(branch, list(on.branches), flags=glob.GLOBSTAR):
            return f"branch {branch} is not in meta.on.push.branches"
    if job.kind == "pull_request" and not on.pull_request:
        return "meta.on.pull_request is false"
    return None


def due(cron: str, last: float | None, now: float) -> bool:
    """Whether a schedule fired since `last` (or, never run, within the last minute)."""
    since = last if last is not None else now - 60
    following = croniter(cron, datetime.fromtimestamp(since, UTC)).get_next(datetime)
    return bool(following.timestamp() <= now)
