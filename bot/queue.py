"""The build queue (Huey): SQLite in the data directory on one machine, Redis when scaled out.

Tasks are registered on the Huey instance that `make_queue` builds from the
settings (nothing at import time), so the web process, which enqueues, and
the workers, which consume, share the same task names and storage.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.storage import SqliteStorage

from bot.announce import Announcer, Reporting
from bot.builds import Builder
from bot.checkout import Mirrors
from bot.github_api import GitHubApp
from bot.jobs import Job
from bot.outgoing import downstream_jobs, downstream_targets, send_event
from bot.policy import room_for_build
from bot.reaper import Reaper
from bot.schedules import Scheduler
from bot.sending import DeliveryRefused
from bot.settings import Settings
from bot.state import StateStore, open_state
from pages.links import build_url

__all__ = ["BotQueue", "make_queue"]

log = logging.getLogger("dockercise.bot")


@dataclass
class BotQueue:
    huey: Huey
    state: StateStore
    reap: Callable[[], list[str]]
    upstream_green: Callable[[dict[str, str]], None]
    announcer: Announcer
    """Started by the consumers: announces and queues what the web process recorded."""


class _SqliteStorage(SqliteStorage):  # type: ignore[misc]
    """WAL with synchronous=NORMAL: a queued build survives any crash of the bot (only a
    power cut can lose the last ones), and a webhook does not wait for an fsync."""

    def _create_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_connection()
        connection.execute("pragma synchronous=normal")
        return connection


class _SqliteHuey(SqliteHuey):  # type: ignore[misc]
    storage_class = _SqliteStorage


REQUEUE_AFTER = 10
"""Seconds a build waits on the queue when a worker has too little disk to take it."""
WARN_EVERY = 60.0
"""Seconds between two warnings that a worker is short of disk."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _DiskWatermark:
    """Whether this worker has the room to take a build; warns at most once a minute."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._warned = float("-inf")

    def short(self) -> bool:
        try:
            free = shutil.disk_usage(self.settings.data_dir).free
        except OSError:  # cannot tell: the build will say what is wrong
            return False
        why = room_for_build(free, self.settings.limits)
        if why is None:
            return False
        with self._lock:
            if time.monotonic() - self._warned >= WARN_EVERY:
                self._warned = time.monotonic()
                log.warning("%s; builds wait on the queue", why)
        return True


def make_queue(settings: Settings) -> BotQueue:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    huey: Huey
    if settings.redis_url:
        huey = RedisHuey("dockercise", url=settings.redis_url, results=False)
    else:
        huey = _SqliteHuey(
            "dockercise", filename=str(settings.data_dir / "queue.db"), results=False
        )
    state = open_state(settings)
    github = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    own_url = f"{settings.public_url}/webhooks/dockercise"

    @huey.task(name="send-event", retries=6, retry_delay=2, retry_backoff=2)
    def send(url: str, event: dict[str, str], downstream: bool = True) -> None:
        """One event to one URL; retried (DeliveryFailed) unless it may never go (refused)."""
        secret = settings.downstream_secret if downstream else settings.events_secret
        if secret is None:
            return
        allowance = settings.downstream_allow if downstream else None
        try:
            send_event(url, event, secret, allowance)
        except DeliveryRefused as e:
            log.warning("event of run %s not sent: %s", event.get("run_id"), e)

    def notify(event: dict[str, str], downstream: tuple[str, ...]) -> None:
        send(own_url, event, False)
        for url in downstream_targets(own_url, downstream, settings.downstream_secret is not None):
            send(url, event, True)

    watermark = _DiskWatermark(settings)

    @huey.task(name="build")
    def build(job_json: str) -> None:
        if watermark.short():  # not taken: back on the queue, for this worker or another
            build.schedule((job_json,), delay=REQUEUE_AFTER)
            return
        Builder(settings, github, state, worker_name(), enqueue, notify).build(
            Job.from_json(job_json)
        )

    def enqueue(job: Job) -> None:
        recorded = state.record(job)
        if not isinstance(recorded, str):
            build(recorded.to_json())
            state.handed_over(recorded.id)

    @huey.task(name="upstream-green")
    def upstream_green(event: dict[str, str]) -> None:
        for job in downstream_jobs(state, github, event):
            enqueue(job)

    def requeue(job: Job) -> None:
        """Put a recorded build on the queue (announcers, the reaper): it runs once however
        often it is queued, since a worker claims it first."""
        build(job.to_json())

    reaper = Reaper(settings, github, state, requeue)
    scheduler = Scheduler(state, enqueue)

    @huey.periodic_task(crontab(minute="*"), name="minutely")
    def minutely() -> None:
        if state.lease("minutely", 50):  # every consumer enqueues this; one of them does it
            reaper.reap()
            scheduler.tick(time.time())
            forgotten = state.prune(settings.keep_days * 86400)
            if forgotten:
                log.info(
                    "forgot %d build(s) finished over %d days ago", forgotten, settings.keep_days
                )

    # Its own client: writes through one client are spaced (`bot.github_api`), and a build's
    # final status must not hold up the next build's `pending`.
    announcing = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    reporting = Reporting(settings.report, settings.public_url)
    announcer = Announcer(
        announcing,
        state,
        requeue,
        mirrors,
        settings.fork_approval,
        lambda job: build_url(settings.public_url, job.repo, job.id),
        reporting,
    )
    return BotQueue(huey, state, reaper.reap, lambda e: upstream_green(e), announcer)
