"""The bot run as a user runs it, fed signed deliveries (shared by the bot's end-to-end tests)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.builds import Builder
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import Settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from webhooks.verify import sign

BIN = Path(sys.executable).parent
PAYLOADS = Path(__file__).resolve().parents[1] / "webhooks" / "github-payloads"

WEBHOOK_SECRET = "webhook-secret-for-tests"


def bot_env(github: FakeGitHub, tmp_path: Path, port: int = 8080) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": str(github.app_id),
        "GITHUB_PRIVATE_KEY": github.private_key,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": github.url,
        "DOCKERCISE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DOCKERCISE_DATA_DIR": str(tmp_path / "bot-data"),
        "DOCKERCISE_RESULTS": str(tmp_path / "results"),
        # Tests send nothing to 169.254.169.254: the start-up check is off unless a test
        # points it at a container of its own.
        "DOCKERCISE_METADATA_PROBE": "",
        "GITHUB_CLIENT_ID": github.client_id,
        "GITHUB_CLIENT_SECRET": github.client_secret,
        "GITHUB_WEB_URL": github.url,
    }


def push_job(github: FakeGitHub, repo: str, sha: str, **extra: Any) -> Job:
    """A push build of `sha` on main, as the announcer records it; `extra` overrides fields."""
    fields: dict[str, Any] = {
        "id": f"b-{sha[:8]}",
        "kind": JobKind.PUSH,
        "repo": repo,
        "clone_url": github.clone_url(repo),
        "ref": "refs/heads/main",
        "sha": sha,
        "branch": "main",
        "installation_id": github.installation_id,
        "delivery": f"d-{sha[:8]}",
        "fork": False,
    }
    return Job(**(fields | extra))


def build_now(settings: Settings, job: Job) -> SqliteState:
    """Record `job` and build it as a queue worker does; the state, still open, to look at."""
    state = SqliteState(settings.data_dir / "state.db")
    assert state.record(job) == job
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    Builder(settings, app, state, "test-worker").build(job)
    return state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], seconds: float = 60) -> Any:
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

        wait_for(healthy, 30)

    def deliver(
        self, event: str, payload: dict[str, Any], delivery: str, secret: str = WEBHOOK_SECRET
    ) -> int:
        """POST a signed GitHub delivery; the HTTP status of the answer."""
        body = json.dumps(payload).encode()
        return self.post(
            "/webhooks/github",
            body,
            {
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(body, secret),
            },
        )

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=body,
            headers={"Content-Type": "application/json", **headers},
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


def push_payload(github: FakeGitHub, repo: str, sha: str, branch: str = "main") -> dict[str, Any]:
    """A real push delivery (from GitHub's examples), pointed at our repository and commit."""
    payload: dict[str, Any] = json.loads(
        (PAYLOADS / "push.with-installation.payload.json").read_text()
    )
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
    payload: dict[str, Any] = json.loads(
        (PAYLOADS / "pull_request.opened.payload.json").read_text()
    )
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


def rerequest(
    github: FakeGitHub, event: str, repo: str, sha: str, branch: str, external_id: str = ""
) -> dict[str, Any]:
    """A real `rerequested` delivery (GitHub's example), pointed at our repository and commit."""
    payload: dict[str, Any] = json.loads(
        (PAYLOADS / f"{event}.rerequested.payload.json").read_text()
    )
    owner, name = repo.split("/")
    payload["installation"] = {"id": github.installation_id}
    payload["repository"].update(name=name, full_name=repo, clone_url=github.clone_url(repo))
    payload["repository"]["owner"]["login"] = owner
    subject = payload[event]
    subject["head_sha"] = sha
    if event == "check_run":
        subject["external_id"] = external_id
        subject["check_suite"]["head_branch"] = branch
    else:
        subject["head_branch"] = branch
        # What a lying (or mistaken) payload says: a pull request of the repository itself.
        for pr in subject["pull_requests"]:
            pr["head"]["sha"] = sha
    return payload


def final_status(github: FakeGitHub, sha: str, seconds: float = 60) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        done = [s for s in github.statuses_for(sha) if s["state"] != "pending"]
        return done[-1] if done else None

    found: dict[str, Any] = wait_for(final, seconds)
    return found


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private `redis-server` on a free loopback port, nothing persisted; (process, URL).

    For the bot's tests and benchmarks; the caller terminates the process.
    """
    import redis

    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError(
            "redis-server not found: run scripts/setup --test (Debian: redis-server)"
        )
    port = free_port()
    with (folder / "redis.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return proc, url
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    log_text = (folder / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"redis-server did not answer in 10 s: {log_text}") from None
                time.sleep(0.05)
    finally:
        client.close()
