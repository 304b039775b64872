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

from cli.main import main
from tests.conftest import remove_kept_images

IMAGE = "dockercise/busybox"
PULL_IMAGE = "127.0.0.1:5000/dockercise/pulltest:latest"


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
    remove_kept_images(tmp_path, docker_client)
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
        return self._json("run.json")

    def stage(self, name: str) -> dict[str, Any]:
        return self._json(f"{name}.json")

    def _json(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / name).read_text(encoding="utf-8"))
        return data

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


# --- S3: moto in server mode on 127.0.0.1, a fresh bucket per test ---------------------------


class MotoS3:
    """A moto S3 server on a fixed loopback port that a test may stop and start again.

    moto keeps its buckets in this process, so they survive a restart, as a
    real store's data survives an outage.
    """

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._make = ThreadedMotoServer
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        self.running = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def start(self) -> None:
        if not self.running:
            self._server = self._make(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            self.running = True


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    server = MotoS3()
    yield server
    server.stop()


@dataclass
class S3Bucket:
    """A fresh bucket on the moto server; the environment points boto3 (and dockercise) at it."""

    client: Any
    name: str
    spool: Path
    server: MotoS3

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def listing(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
        with body:
            data: bytes = body.read()
        return data

    def spooled(self) -> list[Path]:
        """Result files still waiting in the spool (not locks, not folders)."""
        if not self.spool.exists():
            return []
        return sorted(p for p in self.spool.rglob("*") if p.is_file() and p.name != ".lock")


@pytest.fixture
def s3(moto_server: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Bucket]:
    import uuid

    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "DOCKERCISE_RESULTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("DOCKERCISE_SPOOL", str(tmp_path / "spool"))
    moto_server.start()  # in case a test stopped it and failed before starting it again
    client = boto3.session.Session().client("s3")
    bucket = S3Bucket(
        client, f"dockercise-{uuid.uuid4().hex[:12]}", tmp_path / "spool", moto_server
    )
    client.create_bucket(Bucket=bucket.name)
    yield bucket
    moto_server.start()
    for key in bucket.listing():
        client.delete_object(Bucket=bucket.name, Key=key)
    client.delete_bucket(Bucket=bucket.name)
    client.close()
