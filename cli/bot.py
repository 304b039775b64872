"""`dockercise serve`, `worker` and `status`: the GitHub App's processes (bot/serve.py),
mounted on the command line with their settings read from the environment."""

from __future__ import annotations

import dataclasses
import logging

import click

from bot import serve as processes
from bot.serve import QueueStatus
from bot.settings import load_settings
from cli.options import echo_json, json_option, stdout_is_terminal
from runner.durations import format_duration

__all__ = ["serve", "status", "status_lines", "worker"]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the bot on one machine: the web app and a queue consumer, in one process."""
    _logging()
    processes.serve(
        load_settings(),
        host,
        port,
        ready=lambda url: click.echo(f"dockercise bot on {url} (Ctrl-C stops it)"),
    )


@click.command()
def worker() -> None:
    """Run a queue consumer alone (more machines: set DOCKERCISE_REDIS_URL)."""
    _logging()
    processes.worker(load_settings())


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many builds to list.")
@json_option
def status(limit: int, as_json: bool) -> None:
    """Show the queue, the workers and what each is building.

    With --json, one object: "queue" (Redis, or the data directory),
    "waiting" (tasks queued), "running" (a list of {"worker", "build",
    "repo", "sha", "attempts", "heartbeat_age", "presumed_dead"}, the age in
    seconds), "idle" (workers of recent builds not building now) and
    "recent" (the newest builds, {"id", "outcome", "kind", "repo", "sha",
    "worker"}). Outside a terminal, commit ids are printed whole.
    """
    shown = processes.status(load_settings(), limit)
    if as_json:
        echo_json(dataclasses.asdict(shown))
        return
    for line in status_lines(shown, short_sha=stdout_is_terminal()):
        click.echo(line)


def status_lines(shown: QueueStatus, short_sha: bool) -> list[str]:
    """The text of `dockercise status`; commit ids cut to 12 characters only if `short_sha`."""

    def sha(full: str) -> str:
        return full[:12] if short_sha else full

    busy = {b.worker for b in shown.running}  # a worker may run several builds at once
    lines = [
        f"queue ({shown.queue}): {shown.waiting} task(s) waiting",
        f"workers: {len(busy)} building, {len(shown.idle)} more seen in recent builds",
    ]
    for b in shown.running:
        dead = ": presumed dead" if b.presumed_dead else ""
        lines.append(
            f"  {b.worker}  building {b.repo}@{sha(b.sha)} (build {b.build},"
            f" attempt {b.attempts}, heartbeat {format_duration(b.heartbeat_age)} ago{dead})"
        )
    lines.extend(f"  {name}  not building now" for name in shown.idle)
    lines.append("recent builds:")
    lines.extend(
        f"  {b.id}  {b.outcome:<8} {b.kind:<12} {b.repo}@{sha(b.sha)}  {b.worker or ''}"
        for b in shown.recent
    )
    return lines
