"""`dockercise results`, `logs` and `serve-results`: reading the results store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.options import (
    echo_json,
    json_option,
    project_option,
    results_option,
    stdout_is_terminal,
)
from cli.runs import STAGE_HEADINGS, RunView, StageView, columns, run_line
from runner.errors import UsageError
from runner.store import ResultStore, open_store

__all__ = ["logs", "results", "serve_results"]


@click.command()
@click.argument("run_id", required=False)
@project_option
@results_option
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs to list.")
@json_option
def results(
    run_id: str | None, directory: Path, results: str | None, limit: int, as_json: bool
) -> None:
    """List the newest runs, or one run's stages with status and duration.

    With --json: without RUN_ID a JSON list of the runs, newest first, each
    {"id", "pipeline", "status", "trigger", "started", "finished", "duration"};
    with RUN_ID that run's object with "stages", a list of {"name", "status",
    "exit_code", "started", "finished", "duration", "reason"}. Durations are
    seconds, times ISO 8601 UTC, and a value not known (yet) is null. Outside
    a terminal the text is never cut to fit a width.
    """
    store = open_store(results, directory.resolve(), os.environ)
    if run_id is None:
        runs = [_run(store, rid) for rid in store.run_ids()[:limit]]
        if as_json:
            echo_json([r.to_json(with_stages=False) for r in runs])
        else:
            for r in runs:
                click.echo(run_line(r))
    else:
        run = _run_with_stages(store, run_id)
        if as_json:
            echo_json(run.to_json(with_stages=True))
        else:
            _show_stages(run)
    store.close()  # not on errors: a store that cannot be read would make us wait for nothing


def _run(store: ResultStore, run_id: str) -> RunView:
    return RunView.of(run_id, store.read_json(run_id, "run.json") or {})


def _run_with_stages(store: ResultStore, run_id: str) -> RunView:
    data = store.read_json(run_id, "run.json")
    if data is None:
        raise UsageError(f"no run '{run_id}' in {store.url}")
    stages = []
    for entry in data.get("stages", []):
        name = entry["name"]
        stages.append(StageView.of(name, store.read_json(run_id, f"{name}.json") or entry))
    return RunView.of(run_id, data, stages)


def _show_stages(run: RunView) -> None:
    """A table on a terminal; elsewhere the same columns as plain lines, nothing cut."""
    if not stdout_is_terminal():
        click.echo(run.title)
        for line in columns([STAGE_HEADINGS, *(s.cells() for s in run.stages)]):
            click.echo(line)
        return
    console = Console(soft_wrap=True, highlight=False)
    table = Table(title=run.title)
    for heading in STAGE_HEADINGS:
        table.add_column(heading)
    for stage in run.stages:
        table.add_row(*(Text(cell) for cell in stage.cells()))
    console.print(table)


@click.command()
@click.argument("run_id")
@click.argument("stage")
@project_option
@results_option
def logs(run_id: str, stage: str, directory: Path, results: str | None) -> None:
    """Print one stage's log, or one of its services' (STAGE.SERVICE)."""
    store = open_store(results, directory.resolve(), os.environ)
    if store.read_json(run_id, "run.json") is None:
        raise UsageError(f"no run '{run_id}' in {store.url}")
    if store.read_json(run_id, f"{stage}.json") is None and not _service_log(store, run_id, stage):
        raise UsageError(f"run {run_id} has no stage '{stage}'")
    found = False
    for chunk in store.iter_log(run_id, stage):  # streamed: a log may be bigger than memory
        found = True
        sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    if not found:
        raise UsageError(f"stage '{stage}' of run {run_id} has no log (noLog, or it never ran)")
    store.close()


def _service_log(store: ResultStore, run_id: str, name: str) -> bool:
    """Whether `name` is `<stage>.<service>` of a stage whose JSON lists that service's log."""
    owner = store.read_json(run_id, f"{name.rpartition('.')[0]}.json") if "." in name else None
    services = owner.get("services") if owner is not None else None
    return isinstance(services, list) and any(
        isinstance(s, dict) and s.get("logs") == f"{name}.log" for s in services
    )


@click.command("serve-results")
@project_option
@results_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
def serve_results(directory: Path, results: str | None, host: str, port: int) -> None:
    """Serve the results website for the local store.

    Pages are at /results/local/<pipeline name>/; / leads to the newest run's pipeline.
    """
    from pages.local import create_local_app  # Flask is only imported when needed
    from webhooks.server import Server

    store = open_store(results, directory.resolve(), os.environ)
    server = Server(create_local_app(store), host, port)
    click.echo(f"results of {store.url} at {server.url}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.close()
