"""SPEC §10 end to end: secrets bound to their repository, downstream events, forks and
installations, with the bot running for real against the fake GitHub and the Docker engine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner.encryption import SECURE_PREFIX, encrypt, generate_key
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import (
    WEBHOOK_SECRET,
    Bot,
    bot_env,
    final_status,
    free_port,
    pull_request_payload,
    push_payload,
)
from webhooks.verify import sign

pytestmark = [pytest.mark.docker, pytest.mark.slow]

KEY = generate_key()
EVENTS_SECRET = "events-secret-for-tests"
LIB_TEST = "test: {img: dockercise/busybox, run: echo lib ok}\n"


def _secure(value: str, repo: str | None) -> str:
    return SECURE_PREFIX + encrypt(value, KEY, repo)


def _finals(github: FakeGitHub, sha: str) -> list[str]:
    return [s["state"] for s in github.statuses_for(sha) if s["state"] != "pending"]


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records what it is sent; `redirect_to` answers 307."""

    redirect_to: str | None = None
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((self.path, dict(self.headers), body))
                if receiver.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(redirect_to: str | None = None) -> Receiver:
        made.append(Receiver(redirect_to))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def start_bot(github: FakeGitHub, tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Bot]]:
    bots: list[Bot] = []

    def start(extra: dict[str, str]) -> Bot:
        port = free_port()
        logs = tmp_path / f"logs-{len(bots)}"
        logs.mkdir()
        env = bot_env(github, tmp_path, port) | {"DOCKERCISE_STALE_AFTER": "3"} | extra
        bots.append(Bot(env, port, logs))
        bots[-1].serve()
        return bots[-1]

    yield start
    for bot in bots:
        bot.stop()
        print(bot.output())  # shown when the test failed


def _push(bot: Bot, github: FakeGitHub, repo: str, files: dict[str, str], **how: Any) -> str:
    branch = how.get("branch", "main")
    sha = github.push(repo, files, branch=branch)
    payload = push_payload(github, repo, sha, branch)
    if "installation" in how:
        payload["installation"] = {"id": how["installation"]}
    assert bot.deliver("push", payload, f"{repo.replace('/', '-')}-{sha[:12]}") == 202
    return sha


def test_a_secret_opens_only_in_the_repository_it_was_encrypted_for(
    start_bot: Callable[[dict[str, str]], Bot], github: FakeGitHub
) -> None:
    bot = start_bot({"DOCKERCISE_SECRET_KEY": KEY, "DOCKERCISE_LEGACY_SECRETS": "octo/old"})

    def pipeline(value: str) -> str:
        return (
            f'meta: {{secrets: {{TOKEN: "{value}"}}}}\n'
            'use: {img: dockercise/busybox, env: [TOKEN], run: test "$TOKEN" = the-token}\n'
        )

    lib = _push(
        bot, github, "octo/lib", {".dockercise.yml": pipeline(_secure("the-token", "octo/lib"))}
    )
    assert final_status(github, lib)["state"] == "success", bot.output()

    # lib's value copied into app's pipeline: refused before anything runs, naming it.
    copied = _push(
        bot, github, "octo/app", {".dockercise.yml": pipeline(_secure("the-token", "octo/lib"))}
    )
    status = final_status(github, copied)
    assert status["state"] == "error"
    assert status["description"].startswith(
        "build error: cannot decrypt TOKEN (meta.secrets): encrypted for another repository;"
        " make it again with dockercise encrypt --repo octo/app"
    )
    assert not (Path(bot.env["DOCKERCISE_RESULTS"]) / "octo/app").exists()  # nothing ran

    # Unbound values: only where the operator still accepts them.
    unbound = pipeline(_secure("the-token", None))
    refused = _push(bot, github, "octo/app", {".dockercise.yml": unbound})
    status = final_status(github, refused)
    assert status["state"] == "error"
    assert status["description"].startswith(
        "build error: cannot decrypt TOKEN (meta.secrets): encrypted for no repository"
    )
    old = _push(bot, github, "octo/old", {".dockercise.yml": unbound})
    assert final_status(github, old)["state"] == "success", bot.output()


def test_forks_send_no_events_and_count_as_no_green_build(
    start_bot: Callable[[dict[str, str]], Bot],
    github: FakeGitHub,
    receivers: Callable[..., Receiver],
) -> None:
    hook = receivers()
    elsewhere = receivers()
    redirecting = receivers(redirect_to=f"{elsewhere.url}/moved")
    bot = start_bot(
        {"DOCKERCISE_EVENTS_SECRET": EVENTS_SECRET, "DOCKERCISE_DOWNSTREAM_ALLOW": "127.0.0.1"}
    )
    lib = (
        f'meta: {{downstream: ["{hook.url}/hook", "{redirecting.url}/old"]}}\n'
        "test: {img: dockercise/busybox, run: echo lib ok}\n"
    )
    upstream_app = (
        "meta: {on: {upstream: [octo/lib]}}\ntest: {img: dockercise/busybox, run: echo app}\n"
    )
    remote_app = (
        "lib: {remote: octo/lib, timeout: 120s}\n"
        "test: {img: dockercise/busybox, after: lib, run: echo built against the new lib}\n"
    )
    app = _push(bot, github, "octo/app", {".dockercise.yml": upstream_app})
    assert final_status(github, app)["state"] == "success"  # the bot now knows app's upstream
    waiting = _push(bot, github, "octo/waits", {".dockercise.yml": remote_app})

    # A fork's green pull request: no event to anyone, no upstream build, no remote stage.
    github.push("octo/lib", {"README": "lib\n"})  # main, the default branch, comes first
    github.push("octo/lib", {".dockercise.yml": lib}, branch="from-fork")
    fork_sha = github.open_pull_request("octo/lib", 7, "from-fork")
    fork = pull_request_payload(github, "octo/lib", 7, fork_sha, "mallory/lib")
    github.grant("octo/lib", fork["pull_request"]["user"]["login"], "read")  # no approval (§11)
    assert bot.deliver("pull_request", fork, "lib-fork") == 202
    assert final_status(github, fork_sha)["state"] == "success", bot.output()
    time.sleep(4)
    assert _finals(github, app) == ["success"]  # no upstream build for a fork's green build
    assert hook.received == [] and _finals(github, waiting) == []
    # A branch that is not the default one satisfies no `remote: octo/lib` either.
    feature = _push(bot, github, "octo/lib", {".dockercise.yml": lib}, branch="feature")
    assert final_status(github, feature)["state"] == "success", bot.output()
    time.sleep(4)
    assert _finals(github, waiting) == []
    feature_events = [json.loads(body)["sha"] for _, _, body in hook.received]
    assert feature_events == [feature]  # the fork's build sent nothing

    # The default branch: the event goes out, signed with the events secret, redirects stay.
    main = _push(bot, github, "octo/lib", {".dockercise.yml": lib})
    assert final_status(github, main)["state"] == "success", bot.output()
    assert final_status(github, waiting, 90)["state"] == "success", bot.output()
    deadline = time.monotonic() + 30
    while len(hook.received) < 2:
        assert time.monotonic() < deadline, bot.output()
        time.sleep(0.2)
    path, headers, body = hook.received[-1]
    assert path == "/hook" and json.loads(body)["sha"] == main
    assert headers["X-Dockercise-Signature-256"] == sign(body, EVENTS_SECRET)
    assert sign(body, WEBHOOK_SECRET) != sign(body, EVENTS_SECRET)
    assert [p for p, _, _ in redirecting.received] == ["/old", "/old"]
    assert elsewhere.received == []  # a 307 is never followed
    assert "a redirect: not followed" in bot.output()


def test_downstream_urls_outside_the_allowance_get_nothing(
    start_bot: Callable[[dict[str, str]], Bot],
    github: FakeGitHub,
    receivers: Callable[..., Receiver],
) -> None:
    hook = receivers()
    bot = start_bot({"DOCKERCISE_EVENTS_SECRET": EVENTS_SECRET})  # 127.0.0.1 not allowed
    lib = f'meta: {{downstream: ["{hook.url}/hook"]}}\n' + LIB_TEST
    sha = _push(bot, github, "octo/lib", {".dockercise.yml": lib})
    assert final_status(github, sha)["state"] == "success", bot.output()
    deadline = time.monotonic() + 30
    while "not sent" not in bot.output():
        assert time.monotonic() < deadline, bot.output()
        time.sleep(0.2)
    assert f"{hook.url}/hook is not https://" in bot.output()
    assert hook.received == []


def test_upstream_and_remote_see_only_their_installation(
    start_bot: Callable[[dict[str, str]], Bot], github: FakeGitHub
) -> None:
    github.installations["other/lib"] = 78
    bot = start_bot({})
    upstream_app = (
        "meta: {on: {upstream: [other/lib]}}\ntest: {img: dockercise/busybox, run: echo app}\n"
    )
    app = _push(bot, github, "octo/app", {".dockercise.yml": upstream_app})
    assert final_status(github, app)["state"] == "success"
    remote_app = (
        "lib: {remote: other/lib@main, timeout: 120s}\n"
        "test: {img: dockercise/busybox, after: lib, run: 'true'}\n"
    )
    waiting = _push(bot, github, "octo/waits", {".dockercise.yml": remote_app})
    status = final_status(github, waiting, 30)
    assert status["state"] == "failure", bot.output()
    run_id = status["target_url"].rsplit("/", 1)[1]
    stage = Path(bot.env["DOCKERCISE_RESULTS"]) / "octo/waits/run" / run_id / "lib.json"
    assert json.loads(stage.read_text())["reason"] == (
        "remote other/lib is not a repository of this installation of the app;"
        " remote stages wait only for those"
    )

    lib = "test: {img: dockercise/busybox, run: echo lib}\n"
    other = _push(bot, github, "other/lib", {".dockercise.yml": lib}, installation=78)
    assert final_status(github, other)["state"] == "success", bot.output()
    time.sleep(4)
    assert _finals(github, app) == ["success"]  # another installation's green builds nothing
    assert "is of another installation than other/lib" in bot.output()
