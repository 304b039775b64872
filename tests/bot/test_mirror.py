"""Checkouts from a mirror (SPEC §13): bot builds against the fake GitHub's real git over HTTP.

Each test builds through `Builder` (as a queue worker does) on the real
engine, and looks at what git sent over the wire (the fake's log of
upload-pack requests) and at the mirror on disk.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from bot.announce import announce
from bot.checkout import Mirrors
from bot.github_api import GitHubApp
from bot.jobs import Job
from bot.settings import Settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub, GitRequest
from tests.bot.running import build_now, push_job, wait_for

pytestmark = pytest.mark.docker

CHECKS_VERSION = """
test:
  img: dockercise/busybox
  vol: [code]
  run: |
    sleep ${DELAY:-0}
    grep -qx "$WANT" /code/VERSION
    test "$(cat /code/.git/HEAD)" = "$DOCKERCISE_SHA"
    test ! -e /code/stray
"""


def _build(settings: Settings, job: Job) -> str:
    build = build_now(settings, job).get(job.id)
    assert build is not None
    return str(build.state)


def _pipeline(version: str, delay: int = 0) -> dict[str, str]:
    pipeline = CHECKS_VERSION.replace("${DELAY:-0}", str(delay)).replace("$WANT", version)
    return {".dockercise.yml": pipeline, "VERSION": f"{version}\n"}


def _mirror(settings: Settings, repo: str) -> Path:
    return settings.data_dir / "mirrors" / repo.replace("/", "+")


def _fetches(github: FakeGitHub, repo: str) -> list[GitRequest]:
    """The upload-pack requests that carried a pack back (one per fetch)."""
    return [r for r in github.git_requests if repo in r.path and r.objects is not None]


def _many_files(count: int) -> dict[str, str]:
    return {f"src/{i // 50}/file{i}.txt": f"content {i} " * 20 for i in range(count)}


def test_a_second_build_fetches_only_what_is_new(settings: Settings, github: FakeGitHub) -> None:
    files = _many_files(300) | _pipeline("1")
    first = github.push("octo/app", files)
    assert _build(settings, push_job(github, "octo/app", first)) == "success"
    (clone,) = _fetches(github, "octo/app")
    assert clone.haves == 0 and clone.objects is not None and clone.objects > 300
    tree = _mirror(settings, "octo/app") / "tree"
    untouched = (tree / "src/0/file0.txt").stat().st_ino

    second = github.push("octo/app", _pipeline("2"))  # VERSION and the pipeline change
    assert _build(settings, push_job(github, "octo/app", second)) == "success"
    fetch = _fetches(github, "octo/app")[-1]
    assert fetch.haves >= 1  # the mirror told the server what it had
    # The new commit, its root tree and the two changed blobs: nothing of the 300 files.
    assert fetch.objects == 4, fetch
    assert fetch.pack_bytes < clone.pack_bytes / 20
    assert (tree / "src/0/file0.txt").stat().st_ino == untouched  # not written again
    assert (tree / "VERSION").read_text() == "2\n"


def test_the_same_commit_again_fetches_nothing(settings: Settings, github: FakeGitHub) -> None:
    sha = github.push("octo/app", _pipeline("1"))
    assert _build(settings, push_job(github, "octo/app", sha)) == "success"
    assert (
        _build(settings, push_job(github, "octo/app", sha, id="b-again", delivery="d-again"))
        == "success"
    )
    assert len(_fetches(github, "octo/app")) == 1


def test_concurrent_builds_take_turns_only_on_the_fetch(
    settings: Settings, github: FakeGitHub
) -> None:
    """A slow build of one commit keeps its files while a quick one moves the tree on."""
    slow_sha = github.push("octo/app", _pipeline("1", delay=6))
    quick_sha = github.push("octo/app", _pipeline("2"))
    slow = push_job(github, "octo/app", slow_sha)
    outcome: dict[str, str] = {}
    thread = threading.Thread(target=lambda: outcome.update(slow=_build(settings, slow)))
    thread.start()
    try:
        # The slow build's checkout is made once its pipeline is running.
        wait_for(lambda: any(s["description"] == "build running"
                             for s in github.statuses_for(slow_sha)), 60)  # fmt: skip
        assert _build(settings, push_job(github, "octo/app", quick_sha)) == "success"
        assert thread.is_alive()  # the quick build did not wait for the slow one
    finally:
        thread.join(120)
    assert outcome == {"slow": "success"}  # it still saw VERSION 1 after the tree moved to 2
    assert (_mirror(settings, "octo/app") / "tree" / "VERSION").read_text() == "2\n"


def test_concurrent_builds_of_one_repository_all_get_their_commit(
    settings: Settings, github: FakeGitHub
) -> None:
    shas = [github.push("octo/app", _pipeline(str(n))) for n in range(4)]
    results: list[str] = []

    def build(sha: str) -> None:
        results.append(_build(settings, push_job(github, "octo/app", sha)))

    threads = [threading.Thread(target=build, args=(sha,)) for sha in shas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert results == ["success"] * 4


def _corrupt_packs(git_dir: Path) -> None:
    for pack in (git_dir / "objects" / "pack").glob("*.pack"):
        pack.chmod(0o644)
        size = pack.stat().st_size
        with pack.open("r+b") as f:
            f.seek(12)
            f.write(os.urandom(size - 32))


def _delete_objects(git_dir: Path) -> None:
    for pack in (git_dir / "objects" / "pack").iterdir():
        pack.unlink()


def _garble_config(git_dir: Path) -> None:
    (git_dir / "config").write_text("[core\nthis is not a config\n")


@pytest.mark.parametrize("damage", [_corrupt_packs, _delete_objects, _garble_config])
@pytest.mark.parametrize("same_commit", [False, True])
def test_a_broken_mirror_is_made_again_and_the_build_passes(
    settings: Settings, github: FakeGitHub, damage: object, same_commit: bool
) -> None:
    first = github.push("octo/app", _many_files(50) | _pipeline("1"))
    assert _build(settings, push_job(github, "octo/app", first)) == "success"
    git_dir = _mirror(settings, "octo/app") / "git"
    damage(git_dir)  # type: ignore[operator]
    second = first if same_commit else github.push("octo/app", _pipeline("2"))
    assert (
        _build(settings, push_job(github, "octo/app", second, id="b-after", delivery="d-after"))
        == "success"
    )
    subprocess.run(["git", "--git-dir", str(git_dir), "fsck", "--strict"], check=True,
                   capture_output=True)  # fmt: skip
    assert _fetches(github, "octo/app")[-1].haves == 0  # fetched afresh


def test_a_tampered_tree_is_put_right(settings: Settings, github: FakeGitHub) -> None:
    first = github.push("octo/app", _pipeline("1") | {"other": "x\n"})
    assert _build(settings, push_job(github, "octo/app", first)) == "success"
    tree = _mirror(settings, "octo/app") / "tree"
    (tree / "VERSION").write_text("tampered\n")
    (tree / "other").unlink()
    (tree / "stray").write_text("not in any commit\n")
    second = github.push("octo/app", {"more": "y\n"})  # VERSION unchanged: still "1"
    assert _build(settings, push_job(github, "octo/app", second)) == "success"
    assert (tree / "VERSION").read_text() == "1\n" and (tree / "other").exists()


def test_mirrors_past_the_limit_are_evicted_least_recently_used_first(
    settings: Settings, github: FakeGitHub
) -> None:
    tiny = replace(settings, mirror_max=1024)
    for repo in ("octo/one", "octo/two"):
        sha = github.push(repo, _pipeline("1"))
        assert _build(tiny, push_job(github, repo, sha)) == "success"
    assert not _mirror(settings, "octo/one").exists()  # least recently used, and over
    assert (_mirror(settings, "octo/two") / "git").is_dir()  # just used: kept, even if over
    sha = github.push("octo/one", _pipeline("2"))
    assert _build(tiny, push_job(github, "octo/one", sha)) == "success"  # made again
    assert not _mirror(settings, "octo/two").exists()


def test_mirrors_within_the_limit_stay(settings: Settings, github: FakeGitHub) -> None:
    for repo in ("octo/one", "octo/two"):
        sha = github.push(repo, _pipeline("1"))
        assert _build(settings, push_job(github, repo, sha)) == "success"
    assert _mirror(settings, "octo/one").exists() and _mirror(settings, "octo/two").exists()


ATTACKS = """
write-code:
  img: dockercise/busybox
  vol: [code]
  run: |
    for f in /code/VERSION /code/.git/HEAD /code/.git/new; do
      if echo pwned > $f; then echo "wrote $f"; exit 1; fi
    done
    if chmod 777 /code/VERSION; then exit 1; fi
    for p in /code/.git/objects/pack/*.pack; do
      if dd if=/dev/zero of=$p bs=1 count=8 conv=notrunc; then exit 1; fi
    done
    echo refused
on-code:
  img: dockercise/busybox
  on: code
  run: |
    echo pwned > VERSION
    chmod 666 .git/objects/pack/*
    for p in .git/objects/pack/*; do echo pwned > $p; done
    echo pwned > .git/HEAD
    rm -rf src
"""


def test_a_stage_cannot_write_the_checkout(settings: Settings, github: FakeGitHub) -> None:
    files = _many_files(20) | _pipeline("1")
    first = github.push("octo/app", files | {".dockercise.yml": ATTACKS})
    assert _build(settings, push_job(github, "octo/app", first)) == "success"
    mirror = _mirror(settings, "octo/app")
    assert (mirror / "tree" / "VERSION").read_text() == "1\n"
    assert (mirror / "tree" / "src" / "0" / "file0.txt").read_text() == files["src/0/file0.txt"]
    subprocess.run(["git", "--git-dir", str(mirror / "git"), "fsck", "--strict"], check=True,
                   capture_output=True)  # fmt: skip
    # The next build's checkout is whole: same VERSION, a .git at its own commit.
    second = github.push("octo/app", {".dockercise.yml": _pipeline("1")[".dockercise.yml"]})
    assert _build(settings, push_job(github, "octo/app", second)) == "success"
    assert len(_fetches(github, "octo/app")) == 2 and _fetches(github, "octo/app")[-1].haves


def test_the_checkout_holds_no_credentials_and_refers_to_nothing_outside(
    settings: Settings, github: FakeGitHub, tmp_path: Path
) -> None:
    sha = github.push("octo/app", _pipeline("1"))
    into = tmp_path / "checkout"
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    token = app.installation("octo/app", github.installation_id).token
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    mirrors.checkout("octo/app", github.clone_url("octo/app"), "refs/heads/main", sha, into, token)
    for root in (into, settings.data_dir):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert token.encode() not in path.read_bytes(), path
    assert not (into / ".git" / "objects" / "info" / "alternates").exists()
    git = ["git", "-c", f"safe.directory={into}", "-C", str(into)]
    assert subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip() == sha  # fmt: skip
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert status.stdout == ""  # the index matches the files
    subprocess.run([*git, "fsck", "--strict"], check=True, capture_output=True)
    (settings.data_dir / "mirrors").rename(tmp_path / "gone")  # the checkout stands alone
    subprocess.run([*git, "log", "--oneline", "-1"], check=True, capture_output=True)


@pytest.mark.parametrize(
    ("repo", "ref", "sha"),
    [
        ("../etc", "refs/heads/main", "a" * 40),
        ("octo/app", "--upload-pack=touch /tmp/x", "a" * 40),
        ("octo/app", "refs/heads/../../x", "a" * 40),
        ("octo/app", "refs/heads/main", "HEAD"),
    ],
)
def test_hostile_names_are_refused(
    settings: Settings, github: FakeGitHub, tmp_path: Path, repo: str, ref: str, sha: str
) -> None:
    from bot.checkout import CheckoutFailed

    mirrors = Mirrors(tmp_path / "mirrors", 1 << 30)
    with pytest.raises(CheckoutFailed):
        mirrors.checkout(repo, github.clone_url("octo/app"), ref, sha, tmp_path / "c", None)
    assert not (tmp_path / "c").exists()


def test_only_http_urls_are_fetched(settings: Settings, github: FakeGitHub, tmp_path: Path) -> None:
    from bot.checkout import CheckoutFailed

    sha = github.push("octo/app", _pipeline("1"))
    local = str(github.repos / "octo" / "app.git")
    mirrors = Mirrors(tmp_path / "mirrors", 1 << 30)
    with pytest.raises(CheckoutFailed):
        mirrors.checkout("octo/app", local, "refs/heads/main", sha, tmp_path / "c", None)


def test_a_truncated_tree_is_listed_from_the_mirror(
    settings: Settings, github: FakeGitHub, tmp_path: Path
) -> None:
    """GitHub cuts the tree before the pipeline file: the announcer still finds it."""
    pipeline = "test: {img: dockercise/busybox, run: 'true'}\n"
    sha = github.push("octo/big", _many_files(40) | {"zz/deep/.dockercise.yml": pipeline})
    github.truncated["octo/big"] = 5
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    assert (
        app.installation("octo/big", github.installation_id).pipeline_files("octo/big", sha) is None
    )
    state = SqliteState(settings.data_dir / "state.db")
    job = push_job(github, "octo/big", sha)
    state.record(job)
    queued: list[Job] = []
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    assert announce(app, state, queued.append, job, mirrors) == "announced"
    assert [j.id for j in queued] == [job.id]
    assert [s["description"] for s in github.statuses_for(sha)] == ["build queued"]
    # The build's checkout then finds the commit already in the mirror.
    assert _build(settings, job) == "success"
    assert len(_fetches(github, "octo/big")) == 1


def test_a_truncated_tree_without_a_pipeline_builds_nothing(
    settings: Settings, github: FakeGitHub
) -> None:
    sha = github.push("octo/big", _many_files(40))
    github.truncated["octo/big"] = 5
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    state = SqliteState(settings.data_dir / "state.db")
    job = push_job(github, "octo/big", sha)
    state.record(job)
    queued: list[Job] = []
    mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)
    assert announce(app, state, queued.append, job, mirrors) == "none"
    assert queued == [] and github.statuses_for(sha) == []
