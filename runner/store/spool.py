"""The local spool behind a remote results store: every write lands on disk first.

A store across a network can be slow or down, and a run must neither wait for
it nor lose a result because of it.  So writes go to files in a spool folder
(one per store URL) and return at once; one uploader thread pushes them to the
remote, with exponential backoff while it fails, and deletes each file once
the remote has its latest version.  Nothing is ever held in memory but the
part being sent.

    <root>/<store-url-slug>/<session>/.lock
                                     /run/<runId>/<name>     (the store's own layout)

A session is one open store: its `.lock` is `flock`ed for as long as the
process keeps it.  A session whose lock can be taken was left by a process
that ended before its uploads did (the store was down, or the process was
killed), so the next spool opened for the same URL adopts it and uploads its
files before its own.

A log is a spool file appended to while its stage runs; the uploader pushes
what has been written every few seconds (`live_interval`) and once more when it
is closed.  How a push of a grown file reaches the remote (S3 appends with a
server-side copy) is the remote's business: see `Remote.push`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from runner.errors import StoreUnavailable
from runner.store.base import StoreFile

__all__ = ["Pushed", "Remote", "Spool", "default_root", "live_interval", "store_folder"]

FIRST_RETRY = 0.5
"""Seconds before the first retry of a failed upload; doubled after each failure..."""
MAX_RETRY = 10.0
"""...up to this."""
LIVE_SECONDS = 2.0
"""How stale a running stage's log in the store may get while it is small."""
LIVE_SMALL = 16 << 20
"""Beyond this size a log is pushed less often (each push may copy it whole server-side)."""
LIVE_MAX_SECONDS = 30.0

HALF_MADE_AGE = 3600.0
"""A `.new-*` session folder this old was left by a process that died while making it."""

_LOCK = ".lock"


def live_interval(size: int) -> float:
    """Seconds between pushes of a growing log: 2 s up to 16 MiB, then in proportion, ≤ 30 s."""
    return min(LIVE_MAX_SECONDS, LIVE_SECONDS * max(1.0, size / LIVE_SMALL))


def default_root() -> Path:
    """Where spools live unless DOCKERCISE_SPOOL says otherwise: per user, in the temp dir.

    The temp dir is shared, so a folder of that name that someone else made
    first is refused rather than used for our logs.
    """
    root = Path(tempfile.gettempdir()) / f"dockercise-spool-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        owner = root.stat().st_uid
    except OSError as e:
        raise StoreUnavailable(f"cannot keep results in {root}: {e.strerror}") from None
    if owner != os.getuid():
        raise StoreUnavailable(f"{root} belongs to another user; set DOCKERCISE_SPOOL to a folder")
    return root


def store_folder(root: Path, url: str) -> Path:
    """The spool folder of one store URL: readable, and unique per URL."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url).strip("_")[:60]
    return root / f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Pushed:
    """What the remote holds for a key after a push: how many bytes, and its ETag."""

    size: int
    etag: str


class Remote(Protocol):
    def push(self, key: str, file: BinaryIO, size: int, previous: Pushed | None) -> Pushed:
        """Make `key` hold exactly the first `size` bytes of `file` (read with pread, no seeks).

        `previous` is set only for an append-only file (a log) pushed before:
        what that push left there.  The remote may then append to it rather
        than send everything again, if it checks that the key still holds it.
        Any exception means "not done"; the spool retries later.
        """
        ...


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Session:
    """One process's spool folder, locked while in use."""

    def __init__(self, folder: Path, lock_fd: int, adopted: bool) -> None:
        self.folder = folder
        self.adopted = adopted
        self._fd: int | None = lock_fd

    def release(self, remove: bool) -> None:
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)  # the flock goes with it; the next spool may adopt what is left
            self._fd = None


@dataclass(eq=False)
class _Entry:
    """A spool file the remote does not have (in its latest version) yet."""

    key: str
    path: Path
    session: _Session
    append_only: bool = False
    growing: bool = False
    """A log still open for writing: pushed now and then, finished only once closed."""
    generation: int = 1
    """Bumped by every rewrite; the file is deleted only once its latest one is pushed."""
    pushed: Pushed | None = None
    due: float = 0.0


class _LogFile(StoreFile):
    """A log's spool file; closing it tells the spool the log is complete."""

    def __init__(self, path: Path, on_close: Callable[[], None]) -> None:
        super().__init__(io.FileIO(path, "ab"), path.parent)
        self._on_close = on_close

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._on_close()


class Spool:
    """Writes kept on disk under `folder` and uploaded to `remote` by one background thread.

    `label` names the store in messages.  `close()` waits for the uploads; if
    the remote keeps failing it gives up `wait` seconds after being called
    and leaves the files for the next spool of the same folder.
    """

    def __init__(
        self,
        folder: Path,
        remote: Remote,
        label: str,
        *,
        wait: float = 60.0,
        warn: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self._remote = remote
        self._label = label
        self._wait = wait
        self._warn = warn or _stderr
        self._clock = clock
        self._cond = threading.Condition()
        self._entries: dict[Path, _Entry] = {}
        self._own: _Session | None = None  # made at the first write: readers leave no trace
        self._adopted: list[_Session] = []
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._announced = False
        self._closing = False
        self._deadline = math.inf
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StoreUnavailable(f"cannot keep results in {folder}: {e.strerror}") from None

    # --- writing -------------------------------------------------------------------------

    def write(self, key: str, data: bytes) -> None:
        """Keep `data` as `key` (replacing any older version) and queue its upload."""
        path = self._path(key)
        self._atomically(path, lambda tmp: tmp.write_bytes(data))
        self._queue(key, path)

    def put_file(self, key: str, source: Path) -> None:
        """Keep a copy of `source` as `key`: the caller may delete or rewrite it right after."""
        path = self._path(key)
        self._atomically(path, lambda tmp: shutil.copyfile(source, tmp))
        self._queue(key, path)

    def open_log(self, key: str) -> BinaryIO:
        """A file to append `key` to; pushed while open, and completely once closed."""
        path = self._path(key)
        try:
            log = _LogFile(path, lambda: self._log_closed(path))
        except OSError as e:
            raise StoreUnavailable(f"cannot keep results in {self.folder}: {e.strerror}") from None
        with self._cond:
            entry = self._entry(key, path)
            entry.append_only = entry.growing = True
            entry.due = self._clock() + LIVE_SECONDS
            self._cond.notify_all()
        return log

    def _path(self, key: str) -> Path:
        try:
            with self._cond:
                if self._own is None:
                    self._own = self._new_session()
                path = self._own.folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"cannot keep results in {self.folder}: {e.strerror}") from None
        return path

    def _new_session(self) -> _Session:
        """A fresh locked session folder, renamed into place only once locked (never adopted)."""
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=self.folder))
        fd = os.open(tmp / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        final = self.folder / f"{os.getpid()}-{tmp.name.removeprefix('.new-')}"
        tmp.rename(final)
        return _Session(final, fd, adopted=False)

    def _atomically(self, path: Path, fill: Callable[[Path], object]) -> None:
        """Write through a temp file, so an upload in progress keeps reading the old version."""
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            fill(tmp)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StoreUnavailable(f"cannot keep results in {self.folder}: {e.strerror}") from None

    def _entry(self, key: str, path: Path) -> _Entry:
        """The pending entry for `path`, new or bumped; the lock is held."""
        entry = self._entries.get(path)
        if entry is None:
            assert self._own is not None
            entry = self._entries[path] = _Entry(key, path, self._own)
        else:
            entry.generation += 1
        self._start()
        return entry

    def _queue(self, key: str, path: Path) -> None:
        with self._cond:
            self._entry(key, path)
            self._cond.notify_all()

    def _log_closed(self, path: Path) -> None:
        with self._cond:
            entry = self._entries.get(path)
            if entry is not None:
                entry.growing = False
                self._cond.notify_all()

    # --- leftovers -----------------------------------------------------------------------

    def recover(self) -> int:
        """Adopt the files of sessions whose process is gone; they are uploaded first.

        Returns how many files were adopted.
        """
        adopted = 0
        for folder in sorted(self.folder.iterdir()):
            if not folder.is_dir() or (self._own is not None and folder == self._own.folder):
                continue
            if folder.name.startswith(".") and time.time() - _mtime(folder) < HALF_MADE_AGE:
                continue  # a session being made right now, not locked yet
            try:
                fd = os.open(folder / _LOCK, os.O_RDWR)
            except OSError:
                continue  # not a session, or one being removed
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # its process is still running and uploads them itself
                continue
            session = _Session(folder, fd, adopted=True)
            files = sorted(_spooled(folder), key=_upload_order)
            if not files:  # a finished session, or one half made long ago
                session.release(remove=True)
                continue
            with self._cond:
                self._adopted.append(session)
                for path in files:
                    key = path.relative_to(folder).as_posix()
                    self._entries[path] = _Entry(key, path, session)
                self._start()
                self._cond.notify_all()
            adopted += len(files)
        return adopted

    def upload_recovered(self) -> int:
        """Wait until the adopted files are uploaded, or an upload fails; how many went up."""
        with self._cond:
            total = sum(1 for e in self._entries.values() if e.session.adopted)
            while self._failures == 0 and any(e.session.adopted for e in self._entries.values()):
                self._cond.wait()
            left = sum(1 for e in self._entries.values() if e.session.adopted)
        if total > left:
            self._warn(
                f"dockercise: uploaded {total - left} result file(s) that an earlier run "
                f"left in {self.folder}"
            )
        return total - left

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for every upload; give up `wait` seconds from now if the remote keeps failing.

        What could not be uploaded stays on disk for the next spool of this
        folder.  The spool may be written to again afterwards: a new session
        and uploader are made for it.
        """
        with self._cond:
            self._closing = True
            self._deadline = self._clock() + self._wait
            for entry in self._entries.values():
                entry.growing = False  # a log its writer never closed: what is there is final
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            left = {e.session for e in self._entries.values()}
            count = len(self._entries)
            sessions = [s for s in (self._own, *self._adopted) if s is not None]
            self._entries.clear()
            self._own, self._adopted, self._thread = None, [], None
            self._closing, self._deadline = False, math.inf
            self._failures, self._retry_at, self._announced = 0, 0.0, False
        for session in sessions:
            session.release(remove=session not in left)
        if count:
            self._warn(
                f"dockercise: results store {self._label} still unreachable; {count} result "
                f"file(s) kept in {self.folder}; the next dockercise command using this "
                "store uploads them"
            )

    # --- the uploader thread -------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dockercise-spool", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            entry, generation, final = job
            try:
                file = entry.path.open("rb")
            except FileNotFoundError:  # deleted by hand: nothing left to upload
                self._done(entry, generation, True, None)
                continue
            try:
                with file:
                    size = os.fstat(file.fileno()).st_size
                    previous = entry.pushed if entry.append_only else None
                    pushed = self._remote.push(entry.key, file, size, previous)
            except Exception as e:  # whatever the remote says, the file stays and is retried
                self._failed(e)
            else:
                self._done(entry, generation, final, pushed)

    def _next_job(self) -> tuple[_Entry, int, bool] | None:
        """The next upload: files no longer written first, then growing logs when due."""
        with self._cond:
            while True:
                now = self._clock()
                if self._closing and (
                    not self._entries or (self._failures and now >= self._deadline)
                ):
                    return None
                wake = self._retry_at if now < self._retry_at else None
                if wake is None:
                    job, wake = self._ready(now)
                    if job is not None:
                        return job
                if self._closing:
                    wake = min(wake if wake is not None else math.inf, self._deadline)
                self._cond.wait(None if wake is None or wake == math.inf else max(0, wake - now))

    def _ready(self, now: float) -> tuple[tuple[_Entry, int, bool] | None, float | None]:
        for entry in self._entries.values():
            if not entry.growing:
                return (entry, entry.generation, True), None
        due = math.inf
        for entry in self._entries.values():
            if entry.due <= now:
                size = _size(entry.path)
                if entry.pushed is None or size != entry.pushed.size:
                    return (entry, entry.generation, False), None
                entry.due = now + live_interval(size)
            due = min(due, entry.due)
        return None, (due if due < math.inf else None)

    def _failed(self, error: Exception) -> None:
        with self._cond:
            self._failures += 1
            delay = min(FIRST_RETRY * 2 ** (self._failures - 1), MAX_RETRY)
            self._retry_at = self._clock() + delay
            if not self._announced:
                self._announced = True
                reason = " ".join(str(error).split())[:300] or type(error).__name__
                self._warn(
                    f"dockercise: results store {self._label} unreachable ({reason}); "
                    f"keeping results in {self.folder} and retrying"
                )
            self._cond.notify_all()

    def _done(self, entry: _Entry, generation: int, final: bool, pushed: Pushed | None) -> None:
        with self._cond:
            if pushed is not None:
                if self._announced:
                    self._announced = False
                    self._warn(f"dockercise: results store {self._label} reachable again")
                self._failures, self._retry_at = 0, 0.0
                entry.pushed = pushed
            entry.due = self._clock() + live_interval(entry.pushed.size if entry.pushed else 0)
            if final and not entry.growing and entry.generation == generation:
                del self._entries[entry.path]
                entry.path.unlink(missing_ok=True)
                session = entry.session
                if session.adopted and not any(
                    e.session is session for e in self._entries.values()
                ):
                    session.release(remove=True)
                    self._adopted.remove(session)
            self._cond.notify_all()


def _spooled(folder: Path) -> list[Path]:
    """The files of a session that are results (not its lock or half-written temp files)."""
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top, f) for f in files if not f.startswith(".")]
    return found


def _upload_order(path: Path) -> tuple[str, bool, str]:
    """A run's files in name order, its run.json last: it says the run is complete."""
    return (str(path.parent), path.name == "run.json", path.name)


def _mtime(path: Path) -> float:
    with contextlib.suppress(OSError):
        return path.stat().st_mtime
    return 0.0


def _size(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return 0
