"""`services` (SPEC §14) against the real Docker engine: the example reaching its service by
name, a service never ready, a failing stage, secrets in a service's log, and kill -9 during
a stage with services followed by the next start's sweep."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from pages.local import create_local_app
from runner import pipeline, sidecars
from runner.containers import Containers
from runner.engine import Engine, RunOptions, prepare
from runner.limits import Limits
from runner.networks import Networking
from runner.outcome import Status
from runner.store.local import LocalStore
from tests.integration.conftest import IMAGE, Outcome
from tests.integration.test_recovery import DOCKERCISE, QUICK, _running, _start, _wait_for
from tests.runner.conftest import RecordingReporter

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]
Project = Callable[..., Path]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "services"

SERVED = f"""
    test:
      img: {IMAGE}
      services:
        web:
          img: {IMAGE}
          run: mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www
          ready: wget -q -O- http://127.0.0.1:8080/
      run: wget -q -O- http://web:8080/ && exit 1
"""


def _stage_s_own(client: docker.DockerClient, results: Path, stage: str) -> list[dict[str, Any]]:
    """The stage's own running container, not its services' (labelled with the stage too)."""
    return [c for c in _running(client, results, stage) if "dockercise.service" not in c["Labels"]]


def _left(client: docker.DockerClient, run_id: str) -> list[str]:
    """Containers and networks of the run still on the engine."""
    label = {"label": f"dockercise.run={run_id}"}
    containers = [c["Id"] for c in client.api.containers(all=True, filters=label)]
    return containers + [n["Name"] for n in client.api.networks(filters=label)]


def test_the_example_reaches_its_service_by_name(
    dockercise: Run, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".dockercise"))
    outcome = dockercise(root, "run")
    assert outcome.code == 0, outcome.out + outcome.err
    assert "hello from web" in outcome.log("test")
    assert "service web ready after" in outcome.log("test")
    assert "serving /www on port 8080" in outcome.log("test.web")
    (web,) = outcome.stage("test")["services"]
    assert (web["name"], web["image"], web["logs"]) == ("web", IMAGE, "test.web.log")
    assert isinstance(web["ready"], float) and web["exit_code"] is None
    assert (outcome.run_dir / "test.zip").exists()
    assert _left(docker_client, outcome.run_id) == []
    printed = dockercise(root, "logs", outcome.run_id, "test.web")
    assert printed.code == 0 and "serving /www on port 8080" in printed.out
    assert dockercise(root, "logs", outcome.run_id, "test.nope").code == 2


def test_a_service_never_ready_errors_the_stage_and_is_removed(
    dockercise: Run,
    project: Project,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sidecars, "READY_TIMEOUT", 2.0)
    root = project(
        f"""
        test:
          img: {IMAGE}
          services:
            db: {{img: {IMAGE}, run: sleep 600, ready: 'test -e /never'}}
          run: echo never
        """
    )
    outcome = dockercise(root, "run")
    assert outcome.code == 1, outcome.out + outcome.err
    stage = outcome.stage("test")
    assert (stage["status"], stage["reason"]) == ("error", "service db not ready")
    assert stage["services"][0]["ready"] is None
    assert "never" not in outcome.log("test").splitlines()  # the stage never ran
    assert _left(docker_client, outcome.run_id) == []


def test_a_service_that_exits_before_ready_says_its_code(
    dockercise: Run, project: Project, docker_client: docker.DockerClient
) -> None:
    root = project(
        f"""
        test:
          img: {IMAGE}
          services:
            db: {{img: {IMAGE}, run: echo broken config; exit 3, ready: 'false'}}
          run: echo never
        """
    )
    outcome = dockercise(root, "run")
    stage = outcome.stage("test")
    assert (stage["status"], stage["reason"]) == (
        "error",
        "service db exited (code 3) before ready",
    )
    assert "broken config" in outcome.log("test.db")
    assert _left(docker_client, outcome.run_id) == []


def test_a_failing_stage_still_removes_its_services_and_network(
    dockercise: Run, project: Project, docker_client: docker.DockerClient
) -> None:
    outcome = dockercise(project(SERVED), "run")
    assert outcome.code == 1, outcome.out + outcome.err
    stage = outcome.stage("test")
    assert (stage["status"], stage["reason"]) == ("failure", "exit 1")
    assert "up" in outcome.log("test").splitlines()
    assert _left(docker_client, outcome.run_id) == []


def test_secrets_are_masked_in_a_services_log(
    dockercise: Run, project: Project, docker_client: docker.DockerClient
) -> None:
    root = project(
        f"""
        meta:
          secrets: {{TOKEN: s3cr3t-token-value}}
        test:
          img: {IMAGE}
          services:
            web:
              img: {IMAGE}
              env: [TOKEN]
              run: echo "token=$TOKEN"; echo "base64=$(echo -n $TOKEN | base64)"; exec sleep 600
          run: echo done
        """
    )
    outcome = dockercise(root, "run")
    assert outcome.code == 0, outcome.out + outcome.err
    log = outcome.log("test.web")
    assert "token=***" in log and "base64=***" in log, log
    assert "s3cr3t" not in log
    assert _left(docker_client, outcome.run_id) == []


@pytest.mark.slow
def test_kill_9_during_a_stage_with_services_leaves_nothing_after_the_next_start(
    project: Project, docker_client: docker.DockerClient, no_leaks: Path, tmp_path: Path
) -> None:
    root = project(
        f"""
        long:
          img: {IMAGE}
          services:
            web: {{img: {IMAGE}, run: exec sleep 600}}
          run: echo started; sleep 120
        """
    )
    results = tmp_path / "results"
    victim = _start(root, results, no_leaks)
    try:
        (container,) = _wait_for(lambda: _stage_s_own(docker_client, results, "long"))
        run_id = container["Labels"]["dockercise.run"]
        # Looked at while its owner lives: no other process's sweep may take them yet.
        left = _left(docker_client, run_id)
        assert len(left) == 3, left  # the stage, its service, its network
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()

    survivor = _start(project(QUICK, root=tmp_path / "second"), results, no_leaks)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, out + err
    assert _left(docker_client, run_id) == []


def test_in_a_bot_build_a_stage_reaches_its_service_and_the_builds_other_stages(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """On the build's own network too (SPEC §10), limited as stages are: `server` is a stage
    running beside `test`, reached by its stage name; `web` is `test`'s service."""
    root = tmp_path / "bot-build"
    root.mkdir()
    (root / ".dockercise.yml").write_text(
        f"""
server:
  img: {IMAGE}
  timeout: 60s
  run: echo from-server | nc -l -p 9000
test:
  img: {IMAGE}
  timeout: 90s
  services:
    web:
      img: {IMAGE}
      run: >-
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes;
        mkdir -p /www && echo from-web > /www/index.html && exec httpd -f -p 8080 -h /www
      ready: wget -q -O- http://127.0.0.1:8080/
  run: |
    wget -q -O- http://web:8080/
    for i in $(seq 300); do nc -w 5 server 9000 </dev/null && exit 0; sleep 0.2; done
    exit 1
"""
    )
    loaded = pipeline.load(root)
    assert loaded is not None
    limits = Limits(stage_memory=256 << 20, stage_pids=64)
    # `test` takes two slots (its container and its service's), `server` one.
    options = RunOptions(networking=Networking.OWN, limits=limits, concurrency=3)
    backend = Containers()
    store = LocalStore(tmp_path / "results")
    try:
        result = Engine(backend, store, RecordingReporter()).run(prepare(loaded, options))
    finally:
        backend.close()
    assert result.status is Status.SUCCESS, result.stages
    log = (store.read_bytes(result.id, "test.log") or b"").decode()
    assert "from-web" in log and "from-server" in log
    service_log = (store.read_bytes(result.id, "test.web.log") or b"").decode()
    assert str(256 << 20) in service_log.split()
    assert _left(docker_client, result.id) == []


def test_a_service_gets_the_stage_limits_in_a_local_run_that_sets_them(
    dockercise: Run,
    project: Project,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKERCISE_STAGE_MEMORY", "128m")
    monkeypatch.setenv("DOCKERCISE_STAGE_PIDS", "32")
    root = project(
        f"""
        test:
          img: {IMAGE}
          services:
            box:
              img: {IMAGE}
              run: >-
                cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max;
                touch /ready; exec sleep 600
              ready: test -e /ready
          run: "true"
        """
    )
    outcome = dockercise(root, "run")
    assert outcome.code == 0, outcome.out + outcome.err
    assert outcome.log("test.box").split() == [str(128 << 20), "32"]
    assert _left(docker_client, outcome.run_id) == []


def test_what_a_service_writes_counts_against_the_stage_s_disk_limit(
    dockercise: Run,
    project: Project,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKERCISE_STAGE_DISK", "1m")
    root = project(
        f"""
        test:
          img: {IMAGE}
          services:
            filler:
              img: {IMAGE}
              run: |
                touch /ready; i=0
                while true; do
                  dd if=/dev/zero of=/part$i bs=65536 count=4 2>/dev/null
                  i=$((i+1)); sleep 0.1
                done
              ready: test -e /ready
          run: sleep 600
          timeout: 90s
        """
    )
    outcome = dockercise(root, "run")
    assert outcome.code == 1, outcome.out + outcome.err
    stage = outcome.stage("test")
    assert (stage["status"], stage["reason"]) == ("failure", "disk limit")  # not `timeout`
    assert _left(docker_client, outcome.run_id) == []


def test_each_attempt_of_a_retried_stage_gets_fresh_services(
    dockercise: Run, project: Project, docker_client: docker.DockerClient
) -> None:
    root = project(SERVED.replace("      run: wget", "      retry: 1\n      run: wget"))
    outcome = dockercise(root, "run")
    stage = outcome.stage("test")
    assert (stage["status"], stage["reason"], stage["attempts"]) == ("failure", "exit 1", 2)
    assert outcome.log("test").count("service web ready after") == 2
    assert _left(docker_client, outcome.run_id) == []


def test_a_running_stage_shows_its_service_and_its_log_on_the_page_and_in_logs(
    project: Project, docker_client: docker.DockerClient, no_leaks: Path, tmp_path: Path
) -> None:
    """While the stage waits (for a file this test makes in its container), its service and
    the service's output are on the run page and `dockercise logs`; afterwards too."""
    root = project(
        f"""
        test:
          img: {IMAGE}
          services:
            web: {{img: {IMAGE}, run: echo web is listening; exec sleep 600}}
          run: echo waiting; until test -e /go; do sleep 0.1; done; echo went
        """
    )
    results = tmp_path / "results"
    runner = _start(root, results, no_leaks)
    try:
        (stage,) = _wait_for(lambda: _stage_s_own(docker_client, results, "test"))
        run_id = stage["Labels"]["dockercise.run"]
        store = LocalStore(results)
        pipeline_name = (store.read_json(run_id, "run.json") or {})["pipeline"]
        page = f"/results/local/{pipeline_name}/run/{run_id}"
        with create_local_app(store).test_client() as client:

            def service_log() -> str:
                response = client.get(f"{page}/test.web.log")
                text = response.get_data(as_text=True) if response.status_code == 200 else ""
                response.close()
                return text

            assert "web is listening" in _wait_for(service_log)
            html = client.get(page).get_data(as_text=True)
            assert 'data-status="running"' in html, html
            assert f'href="{page}/test.web.log"' in html and "web is listening" in html
            printed = subprocess.run(
                [
                    DOCKERCISE,
                    "logs",
                    "-C",
                    str(root),
                    "--results",
                    str(results),
                    run_id,
                    "test.web",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert printed.returncode == 0 and "web is listening" in printed.stdout, printed
            assert store.read_json(run_id, "test.json")["status"] == "running"  # type: ignore[index]
            made = docker_client.containers.get(stage["Id"]).exec_run(["touch", "/go"])
            assert made.exit_code == 0, made.output
            out, err = runner.communicate(timeout=120)
            assert runner.returncode == 0, out + err
            assert (
                "web is listening" not in out
            )  # a service's output is its log's, not the console's
            assert "test | service web started (no ready command)" in out
            assert "web is listening" in service_log()
            assert f'href="{page}/test.web.log"' in client.get(page).get_data(as_text=True)
        (web,) = (store.read_json(run_id, "test.json") or {})["services"]
        assert (web["name"], web["logs"], web["exit_code"]) == ("web", "test.web.log", None)
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            runner.communicate(timeout=120)
    assert _left(docker_client, run_id) == []


def test_the_console_notes_why_a_service_was_not_ready_with_its_last_lines_masked(
    dockercise: Run, project: Project
) -> None:
    root = project(
        f"""
        meta:
          secrets: {{TOKEN: s3cr3t-token-value}}
        test:
          img: {IMAGE}
          services:
            db:
              img: {IMAGE}
              env: [TOKEN]
              run: seq 1 20; echo "config token=$TOKEN is wrong"; exit 3
              ready: 'false'
          run: echo never
        """
    )
    outcome = dockercise(root, "run")
    assert outcome.code == 1, outcome.out + outcome.err
    assert "service db exited (code 3) before ready" in outcome.out
    assert "db | config token=*** is wrong" in outcome.out, outcome.out
    assert "db | 12" in outcome.out and "db | 11\n" not in outcome.out
    assert "s3cr3t" not in outcome.out + outcome.err
    assert "dockercise: db | config token=*** is wrong" in outcome.log("test")
