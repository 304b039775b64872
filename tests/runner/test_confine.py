"""Host paths and build contexts checked where they are used (SPEC §10), on real files and
links; the engine's own check before each container, on the fake backend."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from runner.confine import build_paths, host_path
from runner.errors import Refused
from runner.outcome import Status
from runner.plan import build_tag
from tests.conftest import WritePipeline
from tests.runner.conftest import MakeRun

# --- host paths -------------------------------------------------------------------------


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    top = tmp_path / "allowed"
    (top / "data" / "deep").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host secret\n")
    return top


def test_a_real_path_under_an_allowed_folder_is_mounted_as_it_is(allowed: Path) -> None:
    assert host_path(allowed / "data" / "deep", [str(allowed)]) == allowed / "data" / "deep"
    assert host_path(allowed, [str(allowed) + "/"]) == allowed
    assert host_path(allowed / "not-yet", [str(allowed)]) == allowed / "not-yet"


@pytest.mark.parametrize(
    ("link", "target", "mounted"),
    [
        ("link", "../outside", "link"),  # the source is a link
        ("link", "../outside", "link/secret"),  # it passes through one
        ("data/link", "deep", "data/link"),  # a link that stays inside is refused too
        ("data/link", "/etc", "data/link"),
        ("data/li\nnk\x1b[2J", "/etc", "data/li\nnk\x1b[2J"),  # still one line
    ],
)
def test_a_link_on_the_way_is_refused(allowed: Path, link: str, target: str, mounted: str) -> None:
    (allowed / link).symlink_to(target)
    with pytest.raises(Refused, match="is or passes through a symbolic link") as caught:
        host_path(allowed / mounted, [str(allowed)])
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_a_path_outside_every_allowed_folder_is_refused(allowed: Path, tmp_path: Path) -> None:
    sibling = tmp_path / "allowed-not"  # shares the prefix, not the folder
    sibling.mkdir()
    for path in (sibling, tmp_path / "outside", allowed.parent):
        with pytest.raises(Refused, match="DOCKERCISE_ALLOWED_HOST_PATHS"):
            host_path(path, [str(allowed)])
    with pytest.raises(Refused):
        host_path(allowed, [])


def test_an_allowed_folder_reached_through_a_link_allows_nothing(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "x").mkdir(parents=True)
    (tmp_path / "listed").symlink_to(real)
    with pytest.raises(Refused, match="symbolic link"):
        host_path(tmp_path / "listed" / "x", [str(tmp_path / "listed")])


def test_the_engine_checks_host_paths_right_before_each_container(
    fake_run: MakeRun, allowed: Path
) -> None:
    (allowed / "planted").symlink_to("../outside")  # as a stage that had it writable would
    run = fake_run()
    result = run.run(
        f"""
        fine: {{img: busybox, run: x, vol: ["{allowed}/data:/data"]}}
        linked: {{img: busybox, run: x, vol: ["{allowed}/planted:/data"]}}
        outside: {{img: busybox, run: x, vol: ["{allowed.parent}/outside:/data"]}}
        """,
        host_paths=(str(allowed),),
    )
    assert result.stages["fine"].status is Status.SUCCESS
    for name, why in (("linked", "symbolic link"), ("outside", "ALLOWED_HOST_PATHS")):
        assert result.stages[name].status is Status.FAILURE
        assert why in str(result.stages[name].reason)
        assert run.backend.of(name) == []  # never created
    (fine,) = run.backend.of("fine")
    assert any(b.source == allowed / "data" and b.target == "/data" for b in fine.spec.binds)


def test_local_runs_mount_host_paths_as_written(fake_run: MakeRun, allowed: Path) -> None:
    (allowed / "planted").symlink_to("../outside")
    run = fake_run()
    result = run.run(f'linked: {{img: busybox, run: x, vol: ["{allowed}/planted:/data"]}}\n')
    assert result.status is Status.SUCCESS


# --- build contexts ---------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text("FROM busybox\n")
    (root / "shared").mkdir()
    (root / "shared" / "Dockerfile").write_text("FROM busybox\n")
    (root / "shared" / "ignore").write_text("*.secret\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "elsewhere" / "ignore").write_text("\n")
    return root


def test_a_plain_context_passes(project: Path) -> None:
    for strict in (True, False):
        build_paths(project, project / "app", "Dockerfile", strict)


@pytest.mark.parametrize(
    ("link", "target", "context", "dockerfile", "what"),
    [
        ("ctx", "../elsewhere", "ctx", "Dockerfile", "build context"),
        ("ctx", "shared", "ctx", "Dockerfile", "build context"),
        ("app/Dockerfile", "../../elsewhere/Dockerfile", "app", "Dockerfile", "Dockerfile"),
        ("app/Dockerfile", "../shared/Dockerfile", "app", "Dockerfile", "Dockerfile"),
        ("app/.dockerignore", "../../elsewhere/ignore", "app", "Dockerfile", ".dockerignore"),
        ("app/.dockerignore", "../shared/ignore", "app", "Dockerfile", ".dockerignore"),
    ],
)
def test_bot_builds_refuse_any_link_on_the_way(
    project: Path, link: str, target: str, context: str, dockerfile: str, what: str
) -> None:
    path = project / link
    if path.exists():
        path.unlink()
    path.symlink_to(target)
    with pytest.raises(Refused, match="passes through a symbolic link") as caught:
        build_paths(project, project / context, dockerfile, strict=True)
    assert str(caught.value).startswith(what)
    inside = not target.startswith("../../") and target != "../elsewhere"
    if inside:  # a local run follows a link that stays in the project
        build_paths(project, project / context, dockerfile, strict=False)
    else:
        with pytest.raises(Refused, match="resolves outside the project"):
            build_paths(project, project / context, dockerfile, strict=False)


def test_a_context_archive_keeps_links_as_links(tmp_path: Path) -> None:
    """docker.utils.tar stores a link in the context as a link: /etc/passwd is never read."""
    from runner.containers import _context_archive

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nCOPY . /x\n")
    (context / "passwd").symlink_to("/etc/passwd")
    (context / "dir").symlink_to("/etc")
    archive = _context_archive(context, "Dockerfile", [])
    try:
        with tarfile.open(fileobj=archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
            assert members["passwd"].issym() and members["passwd"].linkname == "/etc/passwd"
            assert members["dir"].issym()
            assert not any(name.startswith("dir/") for name in members)
            assert os.path.exists("/etc/passwd")
            assert b"root:" not in b"".join(
                (tar.extractfile(m) or _Empty()).read() for m in tar.getmembers() if m.isfile()
            )
    finally:
        archive.close()


class _Empty:
    def read(self) -> bytes:
        return b""


@pytest.mark.parametrize("no_links", [True, False])
def test_the_engine_checks_a_build_context_before_building(
    fake_run: MakeRun, write_pipeline: WritePipeline, no_links: bool
) -> None:
    root = write_pipeline({"real/Dockerfile": "FROM busybox\n"})
    (root / "linked").symlink_to("real")
    run = fake_run()
    result = run.run(
        """
        direct: {build: real}
        linked: {build: linked}
        """,
        no_links=no_links,
    )
    assert result.stages["direct"].status is Status.SUCCESS
    linked = result.stages["linked"]
    if no_links:
        assert linked.status is Status.FAILURE
        assert linked.reason == (
            "build context 'linked' passes through a symbolic link ('linked'):"
            " not allowed in bot builds"
        )
        assert [c for c in run.backend.calls if c[0] == "build"] == [
            ("build", build_tag(result.id, "direct"))
        ]
    else:
        assert linked.status is Status.SUCCESS
