"""Caches between builds, decided apart from any I/O (pure; SPEC §13 `cache`).

Three questions are answered here, each in milliseconds and each a thing an
attacker would aim at:

- *which* cache a stage's path gets: its slot (repository + stage + path)
  and its key (the slot + the key files' contents);
- *whose* caches a build may read, in what order, and where it may write
  (`Scope`): caches are scoped as branches are, so a pull request never
  writes what the main branch reads next, and a fork never writes at all;
- *what* of an archive may be restored (`member_problem`): nothing that
  would land, or point, outside the cache's own folder, and no devices.

`runner.cachestore` keeps the archives (a local folder, S3) and
`runner.execution` restores and saves them around a stage.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_DAYS",
    "LOCAL",
    "Entry",
    "Held",
    "KeptImage",
    "Restore",
    "Scope",
    "choose",
    "content_key",
    "entry_name",
    "evictions",
    "is_local",
    "kept_image",
    "member_problem",
    "repo_id",
    "scope_for",
    "slot",
    "stale_kept",
]

LOCAL = "local"
"""The repository and the branch of a local run: one scope, read and written."""
KEPT_IMAGES = "dockercise-cache/"
"""The repository part of every image kept for its layers (SPEC §13)."""
KEPT_LABEL = "dockercise.cache.repo"
"""The label naming the repository a built (and perhaps kept) image belongs to."""
DEFAULT_DAYS = 7
"""Days a cache or a kept image may go unused before it is removed: GitHub Actions' week."""
DAY = 86400.0
NO_KEY_FILES = "-"
"""The content key of a path without `key` files (or whose globs match nothing)."""


def _digest(*parts: str, size: int = 32) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:size]


def repo_id(repo: str) -> str:
    """A repository's folder in the store: its name hashed (any name, any length, no `/`)."""
    return _digest("repo", repo.casefold())


def slot(repo: str, stage: str, path: str) -> str:
    """Repository + stage + path: what the newest cache is looked up by."""
    return _digest("slot", repo.casefold(), stage, path)


def content_key(files: Iterable[tuple[str, str]]) -> str:
    """The key files' part of the key: (relative path, sha256 of contents) pairs, in any order."""
    pairs = sorted(files)
    if not pairs:
        return NO_KEY_FILES
    return _digest("files", *(f"{name}\0{digest}" for name, digest in pairs))


def entry_name(repo: str, scope: str, slot_id: str, key: str) -> str:
    """Where one cache lives in a store: repository / branch scope / slot / key.tar."""
    return f"{repo_id(repo)}/{_digest('scope', scope)}/{slot_id}/{key}.tar"


def slot_prefix(repo: str, scope: str, slot_id: str) -> str:
    return f"{repo_id(repo)}/{_digest('scope', scope)}/{slot_id}/"


def kept_image(repo: str, stage: str, secret: str = "") -> str:
    """The tag of the image kept for a `build` stage's layers (`secret`: the worker's own salt).

    Salted so that another repository cannot name it in a `FROM` line it
    would have to guess; `img` naming any kept image but one's own is refused
    besides (`runner.execution`).
    """
    return f"{own_kept_prefix(repo, secret)}{_digest(stage, size=16)}:latest"


def own_kept_prefix(repo: str, secret: str = "") -> str:
    return f"{KEPT_IMAGES}{_digest('image', secret, repo.casefold(), size=24)}/"


@dataclass(frozen=True)
class Scope:
    """Which branch scopes a build reads, in order, and the one it writes (None: none).

    A scope is a ref: `refs/heads/<branch>`, `refs/pull/<n>`, or LOCAL.
    `keep_layers` says whether its `build` stages' images may be kept as the
    repository's layer cache (its default branch, never a fork's).
    """

    repo: str
    read: tuple[str, ...]
    write: str | None
    keep_layers: bool = False
    reuse_layers: bool = True


def _branch(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def scope_for(
    repo: str,
    *,
    branch: str | None,
    default_branch: str | None,
    pull_request: int | None = None,
    base: str | None = None,
    fork: bool = False,
) -> Scope:
    """The caches a bot build may read and write (SPEC §13; docs/reference.md §13).

    - a push (or a schedule) of branch B: reads B's, then the default branch's; writes B's;
    - a pull request N: reads refs/pull/N's, then its base branch's, then the
      default branch's; writes refs/pull/N's;
    - a fork's pull request: reads the default branch's only; writes nothing.

    Unknown branches read nothing they cannot name: no default branch, no fallback.
    """
    default = [_branch(default_branch)] if default_branch else []
    if fork:
        return Scope(repo, tuple(default), None, keep_layers=False)
    if pull_request is not None:
        own = f"refs/pull/{pull_request}"
        reads = [own, *([_branch(base)] if base else []), *default]
        return Scope(repo, tuple(dict.fromkeys(reads)), own, keep_layers=False)
    if branch is None:
        return Scope(repo, tuple(default), None, keep_layers=False)
    own = _branch(branch)
    reads = [own, *default]
    on_default = bool(default) and own == default[0]
    return Scope(repo, tuple(dict.fromkeys(reads)), own, keep_layers=on_default)


def is_local(repo: str) -> bool:
    """Whether `repo` is a local run's project (`local_scope`), not a bot's repository."""
    return repo.startswith(f"{LOCAL}:")


def local_scope(project: str) -> Scope:
    """A local run: its project's own caches, read and written; its layers kept.

    The repository is the project's folder, so two projects on one machine
    never share a kept image.
    """
    return Scope(f"{LOCAL}:{project}", (LOCAL,), LOCAL, keep_layers=True)


@dataclass(frozen=True)
class Entry:
    """A cache a store holds: its name (`entry_name`), size and last modification."""

    name: str
    size: int
    modified: float


@dataclass(frozen=True)
class Restore:
    """What to restore: the entry and whether it has the exact key (else a fallback)."""

    entry: Entry
    exact: bool


def choose(
    scope: Scope, slot_id: str, key: str, listed: Sequence[Entry]
) -> tuple[Restore | None, bool]:
    """The cache to restore, and whether the exact key exists in a scope the build reads.

    The exact key in the first scope (in read order) that has it; else the
    newest cache of the same slot in the first scope that has any; else None.
    """
    by_name = {e.name: e for e in listed}
    exact_found = None
    for ref in scope.read:
        entry = by_name.get(entry_name(scope.repo, ref, slot_id, key))
        if entry is not None:
            exact_found = entry
            break
    if exact_found is not None:
        return Restore(exact_found, True), True
    for ref in scope.read:
        prefix = slot_prefix(scope.repo, ref, slot_id)
        same = [e for e in listed if e.name.startswith(prefix)]
        if same:
            return Restore(max(same, key=lambda e: (e.modified, e.name)), False), False
    return None, False


def should_save(scope: Scope, exact_exists: bool, restored_exact: bool, changed: bool) -> bool:
    """Save after a passing stage: when writable, and no exact key exists or it changed."""
    if scope.write is None:
        return False
    if not exact_exists:
        return True
    return changed or not restored_exact


# --- eviction ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """Something kept for later builds (a cache archive, a kept image) and when it was last
    used (saved, restored, built from), in seconds since the epoch."""

    name: str
    size: int
    used: float


@dataclass(frozen=True)
class KeptImage:
    """An image kept for a `build` stage's layers: its name, repository and last use."""

    name: str
    repo: str
    used: float


def evictions(
    held: Sequence[Held], now: float, days: float | None, max_bytes: int | None
) -> list[str]:
    """What goes: everything unused for more than `days` days, then the least recently used
    until the rest fit in `max_bytes` (None: no bound of that kind).

    Both bounds, as GitHub Actions has (7 days unused, 10 GB): a size bound
    alone keeps a dead branch's caches for ever on a quiet store, an age bound
    alone lets a busy week fill the disk.
    """
    gone = [h.name for h in held if days is not None and now - h.used > days * DAY]
    stale = set(gone)
    left = sorted((h for h in held if h.name not in stale), key=lambda h: (h.used, h.name))
    total = sum(h.size for h in left)
    for h in left:
        if max_bytes is None or total <= max_bytes:
            break
        gone.append(h.name)
        total -= h.size
    return gone


def stale_kept(kept: Sequence[KeptImage], now: float, days: float, local: bool) -> list[str]:
    """The kept images unused for more than `days` days, of local runs' projects (`local`)
    or of the bot's repositories: each prunes its own kind, under its own setting."""
    mine = [Held(k.name, 0, k.used) for k in kept if is_local(k.repo) == local]
    return evictions(mine, now, days, None)


# --- archive members ---------------------------------------------------------------------------


def _climbs(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/") or "\\" in name or "\0" in name


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why this member of a cache archive must not be restored, or None.

    Checked for every member before anything is written (and tarfile's
    `data` filter checks again as it extracts): an archive with one bad
    member is refused whole.
    """
    name = member.name
    if not name or _climbs(name):
        return f"member {name!r} would land outside the cache path"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return f"member {name!r} is a device, FIFO or other special file"
    if member.issym() or member.islnk():
        target = member.linkname
        if not target or "\0" in target:
            return f"link {name!r} has no target"
        if target.startswith("/"):
            return f"link {name!r} points outside the cache path ({target!r})"
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
            return f"link {name!r} points outside the cache path ({target!r})"
    return None
