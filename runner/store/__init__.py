"""Results stores, chosen by URL (SPEC §7)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from runner.errors import UsageError
from runner.store.base import ResultReader, ResultStore
from runner.store.local import LocalStore

__all__ = [
    "DEFAULT_RESULTS",
    "SPOOL_VARIABLE",
    "SPOOL_WAIT_VARIABLE",
    "ResultReader",
    "ResultStore",
    "open_store",
]

DEFAULT_RESULTS = ".dockercise/results"
SPOOL_VARIABLE = "DOCKERCISE_SPOOL"
"""Where a remote store keeps results until uploaded [default: the temp dir]."""
SPOOL_WAIT_VARIABLE = "DOCKERCISE_SPOOL_WAIT"
"""How many seconds closing a remote store keeps retrying uploads that fail [default: 60]."""


def open_store(url: str | None, project: Path, environ: Mapping[str, str]) -> ResultStore:
    """A store for `url`: a path or file:// URL (relative paths are under the project), or s3://.

    `environ` holds the spool settings of remote stores; the caller passes the
    environment it was started with (the CLI's, or the one the bot's settings
    were read from), so nothing here reads the process's own.
    """
    if not url:
        return LocalStore(project / DEFAULT_RESULTS)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme in ("",) or len(parsed.scheme) == 1:
        path = Path(url).expanduser()
        return LocalStore(path if path.is_absolute() else Path.cwd() / path)
    if parsed.scheme == "s3":
        return _open_s3(url, environ)
    raise UsageError(f"--results {url}: use a directory, file:///path or s3://bucket/prefix")


def _open_s3(url: str, environ: Mapping[str, str]) -> ResultStore:
    from runner.store.s3 import S3Store  # boto3 takes time and memory to import
    from runner.store.spool import default_root

    raw = environ.get(SPOOL_WAIT_VARIABLE, "60")
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not wait >= 0:
        raise UsageError(f"{SPOOL_WAIT_VARIABLE}={raw}: give a number of seconds")
    spool = environ.get(SPOOL_VARIABLE)
    return S3Store(url, Path(spool).expanduser() if spool else default_root(), wait)
