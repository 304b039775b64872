"""Results stores, chosen by URL (SPEC §7)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from runner.errors import UsageError
from runner.store.base import ResultStore
from runner.store.local import LocalStore

__all__ = ["DEFAULT_RESULTS", "ResultStore", "open_store"]

DEFAULT_RESULTS = ".dockercise/results"


def open_store(url: str | None, project: Path) -> ResultStore:
    """A store for `url`: a path or file:// URL (relative paths are under the project), or s3://."""
    if not url:
        return LocalStore(project / DEFAULT_RESULTS)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme in ("",) or len(parsed.scheme) == 1:
        path = Path(url).expanduser()
        return LocalStore(path if path.is_absolute() else Path.cwd() / path)
    if parsed.scheme == "s3":
        raise UsageError(f"--results {url}: the S3 store is not available in this version yet")
    raise UsageError(f"--results {url}: use a directory, file:///path or s3://bucket/prefix")
