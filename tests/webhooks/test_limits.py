"""Range checks on every number and date, bounded bodies however sent, headers on every answer."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Blueprint
from werkzeug.serving import make_server

from tests.webhooks.conftest import GITHUB_SECRET, Hooks, MakeHooks, load
from tests.webhooks.test_events import REMOTE
from webhooks.app import DEFAULT_MAX_BODY, SECURITY_HEADERS, WebhookConfig, create_app
from webhooks.verify import sign

Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Change:
    """Set a dotted path (`pull_request.head.ref`, `commits.0.added`) of a payload."""

    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


PR = "pull_request.opened.payload"
PUSH = "push.with-new-branch.payload"
BAD_GITHUB = [
    (PR, "number", -1),
    (PR, "number", 0),
    (PR, "number", 2**31),
    (PR, "number", 2**64),
    (PR, "number", 1.5),
    (PR, "number", "7"),
    (PR, "installation.id", 2**63),
    (PR, "installation.id", -5),
    (PR, "pull_request.head.ref", "feature\nbranch"),
    (PR, "pull_request.head.ref", "--upload-pack=evil"),
    (PR, "pull_request.head.ref", "a..b"),
    (PR, "pull_request.base.ref", "main\0"),
    (PR, "pull_request.base.ref", "x" * 300),
    (PR, "sender.login", "bad\x1b[2Jlogin"),
    (PUSH, "ref", "refs/heads/\0"),
    (PUSH, "ref", "refs/heads/a b"),
    (PUSH, "repository.default_branch", ""),
    (PUSH, "repository.clone_url", "https://github.com/\0x.git"),
    (PUSH, "pusher.name", "two\nlines"),
    (PUSH, "pusher.name", "x" * 2000),
    (PUSH, "head_commit.message", "nul \0 in a message"),
    (PUSH, "commits.0.added", ["ok.txt", "nul\0.txt"]),
    ("installation.created.payload", "installation.id", 0),
    ("ping.payload", "hook_id", 2**53),
]


@pytest.mark.parametrize(("name", "path", "value"), BAD_GITHUB)
def test_a_bad_value_in_a_github_payload_is_400_naming_it(
    hooks: Hooks, name: str, path: str, value: Any
) -> None:
    payload = load(name)
    _set(path, value)(payload)
    event = name.split(".", 1)[0]
    response = hooks.post_github(json.dumps(payload).encode(), event=event)
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    field = answer["field"]
    assert path.startswith(field) or field.startswith(path), (field, path)
    assert "\n" not in answer["error"] and answer["error"].startswith(f"payload invalid: {field}")
    assert hooks.github.events == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("finished", "0001-01-01T00:00:00+05:00"),  # before year 1 in UTC: an overflow
        ("finished", "9999-12-31T23:59:59-05:00"),  # after year 9999 in UTC
        ("finished", "1969-12-31T23:59:59Z"),
        ("finished", "2024-13-01T00:00:00Z"),
        ("finished", "2024-05-01T12:00:00"),  # no offset
        ("finished", "x" * 100_000),
        ("finished", 1714564984),
        ("ref", "refs/heads/\0"),
        ("ref", ""),
        ("url", "javascript:alert(1)"),
        ("url", "https://ci.example/\nrun"),
        ("pipeline", "owner/lib\0"),
    ],
)
def test_a_bad_value_in_a_remote_build_complete_is_400_naming_it(
    hooks: Hooks, field: str, value: Any
) -> None:
    response = hooks.post_dockercise(json.dumps(dict(REMOTE, **{field: value})).encode())
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field
    assert hooks.dockercise.events == []


@pytest.mark.parametrize(
    "finished", ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00", "2024-05-01T14:03:04+02:00"]
)
def test_times_at_the_ends_of_the_range_are_accepted(hooks: Hooks, finished: str) -> None:
    response = hooks.post_dockercise(json.dumps(dict(REMOTE, finished=finished)).encode())
    assert response.status_code == 202


def test_a_body_of_exactly_the_limit_is_read(make_hooks: MakeHooks) -> None:
    body = json.dumps(load(PUSH)).encode()
    hooks = make_hooks(max_body=len(body))
    assert hooks.post_github(body).status_code == 202
    hooks = make_hooks(max_body=len(body) - 1)
    assert hooks.post_github(body).status_code == 413


@pytest.fixture
def served() -> Iterator[tuple[str, int]]:
    """The receiver with its real 25 MB limit, served on 127.0.0.1 by Werkzeug's server."""
    config = WebhookConfig(
        github_secret=GITHUB_SECRET,
        events_secret="events",
        on_github_event=lambda event: None,
        on_dockercise_event=lambda event: None,
    )
    server = make_server("127.0.0.1", 0, create_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _post(where: tuple[str, int], body: bytes, chunked: bool) -> int:
    connection = http.client.HTTPConnection(*where, timeout=60)
    headers = {"X-Hub-Signature-256": sign(body, GITHUB_SECRET), "X-GitHub-Event": "push"}
    headers["X-GitHub-Delivery"] = "big"
    try:
        if chunked:
            pieces = (body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20))
            connection.request("POST", "/webhooks/github", pieces, headers, encode_chunked=True)
        else:
            connection.request("POST", "/webhooks/github", body, headers)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the whole body is sent
    try:
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_over_25_mb_is_413_however_it_is_sent(
    served: tuple[str, int], chunked: bool
) -> None:
    """A signed body one byte over the limit: refused as too large, never as unsigned (401)."""
    body = b"{" + b" " * (DEFAULT_MAX_BODY - 1) + b"}"
    assert len(body) == DEFAULT_MAX_BODY + 1
    assert _post(served, body, chunked) == 413


def test_a_chunked_body_under_the_limit_is_read_whole(served: tuple[str, int]) -> None:
    body = json.dumps(load(PUSH)).encode()
    assert _post(served, body, chunked=True) == 202


def _raises() -> str:
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("POST", "/webhooks/github", 401),
        ("POST", "/webhooks/dockercise", 401),
        ("GET", "/webhooks/github", 405),
        ("POST", "/nowhere", 404),
        ("GET", "/nowhere", 404),
        ("GET", "/page", 200),
        ("GET", "/bug", 500),
    ],
)
def test_every_answer_carries_the_security_headers(
    make_hooks: MakeHooks, method: str, path: str, status: int
) -> None:
    site = Blueprint("site", __name__)
    site.add_url_rule("/page", "page", lambda: "<p>page</p>")
    site.add_url_rule("/bug", "bug", _raises)
    hooks = make_hooks(extra_blueprints=[site])
    response = hooks.client.open(path, method=method)
    assert response.status_code == status
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value


def test_a_413_carries_the_security_headers(make_hooks: MakeHooks) -> None:
    hooks = make_hooks(max_body=10)
    response = hooks.post_github(b"{}" * 10)
    assert response.status_code == 413
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"]
