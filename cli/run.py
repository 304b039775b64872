"""`dockercise run`: load -> validate -> plan -> run -> store -> report."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from cli.console import ConsoleReporter
from cli.options import (
    complete_stage,
    files_option,
    load,
    project_option,
    results_option,
    stderr,
)
from runner import caching, encryption, pruning, recovery
from runner.cachestore import CACHE_DAYS, LOCAL_CACHE, CacheStore, parse_days
from runner.engine import Engine, RunOptions, prepare
from runner.errors import DockerciseError, UsageError
from runner.limits import limits_from_env
from runner.masking import Masker
from runner.outcome import Status
from runner.store import ResultStore, open_store
from runner.supervisor import Interrupt
from runner.variables import parse_assignments, read_env_file

__all__ = ["run"]


@click.command()
@click.argument("targets", nargs=-1, shell_complete=complete_stage)
@project_option
@files_option
@results_option
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
    environ = dict(os.environ)
    # Local runs have only the limits their environment sets (SPEC §10).
    limits, wrong = limits_from_env(environ, defaults=False)
    if wrong:
        raise UsageError("; ".join(wrong))
    loaded = load(directory, files)
    if loaded is None:
        return
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
        limits=limits,
        cache_store=(
            CacheStore.from_environment(loaded.root / LOCAL_CACHE, environ)
            if any(stage.cache for stage in loaded.stages.values())
            else None
        ),
        cache_scope=caching.local_scope(str(loaded.root.resolve())),
    )
    # Kept images of local projects unused for DOCKERCISE_CACHE_DAYS go when a run builds.
    days = (
        (parse_days(environ[CACHE_DAYS]) if environ.get(CACHE_DAYS) else caching.DEFAULT_DAYS)
        if any(stage.build is not None for stage in loaded.stages.values())
        else None
    )
    plan = prepare(loaded, options)
    store = open_store(results, loaded.root, environ)
    from runner.containers import Containers  # the docker SDK is only imported when needed

    containers = Containers()
    # What dead runs left is swept meanwhile (it never touches a live process's things),
    # so the first container does not wait for it.
    swept: list[recovery.Swept] = []

    def sweep() -> None:
        swept.append(recovery.sweep_here(containers, environ))
        if days is not None:
            with contextlib.suppress(DockerciseError):  # the next run tries again
                pruning.prune_kept(containers, days, local=True)

    sweeper = threading.Thread(target=sweep, name="sweep")
    sweeper.start()
    interrupt = Interrupt()
    reporter = ConsoleReporter(quiet=quiet)
    engine = Engine(containers, store, reporter, interrupt=interrupt)

    def stop(signum: int, frame: FrameType | None) -> None:
        interrupt.request()  # never raises into the scheduler: it stops at its next look

    # A closed terminal (SIGHUP) or a stop (SIGTERM) cleans up as Ctrl-C does.
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, stop) for s in signals}
    try:
        result = engine.run(plan)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reporter.close()
        sweeper.join()
        for found in swept:  # what it did is news, not a problem: stdout, unless -q
            for line in () if quiet else recovery.summary(found):
                click.echo(f"dockercise: {line}")
            for problem in found.problems:
                stderr(f"dockercise: warning: {problem}")
        containers.close()
        store.close()
        if options.cache_store is not None:
            with contextlib.suppress(DockerciseError, OSError):  # the next run tries again
                options.cache_store.tidy()
            options.cache_store.close()
    click.echo(f"results: {_location(store, result.id)}")
    if result.status is Status.CANCELLED:
        sys.exit(130)
    sys.exit(0 if result.status is Status.SUCCESS else 1)


def _changed(project: Path, files: tuple[str, ...], since: str | None) -> list[str] | None:
    """None (every `paths` stage runs) unless --changed or --since say what changed."""
    if since is None:
        return list(files) if files else None
    from runner.changes import changed_since

    return sorted({*files, *changed_since(project, since)})


def _location(store: ResultStore, run_id: str) -> str:
    return f"{store.url.rstrip('/')}/run/{run_id}/"
