"""Pulling images, interrupting runs, and leaving nothing behind, against the real engine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import IMAGE, PULL_IMAGE, Outcome

pytestmark = pytest.mark.docker

DOCKERCISE = str(Path(sys.executable).parent / "dockercise")


def test_missing_image_is_pulled_with_progress(
    project: Callable[..., Path],
    dockercise: Callable[..., Outcome],
    docker_client: docker.DockerClient,
) -> None:
    """Needs the test registry on 127.0.0.1:5000 (scripts/setup --test pushes PULL_IMAGE there)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(PULL_IMAGE)
    root = project(
        f"""
        pulled:
          img: {PULL_IMAGE}
          run: echo running in the pulled image
        again:
          img: {PULL_IMAGE}
          run: echo same image, pulled once
        """
    )
    try:
        result = dockercise(root, "run")
        assert result.code == 0, result.out
        assert result.out.count(f"pulling image {PULL_IMAGE}") == 1
        assert "Downloaded newer image" in result.out  # progress, under whichever stage pulled
        assert "running in the pulled image" in result.log("pulled")
        docker_client.images.get(PULL_IMAGE)
    finally:
        docker_client.images.remove(PULL_IMAGE, force=True)


def _wait_for(predicate: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_stops_containers_and_cleans_up(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    signum: signal.Signals,
) -> None:
    root = project(
        f"""
        long:
          img: {IMAGE}
          run: echo started; sleep 60
        other:
          img: {IMAGE}
          run: sleep 60
        later:
          img: {IMAGE}
          after: long
          run: echo never
        """
    )
    env = {**os.environ, "TMPDIR": str(no_leaks)}
    proc = subprocess.Popen(
        [DOCKERCISE, "run", "-C", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        runs = root / ".dockercise" / "results" / "run"

        def both_running() -> bool:
            found = docker_client.api.containers(
                filters={"label": "dockercise.run", "status": "running"}
            )
            mine = [c for c in found if any(str(no_leaks) in m["Source"] for m in c["Mounts"])]
            return len(mine) == 2

        _wait_for(both_running)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    (run_dir,) = runs.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "cancelled"
    statuses = {s["name"]: s["status"] for s in run["stages"]}
    assert statuses == {"long": "cancelled", "other": "cancelled", "later": "cancelled"}
    assert "started" in (run_dir / "long.log").read_text()
    # no_leaks checks containers and the private directory once the test ends


@pytest.mark.slow
def test_a_suite_of_runs_leaves_nothing_behind(
    project: Callable[..., Path],
    dockercise: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    no_leaks: Path,
) -> None:
    images_before = {i.id for i in docker_client.images.list()}
    root = project(
        f"""
        ok: {{img: {IMAGE}, run: echo ok > $OUT/f}}
        bad: {{img: {IMAGE}, run: exit 1}}
        err: {{img: 127.0.0.1:5000/dockercise/not-there, run: "true"}}
        slow: {{img: {IMAGE}, run: sleep 5, timeout: 1s}}
        """
    )
    for _ in range(3):
        assert dockercise(root, "run", "-q").code == 1
    assert len(list((root / ".dockercise/results/run").iterdir())) == 3
    assert {i.id for i in docker_client.images.list()} == images_before
    assert not any(p.name.startswith("dockercise-") for p in no_leaks.iterdir())
