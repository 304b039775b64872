"""Caches between runs and kept image layers (SPEC §13), against the real engine and S3 (moto).

What a user relies on: a cache restored by its exact key, else the newest of
its slot; saved only when new or changed; an archive that would write
outside its path refused; caches shared by two workers through S3 and
bounded by DOCKERCISE_CACHE_MAX; a `build` stage starting from its last
kept layers, which no other repository may name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from runner import caching, pruning
from runner.cachestore import CacheStore
from runner.caching import DAY
from runner.containers import Containers
from runner.engine import Engine, RunOptions, prepare
from runner.outcome import RunResult, Status
from runner.pipeline import load
from runner.store.local import LocalStore
from tests.bot.running import wait_for
from tests.integration.conftest import IMAGE, Outcome, S3Bucket
from tests.runner.conftest import RecordingReporter

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]
Project = Callable[..., Path]

KEYED = f"""
fill:
  img: {IMAGE}
  cache:
    - path: /deps
      key: deps.lock
  run: |
    echo "before: $(cat /deps/made 2>/dev/null || echo none)"
    [ -f /deps/made ] || cat /code/deps.lock > /deps/made
  vol: [code]
"""


def _runs(root: Path) -> list[Path]:
    return sorted((root / ".dockercise" / "results" / "run").iterdir())


def _last(root: Path, stage: str) -> tuple[dict[str, Any], str]:
    run = _runs(root)[-1]
    data = json.loads((run / f"{stage}.json").read_text())
    return data, (run / f"{stage}.log").read_text()


def test_restored_by_key_saved_when_new_and_fallen_back_when_the_key_changes(
    project: Project, dockercise: Run
) -> None:
    root = project(KEYED)
    (root / "deps.lock").write_text("v1\n")
    assert dockercise(root, "run").code == 0
    first, log = _last(root, "fill")
    (cache,) = first["cache"]
    assert cache["path"] == "/deps" and cache["restored"] is None and cache["saved"] is True
    assert cache["bytes"] > 0 and "before: none" in log
    assert "cache /deps: saved (key " in log

    assert dockercise(root, "run").code == 0
    second, log = _last(root, "fill")
    assert second["cache"][0]["restored"] == "exact" and second["cache"][0]["saved"] is False
    assert second["cache"][0]["key"] == cache["key"]
    assert "before: v1" in log and "cache /deps: restored exact (key " in log

    (root / "deps.lock").write_text("v2\n")
    assert dockercise(root, "run").code == 0
    third, log = _last(root, "fill")
    assert third["cache"][0]["key"] != cache["key"]
    assert third["cache"][0]["restored"] == "fallback" and third["cache"][0]["saved"] is True
    assert "before: v1" in log  # the newest cache of the same stage and path
    started, finished = third["started"], third["finished"]
    assert started < finished


def test_a_failed_stage_saves_nothing(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        broken:
          img: {IMAGE}
          cache: /c
          run: echo half > /c/file; exit 1
        """
    )
    assert dockercise(root, "run").code == 1
    data, _ = _last(root, "broken")
    assert data["cache"][0]["saved"] is False
    assert not list((root / ".dockercise" / "cache").rglob("*.tar"))


def _planted(root: Path, stage: str, path: str, members: list[tarfile.TarInfo]) -> Path:
    """Put a hand-made archive where the local run's exact key for (stage, path) is."""
    scope = caching.local_scope(str(root.resolve()))
    name = caching.entry_name(
        scope.repo, caching.LOCAL, caching.slot(scope.repo, stage, path), caching.NO_KEY_FILES
    )
    target = root / ".dockercise" / "cache" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w") as tar:
        for info in members:
            data = b"pwned\n" if info.isreg() else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return target


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "members",
    [
        [_info("ok"), _info("../../escaped")],
        [_info("/tmp/escaped-abs")],
        [_info("up", tarfile.SYMTYPE, "../../.."), _info("up/escaped")],
        [_info("out", tarfile.SYMTYPE, "/etc")],
        [_info("null", tarfile.CHRTYPE)],
    ],
    ids=["dotdot", "absolute", "through-a-link", "link-out", "device"],
)
def test_an_archive_trying_to_write_outside_its_path_is_refused(
    project: Project, dockercise: Run, tmp_path: Path, members: list[tarfile.TarInfo]
) -> None:
    root = project(
        f"""
        use:
          img: {IMAGE}
          cache: /c
          run: ls -la /c; test ! -e /c/ok
        """
    )
    _planted(root, "use", "/c", members)
    outcome = dockercise(root, "run")
    assert outcome.code == 0, outcome.out
    data, log = _last(root, "use")
    assert data["cache"][0]["restored"] is None
    assert "archive refused" in log
    assert not list(tmp_path.rglob("escaped*")) and not Path("/tmp/escaped-abs").exists()


def test_a_stage_cannot_save_links_out_or_devices(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        plant:
          img: {IMAGE}
          cache: /c
          run: |
            ln -s /etc/shadow /c/shadow
            ln -s ../../../.. /c/up
            mknod /c/null c 1 3 || true
            mkfifo /c/fifo
            echo fine > /c/file
            ln -s file /c/inside
        """
    )
    assert dockercise(root, "run").code == 0
    (archive,) = (root / ".dockercise" / "cache").rglob("*.tar")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["file", "inside"]


def test_evicted_least_recently_used_first(
    project: Project, dockercise: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERCISE_CACHE_MAX", "1500k")
    root = project(
        f"""
        first:
          img: {IMAGE}
          cache: /a
          run: head -c 1000000 /dev/zero > /a/blob
        second:
          img: {IMAGE}
          cache: /b
          run: head -c 1000000 /dev/zero > /b/blob
        """
    )
    assert dockercise(root, "run", "first").code == 0
    assert dockercise(root, "run", "second").code == 0
    kept = list((root / ".dockercise" / "cache").rglob("*.tar"))
    assert len(kept) == 1 and sum(p.stat().st_size for p in kept) <= 1500 * 1024
    assert dockercise(root, "run", "second").code == 0
    second, _ = _last(root, "second")
    assert second["cache"][0]["restored"] == "exact"
    assert dockercise(root, "run", "first").code == 0
    first, _ = _last(root, "first")
    assert first["cache"][0]["restored"] is None  # evicted, the least recently used


# --- scopes and workers, through the engine --------------------------------------------------


def _engine_run(root: Path, store: CacheStore, scope: caching.Scope) -> RunResult:
    loaded = load(root)
    assert loaded is not None
    options = RunOptions(cache_store=store, cache_scope=scope, variables=[dict(os.environ)])
    containers = Containers()
    try:
        return Engine(containers, LocalStore(root / "results"), RecordingReporter()).run(
            prepare(loaded, options)
        )
    finally:
        containers.close()


APPEND = f"""
note:
  img: {IMAGE}
  cache: /c
  run: cat /c/seen 2>/dev/null; echo "$MARK" >> /c/seen
  env: [mark]
"""


def test_shared_between_two_workers_through_s3(
    project: Project, s3: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(APPEND)
    url = s3.url("caches")
    scope = caching.scope_for("octo/app", branch="main", default_branch="main")
    monkeypatch.setenv("MARK", "worker-one")
    one = CacheStore(tmp_path / "worker-one", url=url)
    run = _engine_run(root, one, scope)
    assert run.status is Status.SUCCESS
    assert run.stages["note"].cache and run.stages["note"].cache[0]["saved"] is True
    assert any(key.startswith("caches/") and key.endswith(".tar") for key in s3.listing())

    monkeypatch.setenv("MARK", "worker-two")
    two = CacheStore(tmp_path / "worker-two", url=url)
    run = _engine_run(root, two, scope)
    assert run.stages["note"].cache and run.stages["note"].cache[0]["restored"] == "exact"
    assert run.outputs["note"] == "worker-one"
    one.close()
    two.close()


def test_scoped_by_branch(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(APPEND)
    store = CacheStore(tmp_path / "cache")

    def build(mark: str, **scope: Any) -> RunResult:
        monkeypatch.setenv("MARK", mark)
        return _engine_run(
            root, store, caching.scope_for("octo/app", default_branch="main", **scope)
        )

    build("main-1", branch="main")
    feature = build("feature-1", branch="feature")
    assert feature.outputs["note"] == "main-1"  # read the default branch's
    assert feature.stages["note"].cache and feature.stages["note"].cache[0]["saved"] is True
    pr = build("pr-1", branch="other", pull_request=4, base="feature")
    assert pr.outputs["note"] == "main-1\nfeature-1"  # its base branch's first
    fork = build("fork-1", branch="main", pull_request=5, fork=True)
    assert fork.outputs["note"] == "main-1"
    assert fork.stages["note"].cache and fork.stages["note"].cache[0]["saved"] is False
    main = build("main-2", branch="main")
    assert main.outputs["note"] == "main-1"  # no branch, pull request or fork wrote main's
    other_repo = _engine_run(
        root, store, caching.scope_for("octo/other", branch="main", default_branch="main")
    )
    assert other_repo.outputs["note"] == ""


# --- layers --------------------------------------------------------------------------------------

SLOW = f"FROM {IMAGE}\nRUN sleep 4 && echo slow > /slow\n"


@pytest.fixture
def kept_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_image(name, force=True)


def test_a_build_stage_reuses_its_kept_layers_and_no_other_repository_may(
    project: Project,
    dockercise: Run,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    kept_images: list[str],
) -> None:
    root = project(
        """
        image:
          build: Dockerfile
        use:
          img: image
          run: cat /slow
        """
    )
    (root / "Dockerfile").write_text(SLOW)
    kept = caching.kept_image(f"local:{root.resolve()}", "image")
    kept_images.append(kept)
    assert dockercise(root, "run").code == 0
    info = docker_client.api.inspect_image(kept)  # type: ignore[no-untyped-call]
    labels = info["Config"]["Labels"]
    assert labels["dockercise.cache.repo"] == f"local:{root.resolve()}"
    # It names no owner: no sweep (of any version) takes it for a dead run's leftover.
    assert labels["dockercise.run"] == "" and labels["dockercise.owner.pid"] == ""
    _, log = _last(root, "image")
    assert "Using cache" not in log

    outcome = dockercise(root, "run")
    assert outcome.code == 0
    _, log = _last(root, "image")
    assert "reusing the layers" in log and "Using cache" in log
    # Every step the cache's, its labels' too: not one made a container (`Running in`).
    assert "Running in" not in log, log
    assert docker_client.api.inspect_image(kept)["Id"] == info["Id"]  # type: ignore[no-untyped-call]
    # The run's clean-up and the recovery sweep leave the kept image alone.
    docker_client.api.inspect_image(kept)  # type: ignore[no-untyped-call]
    from runner.recovery import sweep_here

    containers = Containers()
    try:
        sweep_here(containers, {})
        found = containers.labelled("dockercise.run")
    finally:
        containers.close()
    assert info["Id"] not in {thing.id for thing in found}
    docker_client.api.inspect_image(kept)  # type: ignore[no-untyped-call]

    # A run's built image may be the kept image itself (an unchanged Dockerfile): another
    # run's is refused too, by any spelling of the name.
    runs = _runs(root)
    theirs = json.loads((runs[-1] / "use.json").read_text())["image"]
    assert theirs.startswith(f"dockercise-build:{runs[-1].name}-")
    other = project(
        f"""
        steal:
          img: {kept}
          run: cat /slow
        spelled:
          img: docker.io/{kept}
          run: cat /slow
        built:
          img: {theirs}
          run: cat /slow
        from:
          build: Dockerfile
        from-built:
          build: other.Dockerfile
        """,
        root=tmp_path / "other",
    )
    (other / "Dockerfile").write_text(f"FROM {kept}\nRUN cat /slow\n")
    (other / "other.Dockerfile").write_text(f"FROM {theirs}\nRUN cat /slow\n")
    outcome = dockercise(other, "run")
    assert outcome.code == 1
    for stage in ("steal", "spelled"):
        steal, _ = _last(other, stage)
        assert steal["status"] == "failure" and "kept for another repository" in steal["reason"]
    steal, _ = _last(other, "built")
    assert steal["status"] == "failure" and "another run's build" in steal["reason"]
    built, _ = _last(other, "from")
    assert built["status"] == "failure" and "kept for another repository" in built["reason"]
    built, _ = _last(other, "from-built")
    assert built["status"] == "failure" and "another run's built image" in built["reason"]


def test_a_failed_build_removes_only_the_layers_it_made(
    project: Project,
    dockercise: Run,
    docker_client: docker.DockerClient,
    kept_images: list[str],
) -> None:
    """A failed build's own layers go at once; its base image and the layers it took from the
    cache (the kept image itself, since a build of an unchanged Dockerfile *is* that image)
    are other builds' and stay."""
    base = f"dockercise-test-base:{os.getpid()}-{secrets.token_hex(4)}"
    kept_images.append(base)
    docker_client.images.build(
        fileobj=io.BytesIO(f"FROM {IMAGE}\nRUN echo base > /base\n".encode()), tag=base, rm=True
    )
    root = project(
        """
        image:
          build: Dockerfile
        """
    )
    kept = caching.kept_image(f"local:{root.resolve()}", "image")
    kept_images.append(kept)
    (root / "Dockerfile").write_text(f"FROM {base}\nRUN echo made > /made\n")
    assert dockercise(root, "run").code == 0
    kept_id = docker_client.api.inspect_image(kept)["Id"]  # type: ignore[no-untyped-call]

    (root / "Dockerfile").write_text(f"FROM {base}\nRUN echo made > /made\nRUN false\n")
    assert dockercise(root, "run").code == 1
    _, log = _last(root, "image")
    assert "Using cache" in log
    assert docker_client.api.inspect_image(kept)["Id"] == kept_id  # type: ignore[no-untyped-call]
    docker_client.api.inspect_image(base)  # type: ignore[no-untyped-call]

    (root / "Dockerfile").write_text(f"FROM {base}\nRUN echo other > /other\nRUN false\n")
    assert dockercise(root, "run").code == 1
    _, log = _last(root, "image")
    made = re.search(r"RUN echo other.*?intermediate container \w+\n ---> (\w+)", log, re.S)
    assert made is not None, log
    layer = made.group(1)
    docker_client.api.inspect_image(base)  # type: ignore[no-untyped-call]
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.api.inspect_image(layer)  # type: ignore[no-untyped-call]


# --- eviction ------------------------------------------------------------------------------------


def test_kept_images_unused_for_days_are_pruned_and_a_build_counts_as_a_use(
    project: Project, dockercise: Run, kept_images: list[str]
) -> None:
    root = project(
        """
        image:
          build: Dockerfile
        """
    )
    (root / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo pruned > /pruned\n")
    kept = caching.kept_image(f"local:{root.resolve()}", "image")
    kept_images.append(kept)

    class OnlyThisTest(Containers):
        """The real engine, its kept images but this test's hidden: other tests' kept images
        share the engine, and pruning as if days had passed must not touch them."""

        def kept_images(self) -> list[caching.KeptImage]:
            return [k for k in super().kept_images() if k.name == kept]

    before = time.time() - 1
    assert dockercise(root, "run").code == 0
    containers = OnlyThisTest()
    try:
        (made,) = containers.kept_images()
        assert made.repo == f"local:{root.resolve()}" and made.used >= before
        assert pruning.prune_kept(containers, 7, local=True, now=made.used + 6 * DAY) == []
        assert pruning.prune_kept(containers, 7, local=False, now=made.used + 30 * DAY) == []

        def used_again() -> caching.KeptImage | None:
            assert dockercise(root, "run").code == 0
            (now,) = containers.kept_images()
            return now if now.used > made.used else None

        used = wait_for(used_again, seconds=60)  # the engine's clock may tick coarsely
        _, log = _last(root, "image")
        assert "reusing the layers" in log

        assert pruning.prune_kept(containers, 7, local=True, now=used.used + 8 * DAY) == [kept]
        assert not containers.has_image(kept)
    finally:
        containers.close()
    assert dockercise(root, "run").code == 0
    _, log = _last(root, "image")
    assert "reusing the layers" not in log  # pruned: built from scratch, and kept again


def test_shared_caches_are_evicted_unused_for_days_and_least_recently_used_past_the_bound(
    s3: S3Bucket, tmp_path: Path
) -> None:
    url = s3.url("caches")
    one = CacheStore(tmp_path / "one", limit=1500, url=url)
    two = CacheStore(tmp_path / "two", limit=1500, url=url)
    names = {"a": "r/s/slot/a.tar", "b": "r/s/slot/b.tar"}
    for letter, name in names.items():
        archive = tmp_path / f"{letter}.tar"
        archive.write_bytes(letter.encode() * 1000)
        one.save(name, archive)

    def a_used_after_b_was_saved() -> bool:
        assert two.fetch(names["a"]) is not None  # another worker restores it: a use
        times = {
            o["Key"]: o["LastModified"]
            for o in s3.client.list_objects_v2(Bucket=s3.name)["Contents"]
        }
        return bool(times["caches/r/s/slot/a.tar.used"] > times["caches/r/s/slot/b.tar"])

    wait_for(a_used_after_b_was_saved, seconds=30)  # S3 times are to the second
    assert one.tidy() == [names["b"]]  # the least recently used, past 1500 bytes
    assert s3.listing("caches/") == ["caches/r/s/slot/a.tar", "caches/r/s/slot/a.tar.used"]
    assert one.tidy() == []  # pruned within the hour: not due again
    assert one.prune_shared(now=time.time() + 6 * DAY) == []
    assert one.prune_shared(now=time.time() + 8 * DAY) == [names["a"]]
    assert s3.listing("caches/") == []
    one.close()
    two.close()
