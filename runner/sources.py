"""Finding and reading pipeline files, within SPEC §10's bounds (the loader's only I/O).

A checkout is written by whoever opened the pull request, so nothing in it is
taken on trust: the search never follows a symlinked directory and keeps its
own stack (a tree a thousand directories deep is just long); a file is looked
at (lstat) before it is opened, so a FIFO or a device is never opened, a
symlink is read only when it resolves inside the project (and never when
`allow_symlinks` is off, as in bot builds), and no file is read past its cap.
A refused file is never read: its contents cannot leak into a problem.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.wording import one_line

__all__ = [
    "MAX_FILE",
    "MAX_TOTAL",
    "Source",
    "find_files",
    "is_pipeline_file",
    "is_pipeline_path",
    "read_files",
    "read_texts",
]

MAX_FILE = 256 * 1024
"""Bytes of one pipeline file (SPEC §10)."""
MAX_TOTAL = 1024 * 1024
"""Bytes of every pipeline file together (SPEC §10)."""

TOO_BIG = f"is over {MAX_FILE // 1024} KiB (split it, or trim it)"
PAST_TOTAL = f"is past the {MAX_TOTAL // 1024 // 1024} MiB that the pipeline files may hold in all"

SKIP_DIRS = frozenset({".git", "node_modules"})


@dataclass(frozen=True)
class Source:
    """One pipeline file: its text, or why it was not read (`FILE: problem`)."""

    relpath: str
    text: str | None = None
    problem: str | None = None


def is_pipeline_file(name: str) -> bool:
    return name in (".dockercise.yml", "dockercise.yml") or name.endswith(
        (".dockercise.yml", ".dockercise.yaml")
    )


def is_pipeline_path(relpath: str) -> bool:
    """Whether `find_files` would take this path (relative, `/`-separated): for file lists
    that come from elsewhere than a disk, such as a commit's tree on GitHub."""
    *folders, name = relpath.split("/")
    skipped = any(f in SKIP_DIRS or f.startswith(".") for f in folders)
    return not skipped and is_pipeline_file(name)


def find_files(root: Path) -> list[Path]:
    """Every pipeline file under root, skipping `.git`, `node_modules` and hidden directories.

    Depth first, in name order, a folder's files before its subfolders' (as
    `os.walk` lists them).  Symlinked directories are not entered; a symlink
    or special file with a pipeline file's name is listed, for the reader to
    refuse with a reason.  Folders that cannot be read are skipped.
    """
    found: list[Path] = []
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in listed:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    subfolders.append(entry.path)
            elif is_pipeline_file(entry.name):
                found.append(Path(entry.path))
        stack.extend(reversed(subfolders))
    return found


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _read_one(path: Path, root: Path, allow_symlinks: bool, budget: int) -> str | bytes:
    """The file's bytes, or why it is not read (a problem's text)."""
    try:
        st = os.lstat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        return f"cannot read: {one_line(getattr(e, 'strerror', None) or str(e))}"
    target = str(path)
    if stat.S_ISLNK(st.st_mode):
        if not allow_symlinks:
            return (
                "is a symlink (bot builds read no symlinked pipeline file; commit the file itself)"
            )
        try:
            target = os.path.realpath(path, strict=True)
        except (OSError, RuntimeError) as e:
            if isinstance(e, RuntimeError) or getattr(e, "errno", None) == errno.ELOOP:
                return "is a symlink loop"
            return "is a symlink to nothing (a broken link)"
        if not _inside(target, str(root)):
            return "is a symlink to a file outside the project (only links inside it are read)"
        try:
            st = os.stat(target)
        except OSError as e:
            return f"cannot read: {one_line(e.strerror or str(e))}"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a regular file (pipeline files are plain files)"
    if st.st_size > MAX_FILE:
        return TOO_BIG
    if st.st_size > budget:
        return PAST_TOTAL
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except OSError as e:
        return f"cannot read: {one_line(e.strerror or str(e))}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since it was looked at
            return "is not a regular file (pipeline files are plain files)"
        chunks = []
        left = MAX_FILE + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        return f"cannot read: {one_line(e.strerror or str(e))}"
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        return TOO_BIG
    return data


def _relpath(path: Path, root: Path) -> str:
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def read_files(root: Path, paths: Iterable[Path], allow_symlinks: bool = True) -> list[Source]:
    """Each pipeline file's text or problem; past MAX_TOTAL in all, the rest are problems."""
    sources = []
    budget = MAX_TOTAL
    for path in paths:
        relpath = _relpath(path, root)
        got = _read_one(path if path.is_absolute() else root / path, root, allow_symlinks, budget)
        if isinstance(got, str):
            sources.append(Source(relpath, problem=got))
            continue
        budget -= len(got)
        try:
            sources.append(Source(relpath, got.decode("utf-8")))
        except UnicodeDecodeError:
            sources.append(Source(relpath, problem="not UTF-8 text (save the file as UTF-8)"))
    return sources


def read_texts(texts: Mapping[str, str]) -> list[Source]:
    """The same caps for files whose text was read elsewhere (a commit, through the API)."""
    sources = []
    budget = MAX_TOTAL
    for relpath in sorted(texts):
        text = texts[relpath]
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_FILE:
            sources.append(Source(relpath, problem=TOO_BIG))
        elif size > budget:
            sources.append(Source(relpath, problem=PAST_TOTAL))
        else:
            budget -= size
            sources.append(Source(relpath, text))
    return sources
