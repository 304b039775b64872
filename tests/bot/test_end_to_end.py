"""The bot as a user runs it (`dockercise serve`, gunicorn + `dockercise worker`), fed signed
deliveries, talking to the fake GitHub and the real Docker engine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.bot.conftest import WEBHOOK_SECRET, bot_env
from tests.bot.fake_github import FakeGitHub
from webhooks.verify import sign

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BIN = Path(sys.executable).parent
PAYLOADS = Path(__file__).resolve().parents[1] / "webhooks" / "github-payloads"
PASSING = "test: {img: dockercise/busybox, run: echo all good}\n"
FAILING = "test: {img: dockercise/busybox, run: echo broken; exit 2}\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(predicate: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


class Bot:
    """Processes of the bot, started as a user would, stopped at the end of the test."""

    def __init__(self, env: dict[str, str], port: int, logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{len(self.procs)}-{Path(argv[0]).name}.log").open("wb")
        proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs.append(proc)
        return proc

    def serve(self) -> subprocess.Popen[bytes]:
        proc = self.start(str(BIN / "dockercise"), "serve", "--port", str(self.port))
        self.wait_healthy()
        return proc

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        _wait_for(healthy, 30)

    def deliver(
        self, event: str, payload: dict[str, Any], delivery: str, secret: str = WEBHOOK_SECRET
    ) -> int:
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.url}/webhooks/github",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(body, secret),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def bot(github: FakeGitHub, tmp_path: Path) -> Iterator[Bot]:
    port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = bot_env(github, tmp_path, port) | {"DOCKERCISE_STALE_AFTER": "3"}
    running = Bot(env, port, logs)
    yield running
    running.stop()


def push_payload(github: FakeGitHub, repo: str, sha: str, branch: str = "main") -> dict[str, Any]:
    """A real push delivery (from GitHub's examples), pointed at our repository and commit."""
    payload = json.loads((PAYLOADS / "push.with-installation.payload.json").read_text())
    owner, name = repo.split("/")
    payload.update(
        ref=f"refs/heads/{branch}", before="0" * 39 + "1", after=sha, created=False, deleted=False
    )
    payload["installation"] = {"id": github.installation_id}
    payload["repository"].update(
        name=name, full_name=repo, clone_url=github.clone_url(repo), default_branch="main"
    )
    payload["repository"]["owner"]["login"] = owner
    return payload


def pull_request_payload(
    github: FakeGitHub, repo: str, number: int, sha: str, head_repo: str
) -> dict[str, Any]:
    payload = json.loads((PAYLOADS / "pull_request.opened.payload.json").read_text())
    owner, name = repo.split("/")
    payload["number"] = number
    payload["installation"] = {"id": github.installation_id}
    payload["repository"].update(name=name, full_name=repo, clone_url=github.clone_url(repo))
    payload["repository"]["owner"]["login"] = owner
    pr = payload["pull_request"]
    pr["number"] = number
    pr["head"]["sha"] = sha
    pr["head"]["repo"]["full_name"] = head_repo
    pr["base"]["repo"]["full_name"] = repo
    return payload


def final_status(github: FakeGitHub, sha: str, seconds: float = 60) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        done = [s for s in github.statuses_for(sha) if s["state"] != "pending"]
        return done[-1] if done else None

    found: dict[str, Any] = _wait_for(final, seconds)
    return found


def test_pushes_build_and_report(bot: Bot, github: FakeGitHub) -> None:
    bot.serve()
    good = github.push("octo/app", {".dockercise.yml": PASSING})
    assert bot.deliver("push", push_payload(github, "octo/app", good), "delivery-1") == 202
    status = final_status(github, good)
    assert status["state"] == "success", bot.output()
    assert [s["state"] for s in github.statuses_for(good)] == ["pending", "success"]
    with urllib.request.urlopen(status["target_url"], timeout=10) as page:
        assert page.status == 200
        assert "test" in page.read().decode()

    bad = github.push("octo/app", {".dockercise.yml": FAILING})
    assert bot.deliver("push", push_payload(github, "octo/app", bad), "delivery-2") == 202
    status = final_status(github, bad)
    assert (status["state"], status["description"]) == (
        "failure",
        "0 of 1 stages passed; failed: test (exit 2)",
    )


def test_pull_requests_and_forks(bot: Bot, github: FakeGitHub) -> None:
    bot.serve()
    github.push("octo/app", {"README": "main\n"})
    github.push("octo/app", {".dockercise.yml": PASSING}, branch="topic")
    sha = github.open_pull_request("octo/app", 3, "topic")
    payload = pull_request_payload(github, "octo/app", 3, sha, "octo/app")
    assert bot.deliver("pull_request", payload, "pr-1") == 202
    assert final_status(github, sha)["state"] == "success"

    fork_pipeline = "meta: {secrets: {TOKEN: plain-secret-value}}\n" + (
        "leak: {img: dockercise/busybox, env: [token], run: echo $TOKEN}\n"
    )
    github.push("octo/app", {".dockercise.yml": fork_pipeline}, branch="from-fork")
    fork_sha = github.open_pull_request("octo/app", 4, "from-fork")
    fork = pull_request_payload(github, "octo/app", 4, fork_sha, "mallory/app")
    assert bot.deliver("pull_request", fork, "pr-fork") == 202
    status = final_status(github, fork_sha)
    assert status["state"] == "failure"
    assert "secrets are not available to pull requests from forks" in status["description"]


def test_bad_signature_and_duplicate_deliveries(bot: Bot, github: FakeGitHub) -> None:
    bot.serve()
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    payload = push_payload(github, "octo/app", sha)
    assert bot.deliver("push", payload, "forged", secret="not-the-secret") == 401
    assert bot.deliver("push", payload, "once") == 202
    final_status(github, sha)
    assert bot.deliver("push", payload, "once") == 200  # redelivered: already built
    time.sleep(2)
    assert [s["state"] for s in github.statuses_for(sha)] == ["pending", "success"]


def test_a_killed_worker_still_ends_with_a_final_status(
    bot: Bot, github: FakeGitHub, docker_client: docker.DockerClient
) -> None:
    server = bot.serve()
    slow = "test: {img: dockercise/busybox, run: sleep 4; echo done}\n"
    sha = github.push("octo/app", {".dockercise.yml": slow})
    assert bot.deliver("push", push_payload(github, "octo/app", sha), "slow-1") == 202

    def running() -> list[Any]:
        found: list[Any] = docker_client.containers.list(
            filters={"label": "dockercise.stage=test", "status": "running"}
        )
        return found

    (container,) = _wait_for(running, 60)
    server.send_signal(signal.SIGKILL)
    server.wait()
    assert [s["state"] for s in github.statuses_for(sha)] == ["pending"]
    time.sleep(4)  # longer than DOCKERCISE_STALE_AFTER: the build's heartbeat is gone
    bot.serve()
    status = final_status(github, sha, 90)
    assert status["state"] in ("success", "error"), bot.output()
    with pytest.raises(docker.errors.NotFound):
        container.reload()  # the dead build's container was removed


def test_gunicorn_and_a_separate_worker(bot: Bot, github: FakeGitHub) -> None:
    bot.start(
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{bot.port}",
        "--workers",
        "2",
        "bot.web:create_bot_app()",
    )
    bot.start(str(BIN / "dockercise"), "worker")
    bot.wait_healthy()
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    assert bot.deliver("push", push_payload(github, "octo/app", sha), "g-1") == 202
    assert final_status(github, sha)["state"] == "success", bot.output()


def test_a_queued_build_survives_a_restart(bot: Bot, github: FakeGitHub) -> None:
    web = bot.start(
        str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{bot.port}", "bot.web:create_bot_app()"
    )
    bot.wait_healthy()
    sha = github.push("octo/app", {".dockercise.yml": PASSING})
    assert bot.deliver("push", push_payload(github, "octo/app", sha), "queued-1") == 202
    time.sleep(1)
    assert github.statuses_for(sha) == []  # queued: no consumer runs yet
    web.send_signal(signal.SIGTERM)
    web.wait(timeout=20)
    bot.serve()  # a new process, the same queue on disk
    assert final_status(github, sha)["state"] == "success", bot.output()
