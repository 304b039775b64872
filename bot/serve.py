"""`dockercise serve`, `worker` and `status`: the bot's processes (the GitHub App issue).

Heavy imports (Flask, Huey, PyGithub) happen inside the commands, so the
rest of the CLI does not pay for them.
"""

from __future__ import annotations

import logging
import threading
import time

import click

__all__ = ["serve", "status", "worker"]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _consume(queue: object, workers: int) -> None:
    """Run the Huey consumer in this (main) thread until SIGINT or SIGTERM."""
    from bot.queue import BotQueue

    assert isinstance(queue, BotQueue)
    handled = queue.reap()  # builds a dead worker left behind, before taking new ones
    if handled:
        logging.getLogger("dockercise.bot").warning("settled %d dead build(s)", len(handled))
    # An idle consumer polls less and less often (Huey's default reaches 10 s): cap it, so
    # a push to an idle bot starts building within a fifth of a second of the delivery
    # (the announcer's poll, the API round trips, this poll).
    consumer = queue.huey.create_consumer(
        workers=workers, worker_type="thread", periodic=True, initial_delay=0.05, max_delay=0.1
    )
    queue.announcer.start()
    try:
        consumer.run()
    finally:
        queue.announcer.stop()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the bot on one machine: the web app and a queue consumer, in one process."""
    from werkzeug.serving import make_server

    from bot.queue import make_queue
    from bot.settings import load_settings
    from bot.web import create_bot_app

    _logging()
    settings = load_settings()
    queue = make_queue(settings)
    app = create_bot_app(settings=settings, queue=queue)
    server = make_server(host, port, app, threaded=True)
    web = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    web.start()
    click.echo(f"dockercise bot on http://{host}:{server.server_port} (Ctrl-C stops it)")
    try:
        _consume(queue, settings.workers)
    finally:
        server.shutdown()


@click.command()
def worker() -> None:
    """Run a queue consumer alone (more machines: set DOCKERCISE_REDIS_URL)."""
    from bot.queue import make_queue
    from bot.settings import load_settings

    _logging()
    settings = load_settings()
    _consume(make_queue(settings), settings.workers)


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many builds to list.")
def status(limit: int) -> None:
    """Show the queue, the workers and what each is building."""
    from bot.queue import make_queue
    from bot.settings import load_settings

    settings = load_settings()
    queue = make_queue(settings)
    where = "Redis" if settings.redis_url else str(settings.data_dir)
    click.echo(f"queue ({where}): {queue.huey.pending_count()} task(s) waiting")
    now = time.time()
    running = queue.state.running()
    recent = queue.state.recent(limit)
    busy = {b.worker for b in running}
    idle = sorted({b.worker for b in recent if b.worker and b.worker not in busy})
    click.echo(f"workers: {len(busy)} building, {len(idle)} more seen in recent builds")
    for b in running:
        age = now - (b.heartbeat or 0)
        dead = ": presumed dead" if age > settings.stale_after else ""
        click.echo(
            f"  {b.worker}  building {b.job.repo}@{b.job.sha[:12]} (build {b.job.id},"
            f" attempt {b.attempts}, heartbeat {age:.0f}s ago{dead})"
        )
    for name in idle:
        click.echo(f"  {name}  not building now")
    click.echo("recent builds:")
    for b in recent:
        outcome = b.state or b.status
        click.echo(
            f"  {b.job.id}  {outcome:<8} {b.job.kind:<12} {b.job.repo}@{b.job.sha[:12]}"
            f"  {b.worker or ''}"
        )
