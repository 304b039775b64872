"""Integration tests against the real Docker engine and the local busybox image.

Every test gets its own temp directory for runs (so a leaked private run
directory is seen) and is checked afterwards for leaked containers.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.cli import main

IMAGE = "dockercise/busybox"
PULL_IMAGE = "127.0.0.1:5000/dockercise/pulltest:latest"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    client.ping()
    client.images.get(IMAGE)  # built by scripts/setup
    yield client
    client.close()


def _containers_under(client: docker.DockerClient, scratch: Path) -> list[str]:
    """Containers of runs whose private directory is under `scratch` (other runs may go on)."""
    found = client.api.containers(all=True, filters={"label": "dockercise.run"})
    return [
        c["Names"][0]
        for c in found
        if any(str(m.get("Source", "")).startswith(str(scratch)) for m in c.get("Mounts", []))
    ]


@pytest.fixture(autouse=True)
def no_leaks(
    docker_client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Runs go into a private temp dir; afterwards no container and no run directory may remain."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    yield scratch
    leaked = _containers_under(docker_client, scratch)
    assert not leaked, f"containers left behind: {leaked}"
    assert not list(scratch.glob("dockercise-*")), "a run's private directory was left behind"


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    project: Path

    @property
    def results(self) -> Path:
        return self.project / ".dockercise" / "results" / "run"

    @property
    def run_id(self) -> str:
        runs = sorted(p.name for p in self.results.iterdir())
        assert len(runs) == 1, runs
        return runs[0]

    @property
    def run_dir(self) -> Path:
        return self.results / self.run_id

    def run_json(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "run.json").read_text())

    def stage(self, name: str) -> dict[str, Any]:
        return json.loads((self.run_dir / f"{name}.json").read_text(encoding="utf-8"))

    def log(self, name: str) -> str:
        return (self.run_dir / f"{name}.log").read_text(encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """Write a pipeline (YAML text, dedented) into a fresh project directory."""

    def make(yaml_text: str, name: str = ".dockercise.yml", root: Path | None = None) -> Path:
        root = root or tmp_path / "project"
        root.mkdir(exist_ok=True)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(yaml_text), encoding="utf-8")
        return root

    return make


@pytest.fixture
def dockercise(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run the `dockercise` command in-process, as a user would type it."""

    def run(project: Path, *args: str) -> Outcome:
        with pytest.raises(SystemExit) as exit_info:
            main(
                [*args, "-C", str(project)] if args and args[0] in COMMANDS_WITH_DIR else list(args)
            )
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Outcome(code if isinstance(code, int) else 1, captured.out, captured.err, project)

    return run


COMMANDS_WITH_DIR = {"run", "validate", "graph", "results", "logs"}
