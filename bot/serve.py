"""The bot's processes as plain functions: `serve` (the web app and a queue consumer in one
process), `worker` (a consumer alone) and `status` (what the queue and the workers do).

The command line (cli/bot.py) mounts them as `dockercise serve|worker|status`; nothing
here prints or parses arguments. Heavy imports (Flask, Huey, PyGithub) happen inside the
functions, so the rest of the command line does not pay for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:  # the state's module (sqlite3, Redis) is only imported by the processes
    from bot.state import Build

__all__ = ["QueueStatus", "RecentBuild", "RunningBuild", "overview", "serve", "status", "worker"]


def _recover(settings: Settings) -> None:
    """Remove what dead processes of this machine left (containers, images, temp folders)
    and finish their runs in their stores (SPEC §10), before taking any build."""
    from runner.containers import Containers
    from runner.errors import DockerciseError
    from runner.recovery import summary, sweep_here

    logger = logging.getLogger("dockercise.bot")
    containers = None
    try:
        containers = Containers()
    except DockerciseError as e:
        logger.warning("no recovery of dead runs' containers: %s", e)
    try:
        swept = sweep_here(containers, settings.environ)
    finally:
        if containers is not None:
            containers.close()
    for line in summary(swept):
        logger.info("%s", line)
    for problem in swept.problems:
        logger.warning("%s", problem)


def _consume(queue: object, settings: Settings) -> None:
    """Run the Huey consumer in this (main) thread until SIGINT or SIGTERM."""
    from bot.queue import BotQueue

    assert isinstance(queue, BotQueue)
    _recover(settings)
    handled = queue.reap()  # builds a dead worker left behind, before taking new ones
    if handled:
        logging.getLogger("dockercise.bot").warning("settled %d dead build(s)", len(handled))
    # An idle consumer polls less and less often (Huey's default reaches 10 s): cap it, so
    # a push to an idle bot starts building within a fifth of a second of the delivery
    # (the announcer's poll, the API round trips, this poll).
    consumer = queue.huey.create_consumer(
        workers=settings.workers,
        worker_type="thread",
        periodic=True,
        initial_delay=0.05,
        max_delay=0.1,
    )
    queue.announcer.start()
    try:
        consumer.run()
    finally:
        queue.announcer.stop()


def serve(settings: Settings, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Run the web app (in a thread) and a queue consumer (here) until SIGINT or SIGTERM.

    `ready` is called with the app's URL once it listens (port 0 picks a free one).
    """
    from bot.egress import start_metadata_check
    from bot.queue import make_queue
    from bot.web import create_bot_app
    from webhooks.server import Server

    start_metadata_check(settings)
    queue = make_queue(settings)
    app = create_bot_app(settings=settings, queue=queue)
    server = Server(app, host, port)  # waitress: idle and slow clients hold no thread
    server.start()
    ready(server.url)
    try:
        _consume(queue, settings)
    finally:
        server.close()


def worker(settings: Settings) -> None:
    """Run a queue consumer alone until SIGINT or SIGTERM."""
    from bot.egress import start_metadata_check
    from bot.queue import make_queue

    start_metadata_check(settings)
    _consume(make_queue(settings), settings)


@dataclass(frozen=True)
class RunningBuild:
    """A worker and the build it is on."""

    worker: str
    build: str
    repo: str
    sha: str
    attempts: int
    heartbeat_age: float
    """Seconds since the worker last said it is alive."""
    presumed_dead: bool
    """Silent for longer than DOCKERCISE_STALE_AFTER: the reaper will take the build back."""


@dataclass(frozen=True)
class RecentBuild:
    id: str
    outcome: str
    """The final state (success, failure, error) once done, else where it is (queued...)."""
    kind: str
    repo: str
    sha: str
    worker: str | None


@dataclass(frozen=True)
class QueueStatus:
    """What `dockercise status` shows."""

    queue: str
    """Where the queue lives: `Redis`, or the data directory."""
    waiting: int
    running: tuple[RunningBuild, ...]
    idle: tuple[str, ...]
    """Workers seen in recent builds that are not building now."""
    recent: tuple[RecentBuild, ...]


def overview(
    queue: str,
    waiting: int,
    running: Sequence[Build],
    recent: Sequence[Build],
    now: float,
    stale_after: float,
) -> QueueStatus:
    """The state's builds -> what the status shows (pure)."""
    busy = {b.worker for b in running}
    idle = sorted({b.worker for b in recent if b.worker and b.worker not in busy})
    rows = []
    for b in running:
        age = now - (b.heartbeat or 0)
        rows.append(
            RunningBuild(
                worker=str(b.worker),
                build=b.job.id,
                repo=b.job.repo,
                sha=b.job.sha,
                attempts=b.attempts,
                heartbeat_age=age,
                presumed_dead=age > stale_after,
            )
        )
    done = tuple(
        RecentBuild(
            id=b.job.id,
            outcome=str(b.state or b.status),
            kind=str(b.job.kind),
            repo=b.job.repo,
            sha=b.job.sha,
            worker=b.worker,
        )
        for b in recent
    )
    return QueueStatus(queue, waiting, tuple(rows), tuple(idle), done)


def status(settings: Settings, limit: int) -> QueueStatus:
    """The queue, the workers and what each is building, and the `limit` newest builds."""
    from bot.queue import make_queue

    queue = make_queue(settings)
    where = "Redis" if settings.redis_url else str(settings.data_dir)
    try:
        waiting = queue.huey.pending_count()
        running, recent = queue.state.running(), queue.state.recent(limit)
    finally:
        queue.state.close()
    return overview(where, waiting, running, recent, time.time(), settings.stale_after)
