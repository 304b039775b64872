"""Fixtures shared by every tier of tests (no Docker, no network here)."""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

WritePipeline = Callable[[Mapping[str, str]], Path]


@pytest.fixture
def write_pipeline(tmp_path: Path) -> WritePipeline:
    """Write files (relative path -> text, dedented) under a fresh project dir; return the dir.

    Each call uses the same project directory, so a test can add files in steps.
    """
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)

    def write(files: Mapping[str, str]) -> Path:
        for relpath, text in files.items():
            path = root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return root

    return write


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real engine, with the local image scripts/setup builds."""
    client = docker.from_env()
    client.ping()
    client.images.get("dockercise/busybox")
    yield client
    client.close()


def remove_kept_images(tmp_path: Path, client: docker.DockerClient | None = None) -> None:
    """Remove the images a test's runs kept as layer caches (SPEC §13), and only those.

    A local run keeps its images for `local:<project>` (projects live under
    `tmp_path`); a bot build for its repository under the salt of its data
    directory (`tmp_path/bot-data`).  Other tests' kept images, perhaps of
    other processes sharing the engine, are left alone.
    """
    from runner import caching

    salt_file = tmp_path / "bot-data" / "cache" / "salt"
    salt = salt_file.read_text().strip() if salt_file.is_file() else None
    own = client is None
    client = client or docker.from_env()
    try:
        for image in client.api.images(filters={"label": caching.KEPT_LABEL}):
            repo = (image.get("Labels") or {}).get(caching.KEPT_LABEL, "")
            for tag in image.get("RepoTags") or []:
                ours = repo.startswith(f"{caching.LOCAL}:{tmp_path.resolve()}") or (
                    salt is not None and tag.startswith(caching.own_kept_prefix(repo, salt))
                )
                if ours and tag.startswith(caching.KEPT_IMAGES):
                    with contextlib.suppress(docker.errors.APIError):
                        client.api.remove_image(tag, force=True)
    finally:
        if own:
            client.close()


def kept_lineage(client: docker.DockerClient) -> set[str]:
    """Ids of every image kept as a layer cache (SPEC §13) and of their ancestors.

    A run's built image outlives the run only as such an ancestor: untagged,
    the layers of its stage's kept image.
    """
    from runner import caching

    found: set[str] = set()
    for image in client.api.images(filters={"label": caching.KEPT_LABEL}):
        if not any(t.startswith(caching.KEPT_IMAGES) for t in image.get("RepoTags") or []):
            continue
        current: str | None = image["Id"]
        while current and current not in found:
            found.add(current)
            try:
                current = client.api.inspect_image(current).get("Parent") or None  # type: ignore[no-untyped-call]
            except docker.errors.NotFound:
                current = None
    return found


# One Chromium for the whole session, whichever folder's tests use it: two sync
# Playwright instances at once in one process refuse to start (an asyncio loop runs).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright, headless (Playwright cannot download one here)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no {CHROMIUM}: run scripts/setup --test (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()
