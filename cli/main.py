"""The `dockercise` command (SPEC §9): the click group and `main`, its entry point.

`main` is the one catch-all: a DockerciseError becomes its message and exit
code, never a traceback. Each command lives in the module named for what it
does; this one only puts them together.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from cli import bot, check, results, secure
from cli.options import stderr
from cli.run import run
from runner.errors import DockerciseError, PipelineInvalid, SecretInvalid

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dockercise")
def cli() -> None:
    """dockercise: every stage in its own container, a DAG you can read in ten lines of YAML."""


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(dockercise completion bash)"."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "dockercise", "_DOCKERCISE_COMPLETE").source())


for command in (
    run,
    check.validate,
    check.graph,
    results.results,
    results.logs,
    secure.keygen,
    secure.encrypt,
    completion,
    bot.serve,
    bot.worker,
    bot.status,
    results.serve_results,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> NoReturn:
    """The entry point: the one place errors become messages and exit codes."""
    try:
        code = cli.main(args=argv, prog_name="dockercise", standalone_mode=False)
    except SecretInvalid as e:
        for line in e.problems:
            stderr(f"dockercise: {line}")
        sys.exit(e.exit_code)
    except PipelineInvalid as e:
        for problem in e.problems:
            stderr(str(problem))
        stderr(f"{len(e.problems)} problem(s) found; nothing was run")
        sys.exit(e.exit_code)
    except DockerciseError as e:
        stderr(f"dockercise: {e}")
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        stderr("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
