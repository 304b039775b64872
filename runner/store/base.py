"""The results store interfaces (SPEC §7): the engine writes through one, pages read the other.

Only the fixed layout `run/<runId>/<file>` lives here; where the bytes go is
the business of each implementation (a directory, S3).
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from runner.errors import StoreUnavailable

__all__ = ["ResultReader", "ResultStore", "StoreFile", "run_key", "unwritable", "valid_part"]


def unwritable(where: object, error: OSError) -> StoreUnavailable:
    """A write that failed (a full disk, a read-only or forbidden folder): exit 3, one line."""
    return StoreUnavailable(f"cannot write results to {where}: {error.strerror or error}")


class StoreFile(io.BufferedWriter):
    """A file a store appends to (a log) whose failures are StoreUnavailable, not OSError.

    The engine writes logs from stage threads: a full disk there must end the
    run with exit 3 and one line, as any other write to the store does, and
    not become one stage's error (or a traceback).
    """

    def __init__(self, raw: io.RawIOBase, where: object) -> None:
        super().__init__(raw)
        self._where = where

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as e:
            raise unwritable(self._where, e) from None

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as e:
            raise unwritable(self._where, e) from None

    def close(self) -> None:
        try:
            super().close()
        except OSError as e:
            raise unwritable(self._where, e) from None


def valid_part(name: str) -> bool:
    """A run id or stage file name that cannot climb out of its run folder."""
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and not name.startswith(".")
    )


def run_key(run_id: str, name: str = "") -> str:
    """`run/<runId>/<name>`: the one place the layout is spelled."""
    return f"run/{run_id}/{name}"


class ResultReader(ABC):
    """Reading a store: what the results pages, `dockercise results` and `logs` need.

    Kept apart from writing so that a reader (the website, a filtered view of
    a store) cannot be handed to the engine, and has nothing to refuse.
    """

    url: str

    @abstractmethod
    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        """The file's content, or None when the run or file does not exist."""

    @abstractmethod
    def run_ids(self) -> list[str]:
        """Every run id, newest first."""

    @abstractmethod
    def names(self, run_id: str) -> list[str]:
        """The files stored for one run."""

    def read_json(self, run_id: str, name: str) -> dict[str, Any] | None:
        raw = self.read_bytes(run_id, name)
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    def stream(self, run_id: str, name: str, start: int = 0) -> tuple[int, Iterable[bytes]] | None:
        """The file's size and its bytes from `start` in chunks, or None when it is absent.

        A negative `start` counts from the end (`-1024`: the last KiB, or all of
        a smaller file).  The chunks may hold the file open: iterate them to the
        end or call their `close()` if they have one.  Stores override this to
        read only those bytes, a chunk at a time; this default reads it whole.
        """
        raw = self.read_bytes(run_id, name)
        return None if raw is None else (len(raw), [raw[start:]])

    def iter_log(self, run_id: str, stage: str) -> Iterator[bytes]:
        """The log in chunks: nothing when there is no log, one empty chunk for an empty one.

        Remote stores stream it, so a log of any size can be printed.
        """
        raw = self.read_bytes(run_id, f"{stage}.log")
        if raw is not None:
            yield raw


class ResultStore(ResultReader):
    """A store the engine writes a run's run.json, <stage>.json, <stage>.log and <stage>.zip to."""

    @abstractmethod
    def write_bytes(self, run_id: str, name: str, data: bytes) -> None: ...

    @abstractmethod
    def open_log(self, run_id: str, stage: str) -> BinaryIO:
        """A writable stream for `<stage>.log`, appended to while the stage runs."""

    @abstractmethod
    def put_file(self, run_id: str, name: str, path: Path) -> None: ...

    def close(self) -> None:
        """Finish every pending write (a remote store uploads what it spooled).

        Nothing to do for a store whose writes are done when they return.
        """

    def write_json(self, run_id: str, name: str, data: dict[str, Any]) -> None:
        self.write_bytes(run_id, name, json.dumps(data, indent=2, ensure_ascii=False).encode())
