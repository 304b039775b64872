"""Scale-out: a real Redis, the web side under gunicorn and three `dockercise worker` processes.

Each worker has its own data directory, as on its own machine; they share only
Redis (queue and state), the results store and the Docker engine.  A worker
that dies is settled by the start-up reap of a worker that joins after it
(the same code the minutely chore runs), which keeps this test short.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.state import Build
from bot.state.redis_store import RedisState
from runner.store import open_store
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import BIN, Bot, final_status, push_payload, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

QUICK = "test: {img: dockercise/busybox, run: echo built}\n"
SLOW = "test: {img: dockercise/busybox, run: sleep 4; echo built}\n"
PUSHES = 30


@pytest.fixture
def cluster(bot: Bot, fresh_redis: str, tmp_path: Path) -> Iterator[Bot]:
    """The bot's processes pointed at Redis, their temporary files under this test's tmp_path."""
    (tmp_path / "tmp").mkdir()
    bot.env.update(DOCKERCISE_REDIS_URL=fresh_redis, TMPDIR=str(tmp_path / "tmp"))
    bot.start(str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{bot.port}", "bot.web:create_bot_app()")
    bot.wait_healthy()
    yield bot
    bot.stop()
    for container in ours(tmp_path):  # after a failure: leave nothing behind
        container.remove(force=True)


def start_worker(bot: Bot, number: int, threads: int) -> subprocess.Popen[bytes]:
    """`dockercise worker` with its own data directory, as on a machine of its own."""
    env = {
        **bot.env,
        "DOCKERCISE_DATA_DIR": str(bot.logs.parent / f"worker-{number}"),
        "DOCKERCISE_WORKERS": str(threads),
    }
    with (bot.logs / f"worker-{number}.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dockercise"), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    bot.procs.append(proc)  # stopped with the others
    return proc


def worker_name(proc: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def ours(tmp_path: Path) -> list[Any]:
    """Containers of dockercise runs whose files are under this test's tmp_path (not a
    parallel test's)."""
    client = docker.from_env()
    try:
        # Sparse: the list's own summary (mounts included), not one inspect per container,
        # which fails when a parallel test's container goes between the list and it.
        found = client.containers.list(all=True, sparse=True, filters={"label": "dockercise.run"})
        return [
            c
            for c in found
            if any(str(m.get("Source", "")).startswith(str(tmp_path)) for m in c.attrs["Mounts"])
        ]
    finally:
        client.close()


def builds(redis_url: str) -> list[Build]:
    state = RedisState(redis_url)
    try:
        return state.recent(1000)
    finally:
        state.close()


def status_output(bot: Bot) -> str:
    done = subprocess.run(
        [str(BIN / "dockercise"), "status"], env=bot.env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_many_pushes_each_built_once_and_a_dead_worker_settled(
    cluster: Bot, github: FakeGitHub, fresh_redis: str, tmp_path: Path
) -> None:
    bot = cluster
    workers = [start_worker(bot, n, threads) for n, threads in enumerate((2, 2, 1))]
    shas = [
        github.push("octo/app", {".dockercise.yml": QUICK, "n": f"{i}\n"}) for i in range(PUSHES)
    ]
    for i, sha in enumerate(shas):
        assert bot.deliver("push", push_payload(github, "octo/app", sha), f"push-{i}") == 202

    for sha in shas:
        assert final_status(github, sha, 90)["state"] == "success", bot.output()
    time.sleep(1)  # a second build of any commit would have posted by now
    for sha in shas:
        assert [s["state"] for s in github.statuses_for(sha)] == ["pending", "pending", "success"]
    done = builds(fresh_redis)
    assert len(done) == PUSHES
    assert {(b.status, b.state, b.attempts) for b in done} == {("done", "success", 1)}
    store = open_store(str(tmp_path / "results" / "octo" / "app"), tmp_path / "store", {})
    try:
        assert len(store.run_ids()) == PUSHES  # no build ran twice
    finally:
        store.close()
    by_worker = collections.Counter(b.worker for b in done)
    assert set(by_worker) <= {worker_name(w) for w in workers}
    assert len(by_worker) >= 2, by_worker  # spread over the workers

    # A worker dies mid-build: its build is settled by the others and built again.
    slow = github.push("octo/app", {".dockercise.yml": SLOW})
    assert bot.deliver("push", push_payload(github, "octo/app", slow), "slow-1") == 202

    def started() -> Build | None:
        found = [b for b in builds(fresh_redis) if b.job.sha == slow and b.run_id]
        return found[0] if found else None

    build: Build = wait_for(started, 60)
    client = docker.from_env()
    try:
        wait_for(
            lambda: client.containers.list(
                filters={"label": f"dockercise.run={build.run_id}", "status": "running"}
            ),
            30,
        )
    finally:
        client.close()
    assert ours(tmp_path), "the running build's container is not recognised as this test's"
    shown = status_output(bot)
    assert "queue (Redis): " in shown
    assert f"{build.worker}  building octo/app@{slow[:12]}" in shown
    (victim,) = [w for w in workers if worker_name(w) == build.worker]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    wait_for(lambda: "presumed dead" in status_output(bot), 30)  # DOCKERCISE_STALE_AFTER=3
    assert [s["state"] for s in github.statuses_for(slow)] == ["pending", "pending"]
    start_worker(bot, 3, 1)  # its start-up reap settles the dead build
    assert final_status(github, slow, 60)["state"] == "success", bot.output()
    states = [s["state"] for s in github.statuses_for(slow)]
    # queued, running, died and re-queued, running again, done
    assert states == ["pending", "pending", "pending", "pending", "success"], states

    def settled() -> Build | None:  # the worker records the outcome after posting it
        found = [b for b in builds(fresh_redis) if b.job.sha == slow and b.status == "done"]
        return found[0] if found else None

    again: Build = wait_for(settled, 10)
    assert (again.state, again.attempts) == ("success", 2)
    assert again.worker != build.worker
    for sha in [*shas, slow]:
        assert github.statuses_for(sha)[-1]["state"] != "pending"
    assert ours(tmp_path) == []
    # The new worker's start swept what the dead one left, and finished its run.
    dead = open_store(str(tmp_path / "results" / "octo" / "app"), tmp_path / "store", {})
    assert build.run_id is not None
    run = dead.read_json(build.run_id, "run.json")
    assert run is not None and (run["status"], run["reason"]) == ("error", "interrupted")
    assert not list(Path(tempfile.gettempdir()).glob(f"dockercise-{build.run_id}-*"))
