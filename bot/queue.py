"""The build queue (Huey): SQLite in the data directory on one machine, Redis when scaled out.

Tasks are registered on the Huey instance that `make_queue` builds from the
settings (nothing at import time), so the web process, which enqueues, and
the workers, which consume, share the same task names and storage.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from huey import Huey, RedisHuey, SqliteHuey, crontab

from bot.builds import Builder
from bot.github_api import GitHubApp
from bot.reaper import Reaper
from bot.settings import Settings
from bot.state import Job, State

__all__ = ["BotQueue", "make_queue"]

log = logging.getLogger("dockercise.bot")


@dataclass
class BotQueue:
    huey: Huey
    state: State
    enqueue: Callable[[Job], None]
    reap: Callable[[], list[str]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_queue(settings: Settings) -> BotQueue:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    huey: Huey
    if settings.redis_url:
        huey = RedisHuey("dockercise", url=settings.redis_url, results=False)
    else:
        huey = SqliteHuey("dockercise", filename=str(settings.data_dir / "queue.db"), results=False)
    state = State(settings.data_dir / "state.db")
    github = GitHubApp(settings.app_id, settings.private_key, settings.api_url)

    @huey.task(name="build")
    def build(job_json: str) -> None:
        Builder(settings, github, state, worker_name()).build(Job.from_json(job_json))

    def enqueue(job: Job) -> None:
        build(job.to_json())

    reaper = Reaper(settings, github, state, enqueue)

    @huey.periodic_task(crontab(minute="*"), name="reap")
    def reap() -> None:
        reaper.reap()

    return BotQueue(huey, state, enqueue, reaper.reap)
