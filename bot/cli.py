"""The `dockercise` command (SPEC §9).

`main` is the one catch-all: a DockerciseError becomes its message and exit
code, never a traceback.  `run` reads as its steps: load -> validate -> plan ->
run -> store -> report.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.console import ConsoleReporter
from bot.serve import serve, status, worker
from runner import dag, encryption, pipeline
from runner.engine import Engine, RunOptions, prepare
from runner.errors import DockerciseError, PipelineInvalid, SecretInvalid, UsageError
from runner.masking import Masker
from runner.model import Pipeline
from runner.store import ResultStore, open_store
from runner.variables import parse_assignments, read_env_file

__all__ = ["cli", "main"]

_project = click.option(
    "-C",
    "--directory",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Run as if started in DIR (the project).",
)
_files = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help="Use only this pipeline file (repeatable; relative to -C).",
)
_results = click.option(
    "--results",
    envvar="DOCKERCISE_RESULTS",
    metavar="URL",
    help="Results store: a directory, file:///path or s3://bucket/prefix "
    "[default: DIR/.dockercise/results].",
)


def _stderr(message: str) -> None:
    click.echo(message, err=True)


def _load(directory: Path, files: tuple[str, ...]) -> Pipeline | None:
    if not directory.is_dir():
        raise UsageError(f"-C {directory}: no such directory")
    chosen = None
    if files:
        chosen = [Path(f) for f in files]
        for f in chosen:
            if not (directory / f).is_file():
                raise UsageError(f"-f {f}: no such file in {directory}")
    loaded = pipeline.load(directory, chosen)
    if loaded is None:
        click.echo(f"nothing to do: no pipeline file in {directory}")
    return loaded


def _complete_stage(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    try:
        loaded = pipeline.load(Path(ctx.params.get("directory") or "."))
    except DockerciseError:
        return []
    return [n for n in (loaded.stages if loaded else ()) if n.startswith(incomplete)]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dockercise")
def cli() -> None:
    """dockercise: every stage in its own container, a DAG you can read in ten lines of YAML."""


@cli.command()
@click.argument("targets", nargs=-1, shell_complete=_complete_stage)
@_project
@_files
@_results
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable for env items (repeatable).",
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A file of NAME=VALUE lines (repeatable).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Stages at once [default: meta.concurrency or CPUs].",
)
@click.option(
    "--changed",
    "changed",
    multiple=True,
    metavar="FILE",
    help="Count FILE as changed, for `paths` stages (repeatable).",
)
@click.option("--since", metavar="REV", help="Count files changed since git REV as changed.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def run(
    targets: tuple[str, ...],
    directory: Path,
    files: tuple[str, ...],
    results: str | None,
    env: tuple[str, ...],
    env_files: tuple[Path, ...],
    jobs: int | None,
    changed: tuple[str, ...],
    since: str | None,
    quiet: bool,
) -> None:
    """Run the pipeline (or only TARGETS and what they need), each stage in its own container."""
    loaded = _load(directory, files)
    if loaded is None:
        return
    environ = dict(os.environ)
    secrets = encryption.decrypt_pipeline(loaded, environ.get(encryption.KEY_VARIABLE))
    from_files: dict[str, str] = {}
    for env_file in env_files:
        from_files.update(read_env_file(env_file, environ))
    options = RunOptions(
        targets=list(targets),
        concurrency=jobs,
        variables=[secrets.variables, parse_assignments(env, environ), from_files, environ],
        literals=secrets.literals,
        masker=Masker(secrets.values()),
        changed=_changed(loaded.root, changed, since),
    )
    plan = prepare(loaded, options)
    store = open_store(results, loaded.root)
    from runner.containers import Containers  # the docker SDK is only imported when needed

    containers = Containers()
    engine = Engine(containers, store, ConsoleReporter(quiet=quiet))
    # A closed terminal (SIGHUP) or a stop (SIGTERM) cleans up as Ctrl-C does.
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = engine.run(plan)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        containers.close()
        store.close()
    click.echo(f"results: {_location(store, result.id)}")
    if result.status.value == "cancelled":
        sys.exit(130)
    sys.exit(0 if result.status.value == "success" else 1)


def _changed(project: Path, files: tuple[str, ...], since: str | None) -> list[str] | None:
    """None (every `paths` stage runs) unless --changed or --since say what changed."""
    if since is None:
        return list(files) if files else None
    from runner.changes import changed_since

    return sorted({*files, *changed_since(project, since)})


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _location(store: ResultStore, run_id: str) -> str:
    return f"{store.url.rstrip('/')}/run/{run_id}/"


@cli.command()
@_project
@_files
def validate(directory: Path, files: tuple[str, ...]) -> None:
    """Check the pipeline files; print every problem, one line each."""
    loaded = _load(directory, files)
    if loaded is not None:
        click.echo(f"ok: {len(loaded.stages)} stage(s) in {', '.join(loaded.files)}")


@cli.command()
@_project
@_files
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "mermaid"]),
    default="text",
    show_default=True,
)
def graph(directory: Path, files: tuple[str, ...], fmt: str) -> None:
    """Print the stage graph as text, Graphviz dot or Mermaid."""
    loaded = _load(directory, files)
    if loaded is not None:
        click.echo(dag.format_graph(loaded.deps, fmt))


@cli.command()
@click.argument("run_id", required=False)
@_project
@_results
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs to list.")
def results(run_id: str | None, directory: Path, results: str | None, limit: int) -> None:
    """List the newest runs, or one run's stages with status and duration."""
    store = open_store(results, directory.resolve())
    _show_results(store, run_id, limit)
    store.close()  # not on errors: a store that cannot be read would make us wait for nothing


def _show_results(store: ResultStore, run_id: str | None, limit: int) -> None:
    console = Console(soft_wrap=True, highlight=False)
    if run_id is None:
        for rid in store.run_ids()[:limit]:
            data = store.read_json(rid, "run.json") or {}
            took = _duration(data)
            trigger = (data.get("trigger") or {}).get("kind", "")
            status, name = data.get("status", "?"), data.get("pipeline", "")
            console.print(Text(f"{rid}  {status:<9}  {trigger:<8}  {took:>8}  {name}"))
        return
    found = store.read_json(run_id, "run.json")
    if found is None:
        raise UsageError(f"no run '{run_id}' in {store.url}")
    data = found
    table = Table(title=f"run {run_id}: {data.get('pipeline')} {data.get('status')}")
    for column in ("stage", "status", "exit", "time", "reason"):
        table.add_column(column)
    for entry in data.get("stages", []):
        stage = store.read_json(run_id, f"{entry['name']}.json") or entry
        exit_code = stage.get("exit_code")
        table.add_row(
            Text(entry["name"]),
            stage.get("status", ""),
            "" if exit_code is None else str(exit_code),
            _duration(stage),
            Text(stage.get("reason") or ""),
        )
    console.print(table)


def _duration(data: dict[str, Any]) -> str:
    from datetime import datetime

    try:
        start = datetime.fromisoformat(data["started"])
        end = datetime.fromisoformat(data["finished"])
    except (KeyError, TypeError, ValueError):
        return ""
    return f"{(end - start).total_seconds():.1f}s"


@cli.command()
@click.argument("run_id")
@click.argument("stage")
@_project
@_results
def logs(run_id: str, stage: str, directory: Path, results: str | None) -> None:
    """Print one stage's log."""
    store = open_store(results, directory.resolve())
    if store.read_json(run_id, "run.json") is None:
        raise UsageError(f"no run '{run_id}' in {store.url}")
    if store.read_json(run_id, f"{stage}.json") is None:
        raise UsageError(f"run {run_id} has no stage '{stage}'")
    found = False
    for chunk in store.iter_log(run_id, stage):  # streamed: a log may be bigger than memory
        found = True
        sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    if not found:
        raise UsageError(f"stage '{stage}' of run {run_id} has no log (noLog, or it never ran)")
    store.close()


@cli.command()
def keygen() -> None:
    """Print a new secret key.

    Set it as DOCKERCISE_SECRET_KEY wherever pipelines run or are encrypted;
    keep it out of the repository.
    """
    click.echo(encryption.generate_key())


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@cli.command()
@click.argument("name")
def encrypt(name: str) -> None:
    """Encrypt a secret value read on stdin.

    Prints `NAME: secure:TOKEN`, encrypted with DOCKERCISE_SECRET_KEY, to
    paste into meta.secrets or an env item.  One trailing newline is dropped,
    so `echo "$TOKEN" | dockercise encrypt NPM_TOKEN` works; every other byte
    of the value is kept.
    """
    if not _VARIABLE_NAME.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a variable name (letters, digits and _, not starting with a digit)"
        )
    value = _read_stdin()
    if not value:
        raise UsageError(f'no value on stdin (echo "$VALUE" | dockercise encrypt {name})')
    token = encryption.encrypt(value, os.environ.get(encryption.KEY_VARIABLE))
    click.echo(f"{name}: {encryption.SECURE_PREFIX}{token}")


def _read_stdin() -> str:
    """stdin as UTF-8, byte for byte (bytes are read, so no newline translation)."""
    stream = sys.stdin
    if stream is None:
        return ""
    if stream.isatty():
        _stderr("type the value, then Ctrl-D")
    buffer = getattr(stream, "buffer", None)
    try:
        text: str = buffer.read().decode("utf-8") if buffer is not None else stream.read()
    except UnicodeDecodeError:
        raise UsageError("the value on stdin is not UTF-8 text") from None
    return text.removesuffix("\n")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(dockercise completion bash)"."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "dockercise", "_DOCKERCISE_COMPLETE").source())


cli.add_command(serve)
cli.add_command(worker)
cli.add_command(status)


@cli.command("serve-results")
@_project
@_results
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
def serve_results(directory: Path, results: str | None, host: str, port: int) -> None:
    """Serve the results website for the local store (Flask's server, for local use).

    Pages are at /results/local/<pipeline name>/; / leads to the newest run's pipeline.
    """
    from pages.local import create_local_app  # Flask is only imported when needed

    store = open_store(results, directory.resolve())
    click.echo(f"results of {store.url} at http://{host}:{port}/ (Ctrl-C to stop)")
    create_local_app(store).run(host=host, port=port)


def main(argv: list[str] | None = None) -> NoReturn:
    """The entry point: the one place errors become messages and exit codes."""
    try:
        code = cli.main(args=argv, prog_name="dockercise", standalone_mode=False)
    except SecretInvalid as e:
        for line in e.problems:
            _stderr(f"dockercise: {line}")
        sys.exit(e.exit_code)
    except PipelineInvalid as e:
        for problem in e.problems:
            _stderr(str(problem))
        _stderr(f"{len(e.problems)} problem(s) found; nothing was run")
        sys.exit(e.exit_code)
    except DockerciseError as e:
        _stderr(f"dockercise: {e}")
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _stderr("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
