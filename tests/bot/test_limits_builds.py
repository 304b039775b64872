"""Bot builds under the operator's limits (SPEC §10), on the real engine and the fake GitHub:
what a stage's container gets, cut timeouts, the build time limit, too many stages, and a
worker short of disk that leaves builds on the queue."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.settings import Settings, load_settings
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import (
    Bot,
    bot_env,
    build_now,
    final_status,
    free_port,
    push_job,
    push_payload,
    wait_for,
)

pytestmark = pytest.mark.docker


def _settings(github: FakeGitHub, tmp_path: Path, **limits: str) -> Settings:
    return load_settings(bot_env(github, tmp_path) | limits)


def _build(settings: Settings, github: FakeGitHub, repo: str, sha: str) -> None:
    build_now(settings, push_job(github, repo, sha)).close()


def _run(settings: Settings, repo: str, status: dict[str, Any]) -> Path:
    run_id: str = status["target_url"].rsplit("/", 1)[1]
    return Path(settings.results) / repo / "run" / run_id


def test_a_bot_build_container_has_memory_cpu_and_pids_limits(
    github: FakeGitHub, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    settings = _settings(github, tmp_path)  # the defaults: 2g, 2 CPUs, 1024 processes
    marker = f"limited-{tmp_path.name}"
    sha = github.push(
        "octo/app", {".dockercise.yml": f"{marker}: {{img: dockercise/busybox, run: sleep 4}}\n"}
    )
    seen: dict[str, Any] = {}

    def inspect() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            for c in docker_client.api.containers(filters={"label": f"dockercise.stage={marker}"}):
                seen.update(docker_client.api.inspect_container(c["Id"])["HostConfig"])
            time.sleep(0.1)

    watcher = threading.Thread(target=inspect)
    watcher.start()
    _build(settings, github, "octo/app", sha)
    watcher.join()
    assert github.statuses_for(sha)[-1]["state"] == "success"
    assert seen, "the stage's container was never seen running"
    assert (seen["Memory"], seen["MemorySwap"]) == (2 << 30, 2 << 30)
    assert (seen["NanoCpus"], seen["PidsLimit"]) == (2_000_000_000, 1024)
    assert seen["LogConfig"]["Type"] == "none"
    assert not seen["Privileged"]


def test_a_long_timeout_is_cut_and_the_build_time_is_limited(
    github: FakeGitHub, tmp_path: Path
) -> None:
    settings = _settings(github, tmp_path, DOCKERCISE_MAX_TIMEOUT="1s")
    sha = github.push(
        "octo/slow",
        {".dockercise.yml": "slow: {img: dockercise/busybox, timeout: 24h, run: sleep 60}\n"},
    )
    started = time.monotonic()
    _build(settings, github, "octo/slow", sha)
    assert time.monotonic() - started < 30
    final = github.statuses_for(sha)[-1]
    assert (final["state"], final["description"]) == (
        "failure",
        "0 of 1 stages passed; failed: slow (timeout)",
    )
    log = (_run(settings, "octo/slow", final) / "slow.log").read_text()
    assert "timeout cut from 24 h 00 min to 1.0 s (DOCKERCISE_MAX_TIMEOUT)" in log

    limited = _settings(github, tmp_path, DOCKERCISE_MAX_BUILD_TIME="2s")
    sha = github.push(
        "octo/slow",
        {
            ".dockercise.yml": "a: {img: dockercise/busybox, run: sleep 60}\n"
            "b: {img: dockercise/busybox, after: a, run: 'true'}\n"
        },
    )
    started = time.monotonic()
    _build(limited, github, "octo/slow", sha)
    assert time.monotonic() - started < 30
    final = github.statuses_for(sha)[-1]
    assert (final["state"], final["description"]) == (
        "error",
        "0 of 2 stages passed; cancelled (build time limit)",
    )
    run = _run(limited, "octo/slow", final)
    assert json.loads((run / "run.json").read_text())["reason"] == "build time limit"
    for stage in ("a", "b"):
        stored = json.loads((run / f"{stage}.json").read_text())
        assert (stored["status"], stored["reason"]) == ("cancelled", "build time limit")


def test_too_many_stages_is_reported_as_an_invalid_pipeline(
    github: FakeGitHub, tmp_path: Path
) -> None:
    settings = _settings(github, tmp_path, DOCKERCISE_MAX_STAGES="3")
    text = "".join(f"s{i}: {{img: dockercise/busybox, run: 'true'}}\n" for i in range(4))
    sha = github.push("octo/many", {".dockercise.yml": text})
    _build(settings, github, "octo/many", sha)
    final = github.statuses_for(sha)[-1]
    assert (final["state"], final["description"]) == (
        "failure",
        "pipeline invalid: .dockercise.yml: the build has 4 stages,"
        " more than DOCKERCISE_MAX_STAGES allows (3)",
    )
    assert not (Path(settings.results) / "octo/many" / "run").exists()  # nothing ran


@pytest.mark.slow
def test_a_worker_short_of_disk_leaves_the_build_queued(github: FakeGitHub, tmp_path: Path) -> None:
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = bot_env(github, tmp_path, port)
    short = Bot(env | {"DOCKERCISE_MIN_FREE": "1000t"}, port, logs)
    try:
        short.serve()
        sha = github.push(
            "octo/app", {".dockercise.yml": "a: {img: dockercise/busybox, run: echo hi}\n"}
        )
        assert short.deliver("push", push_payload(github, "octo/app", sha), "full-disk") == 202
        wait_for(lambda: "less than DOCKERCISE_MIN_FREE (1000 TiB)" in short.output(), 30)
        time.sleep(3)
        assert [s["description"] for s in github.statuses_for(sha)] == ["build queued"]
    finally:
        short.stop()
    assert short.output().count("less than DOCKERCISE_MIN_FREE") == 1  # once a minute at most
    roomy = Bot(env, port, logs)
    try:
        roomy.serve()
        assert final_status(github, sha, 60)["state"] == "success"
    finally:
        roomy.stop()
