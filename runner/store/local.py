"""The default results store: a directory (`.dockercise/results` or `file:///path`).

Symlinks under the store's root are never followed, reading or writing: a
link planted anywhere (`run`, a run's folder, a log, a zip, a JSON file) is
answered as if absent, so the results website cannot be made to serve a host
file.  Every path is walked one component at a time from the root with
`O_NOFOLLOW` (`openat`), which also leaves no window between a check and the
open.  The root itself is the operator's choice and may be a link.  Reads are
regular files only (a FIFO is never opened for good) and go in chunks, so a
log or zip of any size is served without being held in memory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from runner.errors import StoreUnavailable
from runner.store.base import ResultStore, StoreFile, unwritable, valid_part

__all__ = ["CHUNK", "FileChunks", "LocalStore"]

CHUNK = 1 << 20
"""Bytes read at a time from a stored file."""

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW_DIR = _DIR | os.O_NOFOLLOW
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never hangs
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_ABSENT = (FileNotFoundError, NotADirectoryError)


def _absent(error: OSError) -> bool:
    """ENOENT, ENOTDIR, or ELOOP (O_NOFOLLOW met a symlink): the file is not there for us."""
    return isinstance(error, _ABSENT) or error.errno == errno.ELOOP


class FileChunks:
    """A file's bytes from `start` to `end`, read a chunk at a time as they are iterated.

    It owns the file descriptor: closed once iterated to the end, or by
    `close()` (which a WSGI server calls when the response ends early).
    """

    def __init__(self, fd: int, start: int, end: int) -> None:
        self._fd: int | None = fd
        self._start = start
        self._end = end

    def __iter__(self) -> Iterator[bytes]:
        try:
            position = self._start
            while position < self._end and self._fd is not None:
                data = os.pread(self._fd, min(CHUNK, self._end - position), position)
                if not data:
                    break  # the file shrank: what is there is all there is
                position += len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class LocalStore(ResultStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    # --- walking without following links -------------------------------------------------

    def _run_dir(self, run_id: str, create: bool = False) -> int:
        """A descriptor of `run/<run_id>` (made with `create`); FileNotFoundError if absent."""
        if not valid_part(run_id):
            raise FileNotFoundError(f"no such result: {run_id}")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, _DIR)
        try:
            for part in ("run", run_id):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                inner = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _writable(self, run_id: str) -> int:
        try:
            return self._run_dir(run_id, create=True)
        except OSError as e:
            raise StoreUnavailable(f"cannot write results to {self.root}: {e.strerror}") from None

    def _open(self, run_id: str, name: str) -> int | None:
        """A descriptor of the regular file `run/<run_id>/<name>`, or None when absent."""
        if not valid_part(run_id) or not valid_part(name):
            return None
        try:
            folder = self._run_dir(run_id)
        except OSError as e:
            if _absent(e):
                return None
            raise
        try:
            fd = os.open(name, _READ, dir_fd=folder)
        except OSError as e:
            if _absent(e):
                return None
            raise
        finally:
            os.close(folder)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
        return fd

    # --- writing ---------------------------------------------------------------------------

    # Every failure to write (a full disk, a read-only or forbidden folder, a planted link)
    # is StoreUnavailable: the run ends with exit 3 and one line, never a traceback.

    def _create(self, run_id: str, name: str, flags: int) -> int:
        if not valid_part(name):
            raise FileNotFoundError(f"no such result: {run_id}/{name}")
        folder = self._writable(run_id)
        try:
            return os.open(name, _WRITE | flags, 0o666, dir_fd=folder)
        except OSError as e:
            raise unwritable(self.root, e) from None
        finally:
            os.close(folder)

    def write_bytes(self, run_id: str, name: str, data: bytes) -> None:
        if not valid_part(name):
            raise FileNotFoundError(f"no such result: {run_id}/{name}")
        folder = self._writable(run_id)
        tmp = f".{name}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)  # whatever is there, a planted link included
            with open(os.open(tmp, _WRITE | os.O_TRUNC, 0o666, dir_fd=folder), "wb") as file:
                file.write(data)
            # readers never see half a JSON file; a link planted at `name` is replaced
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)  # a full disk keeps no half file
            raise unwritable(self.root, e) from None
        finally:
            os.close(folder)

    def open_log(self, run_id: str, stage: str) -> BinaryIO:
        fd = self._create(run_id, f"{stage}.log", os.O_APPEND)
        return StoreFile(io.FileIO(fd, "ab"), self.root)

    def put_file(self, run_id: str, name: str, path: Path) -> None:
        with path.open("rb") as source:
            fd = self._create(run_id, name, os.O_TRUNC)
            try:
                with open(fd, "wb") as target:
                    shutil.copyfileobj(source, target, CHUNK)
            except OSError as e:
                raise unwritable(self.root, e) from None

    # --- reading ---------------------------------------------------------------------------

    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        fd = self._open(run_id, name)
        if fd is None:
            return None
        with open(fd, "rb") as file:
            return file.read()

    def stream(self, run_id: str, name: str, start: int = 0) -> tuple[int, FileChunks] | None:
        fd = self._open(run_id, name)
        if fd is None:
            return None
        size = os.fstat(fd).st_size
        begin = max(size + start, 0) if start < 0 else min(start, size)
        return size, FileChunks(fd, begin, size)

    def iter_log(self, run_id: str, stage: str) -> Iterator[bytes]:
        found = self.stream(run_id, f"{stage}.log")
        if found is None:
            return
        chunks = found[1]
        try:
            empty = True
            for chunk in chunks:
                empty = False
                yield chunk
            if empty:
                yield b""
        finally:
            chunks.close()

    def run_ids(self) -> list[str]:
        try:
            fd = os.open(self.root, _DIR)
        except OSError as e:
            if _absent(e):
                return []
            raise
        try:
            runs = os.open("run", _NOFOLLOW_DIR, dir_fd=fd)
        except OSError as e:
            if _absent(e):
                return []
            raise
        finally:
            os.close(fd)
        try:
            with os.scandir(runs) as entries:
                found = [
                    e.name
                    for e in entries
                    if valid_part(e.name) and e.is_dir(follow_symlinks=False)
                ]
        finally:
            os.close(runs)
        return sorted(found, reverse=True)

    def names(self, run_id: str) -> list[str]:
        try:
            folder = self._run_dir(run_id)
        except OSError as e:
            if _absent(e):
                return []
            raise
        try:
            with os.scandir(folder) as entries:
                return sorted(
                    e.name
                    for e in entries
                    if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
                )
        finally:
            os.close(folder)
