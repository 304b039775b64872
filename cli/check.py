"""`dockercise validate` and `dockercise graph`: reading the pipeline files without running them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.options import echo_json, files_option, json_option, load, project_option, stderr
from runner import dag
from runner.errors import PipelineInvalid, Problem

__all__ = ["graph", "problem_json", "validate"]


def problem_json(problem: Problem) -> dict[str, Any]:
    """`{"file", "line", "stage", "message"}`; line and stage null where the problem has none."""
    return {
        "file": problem.file,
        "line": problem.line or None,
        "stage": problem.stage,
        "message": problem.message,
    }


@click.command()
@project_option
@files_option
@json_option
def validate(directory: Path, files: tuple[str, ...], as_json: bool) -> None:
    """Check the pipeline files; print every problem, one line each.

    With --json, stdout holds a JSON list of the problems, each an object
    {"file", "line", "stage", "message"} (line and stage null where the
    problem has none), and nothing else: `[]` when the pipeline is valid (or
    there is none). The exit code is the same as without --json: 0 valid,
    2 problems found.
    """
    if not as_json:
        loaded = load(directory, files)
        if loaded is not None:
            click.echo(f"ok: {len(loaded.stages)} stage(s) in {', '.join(loaded.files)}")
        return
    try:
        load(directory, files, say=stderr)
    except PipelineInvalid as e:
        echo_json([problem_json(p) for p in e.problems])
        sys.exit(e.exit_code)
    echo_json([])


@click.command()
@project_option
@files_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "mermaid"]),
    default="text",
    show_default=True,
)
def graph(directory: Path, files: tuple[str, ...], fmt: str) -> None:
    """Print the stage graph as text, Graphviz dot or Mermaid."""
    loaded = load(directory, files)
    if loaded is not None:
        click.echo(dag.format_graph(loaded.deps, fmt))
