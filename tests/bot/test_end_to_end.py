"""The bot as a user runs it (`dockercise serve`, gunicorn + `dockercise worker`), fed signed
deliveries, talking to the fake GitHub and the real Docker engine."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.bot.fake_github import FakeGitHub
from tests.bot.running import BIN, Bot, final_status, pull_request_payload, push_payload, wait_for
from tests.siege import IDLE, answer_time, siege, threads_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PASSING = "test: {img: dockercise/busybox, run: echo all good}\n"
FAILING = "test: {img: dockercise/busybox, run: echo broken; exit 2}\n"


def test_pushes_build_and_report(bot: Bot, github: FakeGitHub) -> None:
    bot.serve()
    good = github.push("octo/app", {".dockercise.yml": PASSING})
    assert bot.deliver("push", push_payload(github, "octo/app", good), "delivery-1") == 202
    status = final_status(github, good)
    assert status["state"] == "success", bot.output()
    assert [(s["state"], s["description"]) for s in github.statuses_for(good)] == [
        ("pending", "build queued"),
        ("pending", "build running"),
        ("success", "1 of 1 stages passed"),
    ]
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
    # The author (Codertocat, in GitHub's example) collaborates: no approval to wait for (§11).
    github.grant("octo/app", fork["pull_request"]["user"]["login"], "read")
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
    assert [s["state"] for s in github.statuses_for(sha)] == ["pending", "pending", "success"]


def test_a_killed_worker_still_ends_with_a_final_status(
    bot: Bot, github: FakeGitHub, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """kill -9 of `dockercise serve` during a build; the next start removes what the dead build
    left (container, built image, temp folder, checkout) and finishes its run as interrupted."""
    temp = tmp_path / "bot-tmp"
    temp.mkdir()
    bot.env["TMPDIR"] = str(temp)
    server = bot.serve()
    slow = "image: {build: docker/}\ntest: {img: image, run: sleep 4; echo done}\n"
    sha = github.push(
        "octo/app",
        {".dockercise.yml": slow, "docker/Dockerfile": "FROM dockercise/busybox\nRUN true\n"},
    )
    assert bot.deliver("push", push_payload(github, "octo/app", sha), "slow-1") == 202
    store = (tmp_path / "results" / "octo" / "app").as_uri()

    def running() -> list[Any]:
        # Only this test's build: other test processes share the engine.
        found: list[Any] = docker_client.containers.list(
            filters={"label": ["dockercise.stage=test", f"dockercise.store={store}"]}
        )
        return [c for c in found if c.status == "running"]

    (container,) = wait_for(running, 60)
    run_id = container.labels["dockercise.run"]
    image = container.image.id
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"dockercise-{run_id}"]
    server.send_signal(signal.SIGKILL)
    server.wait()
    assert [s["state"] for s in github.statuses_for(sha)] == ["pending", "pending"]
    time.sleep(4)  # longer than DOCKERCISE_STALE_AFTER: the build's heartbeat is gone
    bot.serve()
    status = final_status(github, sha, 90)
    assert status["state"] in ("success", "error"), bot.output()
    with pytest.raises(docker.errors.NotFound):
        container.reload()  # the dead build's container was removed
    # The dead build's image is gone, but for the `image` stage's kept image (a push to the
    # default branch keeps it, SPEC §13): the run's own tag is gone, the kept name stays.
    assert not docker_client.api.images(filters={"reference": f"dockercise-build:{run_id}-*"})
    try:
        left = docker_client.images.get(image)
    except docker.errors.NotFound:
        left = None
    if left is not None:
        assert left.tags and all(t.startswith("dockercise-cache/") for t in left.tags)
        assert left.labels["dockercise.cache.repo"] == "octo/app"
    assert not list(temp.glob(f"dockercise-{run_id}-*"))
    run = json.loads(
        (tmp_path / "results" / "octo" / "app" / "run" / run_id / "run.json").read_text()
    )
    assert (run["status"], run["reason"]) == ("error", "interrupted")
    # The build that settled it deletes its own checkout just after posting the final status.
    wait_for(lambda: not list((tmp_path / "bot-data" / "checkouts").glob("*")), 30)
    assert docker_client.networks.list(filters={"label": f"dockercise.run={run_id}"}) == []


def test_idle_and_slow_clients_do_not_stop_serve(bot: Bot) -> None:
    """300 idle connections and slowloris ones hold no thread of `dockercise serve`."""
    server = bot.serve()
    threads = threads_of(server.pid)
    with siege(bot.port):
        assert answer_time(f"{bot.url}/healthz") < 2
        assert threads_of(server.pid) < threads + IDLE // 10
    assert answer_time(f"{bot.url}/healthz") < 2


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
    web.send_signal(signal.SIGTERM)
    web.wait(timeout=20)
    calls = len(github.calls)
    time.sleep(0.5)
    assert github.statuses_for(sha) == []  # recorded only: the web process calls no GitHub
    assert github.calls[calls:] == []
    bot.serve()  # a new process, the same queue on disk: its announcer picks the build up
    assert final_status(github, sha)["state"] == "success", bot.output()
    first = github.statuses_for(sha)[0]
    assert (first["state"], first["description"]) == ("pending", "build queued")


def test_no_status_without_a_pipeline_or_for_a_refused_branch(bot: Bot, github: FakeGitHub) -> None:
    bot.serve()
    plain = github.push("octo/plain", {"README": "no pipeline\n"})
    assert bot.deliver("push", push_payload(github, "octo/plain", plain), "plain-1") == 202
    only_main = "meta: {on: {push: {branches: [main]}}}\n" + PASSING
    github.push("octo/app", {".dockercise.yml": only_main})
    topic = github.push("octo/app", {"x": "1\n"}, branch="topic")
    assert bot.deliver("push", push_payload(github, "octo/app", topic, "topic"), "topic-1") == 202
    time.sleep(3)
    assert github.statuses_for(plain) == []
    assert github.statuses_for(topic) == []
    assert not any(c[1].endswith("/info/refs") for c in github.calls)  # nothing was cloned
