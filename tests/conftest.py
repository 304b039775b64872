"""Fixtures shared by every tier of tests (no Docker, no network here)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker
import pytest

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
