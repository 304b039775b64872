"""`meta.on.schedule`: build the default branch on a cron, or only when a watch stage's output
changes (SPEC §8). `tick(now)` is called every minute, and by tests with any `now`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.jobs import Job, JobKind, new_build_id
from bot.state import StateStore
from bot.triggers import due

__all__ = ["Scheduler"]

log = logging.getLogger("dockercise.bot")


class Scheduler:
    def __init__(self, state: StateStore, enqueue: Callable[[Job], None]) -> None:
        self.state = state
        self.enqueue = enqueue

    def tick(self, now: float) -> list[Job]:
        """Queue what is due now: a watch check, or a whole build; return the jobs queued.

        The time of each firing is stored before queueing, so a restart does not fire again.
        """
        queued = []
        for known in self.state.known():
            if known.cron is None or not due(known.cron, known.scheduled, now):
                continue
            self.state.scheduled(known.repo, now)
            job = Job(
                id=new_build_id(),
                kind=JobKind.WATCH if known.watch else JobKind.SCHEDULE,
                repo=known.repo,
                clone_url=known.clone_url,
                ref="HEAD",
                sha="HEAD",
                installation_id=known.installation_id,
                fork=False,  # the repository's own default branch
                targets=(known.watch,) if known.watch else (),
                trigger={"cron": known.cron},
            )
            log.info("schedule of %s fired: %s", known.repo, job.kind)
            self.enqueue(job)
            queued.append(job)
        return queued
