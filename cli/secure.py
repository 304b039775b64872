"""`dockercise keygen` and `dockercise encrypt [--repo OWNER/REPO] NAME` (SPEC §5, §10)."""

from __future__ import annotations

import os
import re
import sys

import click

from cli.options import stderr
from runner import encryption
from runner.errors import UsageError

__all__ = ["encrypt", "keygen"]

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@click.command()
def keygen() -> None:
    """Print a new secret key.

    Set it as DOCKERCISE_SECRET_KEY wherever pipelines run or are encrypted;
    keep it out of the repository.
    """
    click.echo(encryption.generate_key())


@click.command()
@click.option(
    "--repo",
    metavar="OWNER/REPO",
    help="The repository whose bot builds may decrypt it (others refuse it).",
)
@click.argument("name")
def encrypt(name: str, repo: str | None) -> None:
    """Encrypt a secret value read on stdin.

    Prints `NAME: secure:TOKEN`, encrypted with DOCKERCISE_SECRET_KEY, to
    paste into meta.secrets or an env item.  One trailing newline is dropped,
    so `echo "$TOKEN" | dockercise encrypt --repo octo/app NPM_TOKEN` works;
    every other byte of the value is kept.  With --repo only that
    repository's bot builds decrypt it; without, only local runs and the
    repositories the bot lists in DOCKERCISE_LEGACY_SECRETS do.
    """
    if not _VARIABLE_NAME.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a variable name (letters, digits and _, not starting with a digit)"
        )
    if repo is not None and not encryption.is_repository(repo):
        raise UsageError(f"--repo {repo!r} is not a repository, like octo/app")
    value = _read_stdin()
    if not value:
        raise UsageError(f'no value on stdin (echo "$VALUE" | dockercise encrypt {name})')
    token = encryption.encrypt(value, os.environ.get(encryption.KEY_VARIABLE), repo)
    click.echo(f"{name}: {encryption.SECURE_PREFIX}{token}")


def _read_stdin() -> str:
    """stdin as UTF-8, byte for byte (bytes are read, so no newline translation)."""
    stream = sys.stdin
    if stream is None:
        return ""
    if stream.isatty():
        stderr("type the value, then Ctrl-D")
    buffer = getattr(stream, "buffer", None)
    try:
        text: str = buffer.read().decode("utf-8") if buffer is not None else stream.read()
    except UnicodeDecodeError:
        raise UsageError("the value on stdin is not UTF-8 text") from None
    return text.removesuffix("\n")
