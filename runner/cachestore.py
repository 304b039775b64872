"""Where caches are kept: a folder on the worker, bounded, and S3 shared between workers.

Thin on purpose: what to restore and whether to save is `runner.caching`'s
(pure).  A `CacheStore` is a folder of `<name>.tar` files (names from
`caching.entry_name`), least recently used first out once they pass
`DOCKERCISE_CACHE_MAX`; with `DOCKERCISE_CACHE_URL` (`s3://bucket/prefix`)
every save is uploaded too and a cache missing here is fetched from there,
so that every worker finds it.  A store that fails is never a stage's
failure: the stage runs without its cache, and says so in its log.

Both are bounded alike (`caching.evictions`): an archive unused for
`DOCKERCISE_CACHE_DAYS` days goes, then the least recently used past
`DOCKERCISE_CACHE_MAX`.  An S3 object's time is when it was saved, so each
restore also writes an empty `<name>.used` beside it, whose time is the last
use: any worker's reads count, and pruning (`prune_shared`, at most hourly per
worker, `tidy`) needs only a listing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner import limits
from runner.caching import DEFAULT_DAYS, Entry, Held, evictions
from runner.errors import StoreUnavailable, UsageError
from runner.pruning import due

__all__ = ["CACHE_DAYS", "CACHE_MAX", "CACHE_URL", "LOCAL_CACHE", "CacheStore", "parse_size"]

CACHE_DAYS = "DOCKERCISE_CACHE_DAYS"
CACHE_MAX = "DOCKERCISE_CACHE_MAX"
CACHE_URL = "DOCKERCISE_CACHE_URL"
DEFAULT_MAX = 10 << 30
LOCAL_CACHE = ".dockercise/cache"
"""Where a local run keeps its caches, under the project (never shown to a stage)."""
USED = ".used"
"""The suffix of the empty S3 object whose time is an archive's last use."""


def parse_days(text: str, name: str = CACHE_DAYS) -> int:
    """A whole number of days, at least 1; UsageError naming the variable otherwise."""
    if not text.strip().isdigit() or int(text) < 1:
        raise UsageError(f"{name}={text}: give a whole number of days, at least 1")
    return int(text)


def parse_size(text: str, name: str = CACHE_MAX) -> int:
    """`10g`, `500m`, `1.5g`, `2GiB`, `1048576` -> bytes, as every size setting is read
    (`runner.limits.parse_size`); UsageError naming the variable otherwise."""
    try:
        return limits.parse_size(text)
    except ValueError:
        raise UsageError(f"{name}={text}: give a size such as 500m or 10g") from None


class CacheStore:
    """Cache archives in `root` (LRU within `limit` bytes), and in S3 when `url` is given."""

    def __init__(
        self,
        root: Path,
        limit: int = DEFAULT_MAX,
        url: str | None = None,
        client: Any = None,
        days: int = DEFAULT_DAYS,
    ) -> None:
        self.root = root
        self.limit = limit
        self.days = days
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.bucket = self.prefix = ""
        self.client = client
        if url:
            from runner.store.s3 import parse_url

            self.bucket, self.prefix = parse_url(url)
            if self.client is None:
                import boto3

                self.client = boto3.session.Session().client("s3")

    @classmethod
    def from_environment(cls, root: Path, environ: Mapping[str, str]) -> CacheStore:
        limit = parse_size(environ[CACHE_MAX]) if environ.get(CACHE_MAX) else DEFAULT_MAX
        url = environ.get(CACHE_URL) or None
        if url is not None and not url.startswith("s3://"):
            raise UsageError(f"{CACHE_URL}={url}: use s3://bucket/prefix")
        days = parse_days(environ[CACHE_DAYS]) if environ.get(CACHE_DAYS) else DEFAULT_DAYS
        return cls(root, limit, url, days=days)

    def _path(self, name: str) -> Path:
        return self.root / name

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def listing(self, prefix: str) -> list[Entry]:
        """Every cache whose name starts with `prefix` (here, and in S3 when shared)."""
        found: dict[str, Entry] = {}
        if self.client is not None:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) + 1 if self.prefix else 0 :]
                    if name.endswith(".tar"):
                        modified = item["LastModified"].timestamp()
                        found[name] = Entry(name, int(item["Size"]), modified)
        top = self.root / prefix.rstrip("/")
        for path in top.rglob("*.tar") if top.is_dir() else ():
            name = str(path.relative_to(self.root))
            stat = path.stat()
            # The time it was saved (its mtime), not the last read (its atime, for LRU).
            if name not in found or found[name].modified < stat.st_mtime:
                found[name] = Entry(name, stat.st_size, stat.st_mtime)
        return list(found.values())

    def fetch(self, name: str) -> Path | None:
        """The archive as a local file (downloaded first when only S3 has it); None if gone."""
        path = self._path(name)
        if not path.is_file() and self.client is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, part = tempfile.mkstemp(dir=path.parent, suffix=".part")
            os.close(fd)
            try:
                self.client.download_file(self.bucket, self._key(name), part)
                os.replace(part, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)
            self._evict()
        if not path.is_file():
            return None
        os.utime(path, (_now(), path.stat().st_mtime))  # read now: last out of the LRU
        if self.client is not None:
            # Used now, for every worker's pruning; a store that refuses costs nothing more.
            with contextlib.suppress(Exception):
                self.client.put_object(Bucket=self.bucket, Key=self._key(name) + USED, Body=b"")
        return path

    def save(self, name: str, archive: Path) -> None:
        """Keep `archive` (moved in) under `name`; upload it when shared; evict past the limit."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.client is not None:
            self.client.upload_file(str(archive), self.bucket, self._key(name))
        os.replace(archive, path)
        self._evict()

    def _evict(self) -> None:
        """Remove the archives unused for `days`, then the least recently used past `limit`."""
        with self._locked():
            held = []
            for path in self.root.rglob("*.tar"):
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    name = str(path.relative_to(self.root))
                    held.append(Held(name, stat.st_size, max(stat.st_atime, stat.st_mtime)))
            for name in evictions(held, _now(), self.days, self.limit):
                with contextlib.suppress(FileNotFoundError):
                    self._path(name).unlink()
                    _prune(self._path(name).parent, self.root)

    def tidy(self) -> list[str]:
        """The worker's clean-up after a build: this folder's, and the shared store's when an
        hour has passed since this worker last pruned it.  What went from S3."""
        self._evict()
        if self.client is None or not due(self.root / ".pruned-shared"):
            return []
        try:
            return self.prune_shared()
        except Exception as e:  # botocore's many errors, as `runner.cacheio` meets them
            raise StoreUnavailable(f"cannot prune the caches in s3://{self.bucket}: {e}") from e

    def prune_shared(self, now: float | None = None) -> list[str]:
        """Remove from S3 the archives unused for `days`, then the least recently used past
        `limit` (the bucket holds what one worker may): their names."""
        assert self.client is not None
        objects: dict[str, tuple[int, float]] = {}
        marks: dict[str, float] = {}
        start = len(self.prefix) + 1 if self.prefix else 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, **({"Prefix": f"{self.prefix}/"} if self.prefix else {})
        )
        for page in pages:
            for item in page.get("Contents", []):
                name, moment = item["Key"][start:], item["LastModified"].timestamp()
                if name.endswith(".tar"):
                    objects[name] = (int(item["Size"]), moment)
                elif name.endswith(".tar" + USED):
                    marks[name.removesuffix(USED)] = moment
        held = [Held(n, size, max(at, marks.get(n, 0.0))) for n, (size, at) in objects.items()]
        gone = evictions(held, now or _now(), self.days, self.limit)
        orphans = [n for n in marks if n not in objects]  # their archive went: the mark too
        keys = [self._key(n) for n in gone] + [self._key(n) + USED for n in gone + orphans]
        for first in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[first : first + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        return gone

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _prune(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir():
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _now() -> float:
    import time

    return time.time()
