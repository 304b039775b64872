"""Checkouts from a mirror (SPEC §13): the only module of the bot that runs git.

Each worker keeps, per repository, under `DATA_DIR/mirrors/OWNER+NAME/`:

- `git/`, a bare mirror, brought up to date by an incremental fetch of the
  ref being built (its `have`s are everything fetched before);
- `tree/` and `index`, one working tree moved from commit to commit with
  `git read-tree --reset -u`, which rewrites only the files that differ
  (each as a new file: a build's links to the old one keep the old content);
- `used`, whose mtime is the mirror's last use (eviction, `bot.eviction`).

A build's working copy is hard links to the tree's files (only those the
index lists, so nothing stray in the tree reaches a build) plus a `.git` of
its own: HEAD at the commit, a copy of the index, and the mirror's object
files hard-linked (git never rewrites an object file; it writes new ones and
deletes old ones). It refers to nothing outside the checkout and holds no
credentials: the installation token travels in an `Authorization` header
given to git through its environment (GIT_CONFIG_COUNT/KEY/VALUE), never on
a command line, in a config file, or anywhere on disk.

A lock per repository (flock on `mirrors/locks/OWNER+NAME.lock`, a file that
is never deleted, so eviction and builds agree on it) covers the fetch, the
move of the tree and the linking; the rest of a build runs without it. A
mirror that git cannot use (a corrupted pack, missing objects, a fetch
failing other than for access or the network) is thrown away and made again
once, so the build does not fail for it.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.eviction import MirrorUse, victims
from runner.errors import DockerciseError
from runner.pipeline import is_pipeline_path

__all__ = ["CheckoutFailed", "Mirrors"]

log = logging.getLogger("dockercise.bot")


class CheckoutFailed(DockerciseError):
    """git could not fetch the commit; the build ends as `error` with this reason."""


class _Broken(Exception):
    """The mirror cannot be used as it is: it is thrown away and made again."""


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF = re.compile(r"refs/[A-Za-z0-9_./-]{1,200}")

_NOT_THE_MIRROR = re.compile(
    r"unable to access|Authentication failed|could not read Username|returned error: \d{3}"
    r"|couldn't find remote ref|Repository not found|Could not resolve host|timed out",
    re.IGNORECASE,
)
"""A failing fetch that a new mirror would not cure: access, the network, a ref gone."""

_GIT_SETTINGS = [
    # Only http(s): a clone URL from a delivery cannot name a local path or a helper.
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.http.allow=always",
    "credential.helper=",
    # Every fetch kept as a pack: a build's `.git` links object files, few and big.
    "fetch.unpackLimit=1",
    "transfer.unpackLimit=1",
    # Housekeeping runs inside the fetch, so inside the lock, never beside a linking.
    "gc.autoDetach=false",
    "maintenance.autoDetach=false",
    # Linking a file changes its ctime, not its content: only mtime and size say a change.
    "core.trustctime=false",
    # A fetch that stalls for a minute fails rather than holding the lock for ever.
    "http.lowSpeedLimit=1000",
    "http.lowSpeedTime=60",
]


def _auth_env(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


def _base_env() -> dict[str, str]:
    """The worker's environment without git's own variables, and no config but ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


@dataclass(frozen=True)
class _Mirror:
    """The files of one repository's mirror."""

    top: Path
    lock_file: Path

    @property
    def git_dir(self) -> Path:
        return self.top / "git"

    @property
    def tree(self) -> Path:
        return self.top / "tree"

    @property
    def index(self) -> Path:
        return self.top / "index"

    @property
    def used(self) -> Path:
        return self.top / "used"


class _GitFailed(Exception):
    def __init__(self, stderr: str) -> None:
        self.stderr = stderr
        super().__init__(stderr)


def _git(mirror: _Mirror, *args: str, extra_env: dict[str, str] | None = None) -> bytes:
    env = _base_env() | {"GIT_INDEX_FILE": str(mirror.index)} | (extra_env or {})
    settings = [a for s in _GIT_SETTINGS for a in ("-c", s)]
    done = subprocess.run(
        ["git", *settings, f"--git-dir={mirror.git_dir}", *args],
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise _GitFailed(done.stderr.decode("utf-8", "replace"))
    return done.stdout


def _last_line(stderr: str, token: str | None) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "git failed"
    return last.replace(token, "***") if token else last


class Mirrors:
    """The mirrors of one worker, under `root`, within `max_bytes` in all (then LRU)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    # --- what builds and the announcer ask for -----------------------------------

    def checkout(
        self, repo: str, url: str, ref: str, sha: str, into: Path, token: str | None
    ) -> Path:
        """A working copy of `sha` (fetched from `url` as `ref`) at `into`, which must not exist.

        A pull request is fetched as `refs/pull/N/head` from the base repository.
        """
        mirror = self._mirror(repo, ref, sha)
        with self._locked(mirror):
            self._ready(mirror, url, ref, sha, token, move=True)
            try:
                self._link(mirror, sha, into)
            except OSError as e:
                shutil.rmtree(into, ignore_errors=True)
                raise CheckoutFailed(f"cannot make the checkout of {sha[:12]}: {e}") from None
        return into

    def pipeline_files(
        self, repo: str, url: str, ref: str, sha: str, token: str | None
    ) -> dict[str, str]:
        """The commit's pipeline files (path -> text), listed from the mirror (SPEC §13).

        For a tree GitHub's API cuts short (`truncated`): the mirror sees all of it.
        """
        mirror = self._mirror(repo, ref, sha)
        with self._locked(mirror):
            self._ready(mirror, url, ref, sha, token, move=False)
            try:
                listing = _git(mirror, "ls-tree", "-r", "-z", "--full-tree", sha)
                found: dict[str, str] = {}
                for entry in listing.split(b"\0"):
                    if not entry:
                        continue
                    meta, path = entry.split(b"\t", 1)
                    mode, kind, blob = meta.decode().split()
                    name = path.decode("utf-8", "replace")
                    if kind == "blob" and mode != "120000" and is_pipeline_path(name):
                        text = _git(mirror, "cat-file", "blob", blob)
                        found[name] = text.decode("utf-8", "replace")
            except _GitFailed as e:
                why = _last_line(e.stderr, token)
                raise CheckoutFailed(f"cannot list the files of {sha[:12]}: {why}") from None
        return found

    def commit_message(self, repo: str, ref: str, sha: str) -> str:
        """The message of `sha`, which a checkout has brought into the mirror."""
        mirror = self._mirror(repo, ref, sha)
        with self._locked(mirror):
            try:
                raw = _git(mirror, "cat-file", "commit", sha)
            except _GitFailed as e:
                raise CheckoutFailed(
                    f"cannot read commit {sha[:12]}: {_last_line(e.stderr, None)}"
                ) from None
        _, _, message = raw.partition(b"\n\n")
        return message.decode("utf-8", "replace")

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove the least recently used mirrors until all fit in `max_bytes`; the removed.

        The mirror of `keep` stays whatever its size, and so does any mirror a
        build holds the lock of at the moment.
        """
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        with (self.root / "locks" / ".evict").open("a") as guard:
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # another thread or process is evicting
            uses = [self._use(top) for top in sorted(self.root.iterdir()) if "+" in top.name]
            kept = None if keep is None else _key(keep)
            removed = []
            for name in victims(uses, self.max_bytes, kept):
                mirror = self._by_key(name)
                with mirror.lock_file.open("a") as lock:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # in use: it is not the least recently used for long
                    shutil.rmtree(mirror.top, ignore_errors=True)
                    removed.append(name)
                    log.info("evicted the mirror of %s", name.replace("+", "/", 1))
            return removed

    # --- the steps ----------------------------------------------------------------

    def _mirror(self, repo: str, ref: str, sha: str) -> _Mirror:
        if not _NAME.fullmatch(repo) or ".." in repo:
            raise CheckoutFailed(f"not a repository name: {repo!r}")
        if not _REF.fullmatch(ref) or ".." in ref or "//" in ref or ref.endswith(("/", ".lock")):
            raise CheckoutFailed(f"not a ref: {ref!r}")
        if not _SHA.fullmatch(sha):
            raise CheckoutFailed(f"not a commit id: {sha!r}")
        return self._by_key(_key(repo))

    def _by_key(self, key: str) -> _Mirror:
        return _Mirror(self.root / key, self.root / "locks" / f"{key}.lock")

    @contextmanager
    def _locked(self, mirror: _Mirror) -> Iterator[None]:
        mirror.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with mirror.lock_file.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _ready(
        self, mirror: _Mirror, url: str, ref: str, sha: str, token: str | None, move: bool
    ) -> None:
        """The commit in the mirror (and the tree at it, with `move`); a broken mirror redone."""
        for attempt in (1, 2):
            try:
                self._fetch(mirror, url, ref, sha, token)
                if move:
                    self._move(mirror, sha)
                mirror.used.touch()
                return
            except _Broken as e:
                shutil.rmtree(mirror.top, ignore_errors=True)
                if attempt == 2:
                    raise CheckoutFailed(
                        f"cannot check out {sha[:12]} ({ref}): {_last_line(str(e), token)}"
                    ) from None
                log.warning("the mirror of %s is broken (%s): making it again", mirror.top.name,
                            _last_line(str(e), token))  # fmt: skip

    def _fetch(self, mirror: _Mirror, url: str, ref: str, sha: str, token: str | None) -> None:
        try:
            if not (mirror.git_dir / "HEAD").is_file():
                shutil.rmtree(mirror.top, ignore_errors=True)
                mirror.top.mkdir(parents=True)
                _git(mirror, "init", "--quiet", "--bare")
            if self._has(mirror, sha):
                return  # built before, or listed by the announcer: nothing to fetch
        except _GitFailed as e:
            raise _Broken(e.stderr) from None
        try:
            _git(mirror, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", url,
                 f"+{ref}:{ref}", extra_env=_auth_env(token))  # fmt: skip
        except _GitFailed as e:
            if _NOT_THE_MIRROR.search(e.stderr):
                raise CheckoutFailed(
                    f"cannot check out {sha[:12]} ({ref}): {_last_line(e.stderr, token)}"
                ) from None
            raise _Broken(e.stderr) from None
        try:
            there = self._has(mirror, sha)
        except _GitFailed as e:
            raise _Broken(e.stderr) from None
        if not there:
            raise CheckoutFailed(f"cannot check out {sha[:12]}: not in {ref}")

    def _has(self, mirror: _Mirror, sha: str) -> bool:
        try:
            _git(mirror, "cat-file", "-e", f"{sha}^{{commit}}")
        except _GitFailed as e:
            if e.stderr.strip() and "Not a valid object name" not in e.stderr:
                raise  # git could not read the mirror, rather than not finding the commit
            return False
        return True

    def _move(self, mirror: _Mirror, sha: str) -> None:
        """The tree at `sha`: only the files that differ are written (or a lost one again)."""
        mirror.tree.mkdir(exist_ok=True)
        # Under the repository's lock no other git runs here: a lock file is a dead one's.
        (mirror.top / "index.lock").unlink(missing_ok=True)
        try:
            _git(mirror, f"--work-tree={mirror.tree}", "read-tree", "--reset", "-u", sha)
        except _GitFailed as e:
            mirror.index.unlink(missing_ok=True)
            raise _Broken(e.stderr) from None

    def _link(self, mirror: _Mirror, sha: str, into: Path) -> None:
        """The build's working copy: the tree's files linked, a `.git` of its own."""
        shutil.rmtree(into, ignore_errors=True)  # a dead attempt's at this build's id
        into.mkdir(parents=True)
        try:
            listing = _git(mirror, "ls-files", "-z", "--stage")
        except _GitFailed as e:
            raise OSError(errno.EIO, e.stderr.strip()) from None
        made: set[Path] = {into}
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, raw = entry.split(b"\t", 1)
            mode = meta.split(b" ", 1)[0]
            relative = os.fsdecode(raw)
            target = into / relative
            _folders(target.parent, made)
            if mode == b"160000":  # a submodule: an empty folder, as git leaves it
                target.mkdir(exist_ok=True)
                made.add(target)
            elif mode == b"120000":
                os.symlink(os.readlink(mirror.tree / relative), target)
            else:
                _hard_link(mirror.tree / relative, target)
        dot_git = into / ".git"
        (dot_git / "refs").mkdir(parents=True)
        (dot_git / "HEAD").write_text(f"{sha}\n")
        (dot_git / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
        shutil.copyfile(mirror.index, dot_git / "index")
        objects = mirror.git_dir / "objects"
        for folder, _dirs, files in os.walk(objects):
            inside = dot_git / "objects" / Path(folder).relative_to(objects)
            inside.mkdir(parents=True, exist_ok=True)
            for name in files:
                if name != "alternates" and not name.startswith("tmp_"):
                    _hard_link(Path(folder, name), inside / name)

    def _use(self, top: Path) -> MirrorUse:
        try:
            used = (top / "used").stat().st_mtime
        except OSError:
            used = 0.0
        return MirrorUse(top.name, _disk_usage(top), used)


def _key(repo: str) -> str:
    return repo.replace("/", "+", 1)


def _folders(folder: Path, made: set[Path]) -> None:
    if folder in made:
        return
    _folders(folder.parent, made)
    folder.mkdir(exist_ok=True)
    made.add(folder)


def _hard_link(source: Path, target: Path) -> None:
    """`target` the same file as `source`; a copy where the file system cannot link."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, target, follow_symlinks=False)


def _disk_usage(top: Path) -> int:
    """Bytes on disk under `top`, each file once however many links it has here."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total
