"""What several commands share: the -C/-f/--results/--json options, loading the pipeline,
stage-name completion, and whether stdout is a terminal."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from runner import pipeline
from runner.errors import DockerciseError, UsageError
from runner.model import Pipeline

__all__ = [
    "complete_stage",
    "echo_json",
    "files_option",
    "json_option",
    "load",
    "project_option",
    "results_option",
    "stderr",
    "stdout_is_terminal",
]

project_option = click.option(
    "-C",
    "--directory",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Run as if started in DIR (the project).",
)
files_option = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help="Use only this pipeline file (repeatable; relative to -C).",
)
results_option = click.option(
    "--results",
    envvar="DOCKERCISE_RESULTS",
    metavar="URL",
    help="Results store: a directory, file:///path or s3://bucket/prefix "
    "[default: DIR/.dockercise/results].",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
)


def stderr(message: str) -> None:
    click.echo(message, err=True)


def stdout_is_terminal() -> bool:
    """A pipe or a file gets every value whole; only a terminal gets text cut to its width.

    Asks the stream itself, not rich: FORCE_COLOR (often set in CI for coloured logs)
    makes rich treat a pipe as a terminal, and a log must still hold whole names.
    """
    stream = sys.stdout
    return stream is not None and stream.isatty()


def echo_json(value: Any) -> None:
    """Indented, non-ASCII kept as it is (stage names are UTF-8), one newline at the end."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def load(
    directory: Path, files: tuple[str, ...], say: Callable[[str], None] = click.echo
) -> Pipeline | None:
    """The project's pipeline (only `files` when given); None, said through `say`, if it has none.

    Raises PipelineInvalid with every problem found, UsageError for a bad -C or -f.
    """
    if not directory.is_dir():
        raise UsageError(f"-C {directory}: no such directory")
    chosen = None
    if files:
        chosen = [Path(f) for f in files]
        for f in chosen:
            # Only absence is the CLI's to say: what the path is (a FIFO, a link, a folder)
            # is for the loader, which says it without opening it.
            if not os.path.lexists(directory / f):
                raise UsageError(f"-f {f}: no such file in {directory}")
    loaded = pipeline.load(directory, chosen)
    if loaded is None:
        say(f"nothing to do: no pipeline file in {directory}")
    return loaded


def complete_stage(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Stage names for shell completion; none when the pipeline does not load."""
    try:
        loaded = pipeline.load(Path(ctx.params.get("directory") or "."))
    except DockerciseError:
        return []
    names = [*loaded.matrices, *loaded.stages] if loaded else []
    return [n for n in names if n.startswith(incomplete)]
