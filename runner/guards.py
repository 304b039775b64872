"""What a running stage may write, enforced while it writes (SPEC §10): its log, its /out
file and its volume.

The log and the /out file are cut at the run's `max_log` and the stage goes
on; the volume is measured every few seconds from a thread of the
supervisor's, and a stage whose volume grows past `stage_disk` is stopped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from runner.limits import format_size

__all__ = ["DISK_LIMIT", "ENTRY_SIZE", "CappedLog", "CappedWriter", "log_cut_note", "volume_size"]

DISK_LIMIT = "disk limit"
"""The reason of a stage stopped because it wrote more than DOCKERCISE_STAGE_DISK."""

ENTRY_SIZE = 4096
"""What every file, directory and link counts for at least: a block of the disk.

So a volume of millions of empty files is over the limit long before it
costs a scan of all of them, and a scan never looks at more entries than
`limit / ENTRY_SIZE`.
"""


def log_cut_note(cap: int) -> str:
    return (
        f"the log is cut here, at {format_size(cap)} (DOCKERCISE_MAX_LOG);"
        " the stage goes on, its further output is not kept"
    )


class CappedLog:
    """A stage's stored log: its output kept up to `cap` bytes in all, dockercise's notes always.

    The cap counts every attempt of the stage, as the log does.  The line
    that crosses it is kept up to the cap, then the note says where it was cut.
    """

    def __init__(self, file: BinaryIO, cap: int | None) -> None:
        self.file = file
        self.cap = cap
        self.written = 0
        self.cut = False

    def output(self, line: bytes) -> bool:
        """Keep one line of output (without its newline); False when it was not kept at all."""
        if self.cut:
            return False
        if self.cap is not None and self.written + len(line) + 1 > self.cap:
            self.cut = True
            room = max(self.cap - self.written - 1, 0)
            if room:
                self.file.write(line[:room] + b"\n")
            self.note(f"dockercise: {log_cut_note(self.cap)}")
            return room > 0
        self.file.write(line + b"\n")
        self.written += len(line) + 1
        return True

    def note(self, text: str) -> None:
        """A line of dockercise's own (bounded in number): never cut."""
        self.file.write(text.encode() + b"\n")

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class CappedWriter:
    """A stage's /out file: stdout kept up to `cap` bytes, the rest dropped."""

    def __init__(self, file: BinaryIO, cap: int | None) -> None:
        self.file = file
        self.room = cap

    def write(self, chunk: bytes) -> None:
        if self.room is None:
            self.file.write(chunk)
        elif self.room > 0:
            kept = chunk[: self.room]
            self.file.write(kept)
            self.room -= len(kept)


def volume_size(top: Path, limit: int | None = None) -> int:
    """Bytes a stage's volume holds, each entry counted at least ENTRY_SIZE (best effort).

    A file counts the larger of its length and the blocks it holds, so a
    sparse file counts as what zipping it would read.  Stops counting once
    past `limit`: the answer is then only known to be over it.
    """
    total = 0
    folders = [top]
    while folders:
        try:
            with os.scandir(folders.pop()) as found:  # closed on every way out
                for entry in found:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile
                    total += max(info.st_size, info.st_blocks * 512, ENTRY_SIZE)
                    if limit is not None and total > limit:
                        return total
                    if stat.S_ISDIR(info.st_mode):
                        folders.append(Path(entry.path))
        except OSError:
            continue  # a folder that vanished meanwhile, or that cannot be read
    return total
