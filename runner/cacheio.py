"""A stage's caches on the host: restored into fresh folders before it, saved after it.

Each cache path of a stage is a fresh folder of the run's private directory,
bind-mounted read-write at that path (`runner.plan`).  Before the stage the
chosen archive (`runner.caching.choose`) is extracted into it, every member
checked first (`caching.member_problem`) and extracted with tarfile's `data`
filter, so nothing lands or points outside the folder; after a stage that
passed, the folder is archived (links kept as links, special files left
out) and saved when `caching.should_save` says so.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import caching
from runner.cachestore import CacheStore
from runner.model import CachePath, Stage

__all__ = ["ArchiveRefused", "Caches", "Slot", "extract", "make_archive"]

MAX_KEY_FILES = 10_000


class ArchiveRefused(Exception):
    """A cache archive holds a member that must not be restored: nothing of it is."""


@dataclass
class Slot:
    """One cache path of one stage in this run: where it is, what was restored, what was saved."""

    cache: CachePath
    folder: Path
    slot: str
    content: str
    """The key files' part of the key (`caching.content_key`)."""
    exact_exists: bool = False
    restored: str | None = None
    """`exact`, `fallback`, or None."""
    before: tuple[Any, ...] = ()
    saved: bool = False
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The key as logs and JSON show it: the slot's and the contents' digests, shortened."""
        return f"{self.slot[:16]}-{self.content[:16]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.cache.path,
            "key": self.key,
            "restored": self.restored,
            "saved": self.saved,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


def key_files(project: Path, globs: tuple[str, ...]) -> list[tuple[str, str]]:
    """(relative path, sha256) of the regular files inside `project` that the globs match."""
    if not globs:
        return []
    from wcmatch import glob

    root = project.resolve()
    found: list[tuple[str, str]] = []
    names = glob.glob(list(globs), root_dir=str(root), flags=glob.GLOBSTAR | glob.DOTGLOB)
    for name in sorted(set(names))[:MAX_KEY_FILES]:
        if name.split("/")[0] == ".dockercise":
            continue  # local results and caches: never part of a key
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue  # a link could hash the worker's own files into a visible key
        if not path.resolve().is_relative_to(root):
            continue
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        found.append((name, digest.hexdigest()))
    return found


def manifest(folder: Path) -> tuple[Any, ...]:
    """What a folder holds, cheaply: each entry's name, type, mode, size and mtime."""
    seen = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files + dirs):
            with_path = os.path.join(top, name)
            st = os.lstat(with_path)
            seen.append(
                (os.path.relpath(with_path, folder), st.st_mode, st.st_size, st.st_mtime_ns)
            )
    return tuple(seen)


def extract(archive: Path, folder: Path) -> None:
    """Extract a cache archive into `folder`; ArchiveRefused (nothing written) for a bad member."""
    with tarfile.open(archive, "r:") as tar:
        members = tar.getmembers()
        for member in members:
            why = caching.member_problem(member)
            if why is not None:
                raise ArchiveRefused(why)

        def keep_owner(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
            checked = tarfile.data_filter(member, dest)
            return checked.replace(uid=member.uid, gid=member.gid, deep=False)

        try:
            tar.extractall(folder, members=members, filter=keep_owner)
        except tarfile.FilterError as e:
            raise ArchiveRefused(str(e)) from None


def make_archive(folder: Path, target: Path) -> int:
    """Archive `folder` into `target` (uncompressed: fast); links stay links; the size written."""

    def only_plain(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if member.name in ("", "."):
            return None
        if caching.member_problem(member) is not None:
            return None  # a device, a FIFO, a link out: never saved, so never restored
        return member

    with tarfile.open(target, "w:", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(folder)):
            tar.add(folder / entry, arcname=entry, recursive=True, filter=only_plain)
    return target.stat().st_size


@dataclass
class Caches:
    """The caches of one run: the store, the scope, and each stage's slots."""

    store: CacheStore
    scope: caching.Scope
    private: Path
    project: Path
    slots: dict[str, list[Slot]] = field(default_factory=dict)

    def restore(self, stage: Stage, note: Any) -> list[Slot]:
        """Fresh folders for the stage's cache paths, each filled from its chosen cache."""
        slots: list[Slot] = []
        files_cache: dict[tuple[str, ...], str] = {}
        for index, cache in enumerate(stage.cache):
            folder = self.private / "cache" / f"{_safe(stage.name)}-{index}"
            if folder.exists():
                _clear(folder)
            folder.mkdir(parents=True)
            folder.chmod(0o777)  # the image's own user may not be root
            if cache.key not in files_cache:
                files_cache[cache.key] = caching.content_key(key_files(self.project, cache.key))
            slot_id = caching.slot(self.scope.repo, stage.name, cache.path)
            slot = Slot(cache, folder, slot_id, files_cache[cache.key])
            slots.append(slot)
            started = time.monotonic()
            try:
                prefix = f"{caching.repo_id(self.scope.repo)}/"
                listed = self.store.listing(prefix)
                choice, slot.exact_exists = caching.choose(
                    self.scope, slot_id, files_cache[cache.key], listed
                )
                if choice is None:
                    note(f"cache {cache.path}: nothing to restore (key {slot.key})")
                else:
                    archive = self.store.fetch(choice.entry.name)
                    if archive is None:
                        note(f"cache {cache.path}: gone before it could be restored")
                    else:
                        extract(archive, folder)
                        slot.restored = "exact" if choice.exact else "fallback"
                        slot.bytes = choice.entry.size
            except ArchiveRefused as e:
                _clear(folder)
                folder.mkdir()
                folder.chmod(0o777)
                note(f"cache {cache.path}: archive refused, not restored: {e}")
            except Exception as e:  # a store that fails is never the stage's failure
                note(f"cache {cache.path}: cannot restore ({type(e).__name__}: {e})")
            slot.seconds = time.monotonic() - started
            if slot.restored is not None:
                note(
                    f"cache {cache.path}: restored {slot.restored} (key {slot.key},"
                    f" {_size(slot.bytes)}, {slot.seconds:.2f}s)"
                )
            slot.before = manifest(folder) if slot.restored else ()
        self.slots[stage.name] = slots
        return slots

    def save(self, stage: Stage, note: Any) -> None:
        """After a stage that passed: save each cache that is new or changed, where allowed."""
        for slot in self.slots.get(stage.name, []):
            started = time.monotonic()
            changed = manifest(slot.folder) != slot.before
            if not caching.should_save(
                self.scope, slot.exact_exists, slot.restored == "exact", changed
            ):
                why = "read-only in this build" if self.scope.write is None else "unchanged"
                note(f"cache {slot.cache.path}: not saved ({why})")
                continue
            assert self.scope.write is not None
            name = caching.entry_name(self.scope.repo, self.scope.write, slot.slot, slot.content)
            fd, part = tempfile.mkstemp(dir=self.store.root, prefix=".new-", suffix=".part")
            os.close(fd)
            try:
                size = make_archive(slot.folder, Path(part))
                self.store.save(name, Path(part))
            except Exception as e:
                note(f"cache {slot.cache.path}: cannot save ({type(e).__name__}: {e})")
                continue
            finally:
                if os.path.exists(part):
                    os.unlink(part)
            slot.saved, slot.bytes = True, size
            slot.seconds += time.monotonic() - started
            note(
                f"cache {slot.cache.path}: saved (key {slot.key}, {_size(size)},"
                f" {time.monotonic() - started:.2f}s)"
            )

    def results(self, stage: Stage) -> list[dict[str, Any]]:
        return [slot.to_json() for slot in self.slots.get(stage.name, [])]


def _safe(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:12]


def _clear(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
