"""The pure parts of caches (SPEC §13): keys, scopes, the choice of a cache, archive members."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runner import caching
from runner.cacheio import ArchiveRefused, extract, make_archive
from runner.caching import Entry, Scope, choose, entry_name, member_problem, scope_for, slot

REPO = "owner/repo"


def test_keys_part_repository_stage_path_and_key_files() -> None:
    base = slot(REPO, "test", "/app/.venv")
    assert base != slot("owner/other", "test", "/app/.venv")
    assert base != slot(REPO, "lint", "/app/.venv")
    assert base != slot(REPO, "test", "/app/node_modules")
    assert slot("Owner/Repo", "test", "/app/.venv") == base  # GitHub names ignore case
    one = caching.content_key([("a.lock", "1"), ("b.lock", "2")])
    assert one == caching.content_key([("b.lock", "2"), ("a.lock", "1")])
    assert one != caching.content_key([("a.lock", "1"), ("b.lock", "3")])
    assert caching.content_key([]) == caching.NO_KEY_FILES
    # A stage name cannot spell its way into another slot with separators.
    assert slot(REPO, "a", "/b/c") != slot(REPO, "a/b", "/c")


@pytest.mark.parametrize(
    ("kwargs", "read", "write", "keep"),
    [
        (
            {"branch": "main", "default_branch": "main"},
            ("refs/heads/main",),
            "refs/heads/main",
            True,
        ),
        (
            {"branch": "feature", "default_branch": "main"},
            ("refs/heads/feature", "refs/heads/main"),
            "refs/heads/feature",
            False,
        ),
        (
            {"branch": "feature", "default_branch": "main", "pull_request": 7, "base": "release"},
            ("refs/pull/7", "refs/heads/release", "refs/heads/main"),
            "refs/pull/7",
            False,
        ),
        (
            {"branch": "x", "default_branch": "main", "pull_request": 7, "base": "main"},
            ("refs/pull/7", "refs/heads/main"),
            "refs/pull/7",
            False,
        ),
        (
            {"branch": "main", "default_branch": "main", "pull_request": 7, "fork": True},
            ("refs/heads/main",),
            None,
            False,
        ),
        ({"branch": "x", "default_branch": None, "fork": True}, (), None, False),
    ],
)
def test_scopes_are_branches(
    kwargs: dict[str, object], read: tuple[str, ...], write: str | None, keep: bool
) -> None:
    scope = scope_for(REPO, **kwargs)  # type: ignore[arg-type]
    assert (scope.read, scope.write, scope.keep_layers) == (read, write, keep)


def _entries(scope_ref: str, key: str, modified: float, the_slot: str = "s") -> Entry:
    return Entry(entry_name(REPO, scope_ref, the_slot, key), 10, modified)


def test_exact_key_first_in_read_order_then_the_newest_of_the_first_scope_with_any() -> None:
    scope = Scope(REPO, ("refs/heads/f", "refs/heads/main"), "refs/heads/f")
    main_exact = _entries("refs/heads/main", "k", 1)
    own_old = _entries("refs/heads/f", "old", 5)
    own_newer = _entries("refs/heads/f", "newer", 6)
    main_newest = _entries("refs/heads/main", "newest", 9)
    other_slot = _entries("refs/heads/f", "k", 99, the_slot="t")
    listed = [main_exact, own_old, own_newer, main_newest, other_slot]
    chosen, exact = choose(scope, "s", "k", listed)
    assert chosen is not None and chosen.entry == main_exact and chosen.exact and exact
    chosen, exact = choose(scope, "s", "missing", listed)
    assert chosen is not None and chosen.entry == own_newer and not chosen.exact and not exact
    chosen, _ = choose(scope, "s", "missing", [main_newest, other_slot])
    assert chosen is not None and chosen.entry == main_newest
    assert choose(scope, "s", "k", [other_slot]) == (None, False)
    # What no scope it reads holds is never chosen: another branch's, another repository's.
    elsewhere = _entries("refs/pull/3", "k", 50)
    foreign = Entry(entry_name("other/repo", "refs/heads/f", "s", "k"), 1, 60)
    assert choose(scope, "s", "k", [elsewhere, foreign]) == (None, False)


def test_saved_when_writable_and_new_or_changed() -> None:
    writes = Scope(REPO, ("x",), "x")
    reads = Scope(REPO, ("x",), None)
    assert caching.should_save(writes, exact_exists=False, restored_exact=False, changed=False)
    assert not caching.should_save(writes, exact_exists=True, restored_exact=True, changed=False)
    assert caching.should_save(writes, exact_exists=True, restored_exact=True, changed=True)
    assert not caching.should_save(reads, exact_exists=False, restored_exact=False, changed=True)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "bad"),
    [
        (_member("a/b.txt"), False),
        (_member("a", tarfile.DIRTYPE), False),
        (_member("a/link", tarfile.SYMTYPE, "../b"), False),
        (_member("a/hard", tarfile.LNKTYPE, "a/b.txt"), False),
        (_member("/etc/passwd"), True),
        (_member("../escape"), True),
        (_member("a/../../escape"), True),
        (_member("a/link", tarfile.SYMTYPE, "/etc"), True),
        (_member("a/link", tarfile.SYMTYPE, "../../etc"), True),
        (_member("link", tarfile.SYMTYPE, ".."), True),
        (_member("hard", tarfile.LNKTYPE, "../x"), True),
        (_member("dev", tarfile.CHRTYPE), True),
        (_member("fifo", tarfile.FIFOTYPE), True),
        (_member(""), True),
    ],
)
def test_archive_members(member: tarfile.TarInfo, bad: bool) -> None:
    assert (member_problem(member) is not None) == bad


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def test_a_hostile_archive_writes_nothing_anywhere(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    archive = tmp_path / "evil.tar"
    _archive(
        archive,
        (_member("ok.txt"), b"fine"),
        (_member("link", tarfile.SYMTYPE, ".."), b""),
        (_member("link/escaped.txt"), b"owned"),
    )
    with pytest.raises(ArchiveRefused):
        extract(archive, target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_an_archive_round_trips_with_links_inside(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("x = 1")
    (source / "bin").symlink_to("pkg")
    (source / "out").symlink_to("/etc/passwd")  # never saved: it would be refused
    archive = tmp_path / "a.tar"
    make_archive(source, archive)
    target = tmp_path / "dst"
    target.mkdir()
    extract(archive, target)
    assert (target / "bin" / "mod.py").read_text() == "x = 1"
    assert (target / "bin").is_symlink()
    assert not (target / "out").exists() and not (target / "out").is_symlink()
