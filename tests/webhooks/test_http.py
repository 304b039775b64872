"""The HTTP layer: signed real deliveries in, typed events to the bot, JSON answers out."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from flask import Blueprint

from tests.webhooks.conftest import (
    EVENTS_SECRET,
    GITHUB_SECRET,
    PAYLOAD_FILES,
    Hooks,
    MakeHooks,
    event_name,
    load,
)
from tests.webhooks.test_events import REMOTE, expected_type
from webhooks.app import WebhookConfig
from webhooks.events import Ignored, PingEvent, parse_dockercise, parse_github
from webhooks.verify import sign

PUSH = (
    Path(__file__).parent / "github-payloads" / "push.with-new-branch.payload.json"
).read_bytes()
REMOTE_BODY = json.dumps(REMOTE).encode()


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.name)
def test_real_delivery(hooks: Hooks, path: Path) -> None:
    body = path.read_bytes()  # signed exactly as stored, as GitHub signs what it sends
    response = hooks.post_github(body, event=event_name(path), delivery="guid-1")
    expected = expected_type(path)
    answer = response.get_json()
    if expected is PingEvent:
        assert response.status_code == 200
        assert answer["ok"] is True and answer["zen"]
        assert hooks.github.events == []
    elif expected is Ignored:
        assert response.status_code == 202
        assert answer["ignored"] is True and answer["reason"]
        assert hooks.github.events == []
    else:
        assert response.status_code == 202
        assert answer == {"queued": True, "delivery": "guid-1"}
        assert hooks.github.events == [parse_github(event_name(path), "guid-1", json.loads(body))]
        assert type(hooks.github.events[0]) is expected


@pytest.mark.parametrize(
    ("signature", "secret"),
    [
        pytest.param(None, "wrong-secret", id="wrong-secret"),
        pytest.param("", GITHUB_SECRET, id="missing"),
        pytest.param(sign(PUSH, GITHUB_SECRET).replace("sha256=", "sha1="), "", id="sha1"),
        pytest.param(sign(PUSH + b"\n", GITHUB_SECRET), "", id="tampered-body"),
        pytest.param(sign(PUSH, EVENTS_SECRET), "", id="events-secret"),
    ],
)
def test_bad_signature_is_401_and_nothing_done(
    hooks: Hooks, signature: str | None, secret: str
) -> None:
    response = hooks.post_github(PUSH, signature=signature, secret=secret)
    assert response.status_code == 401
    assert response.get_json()["error"].startswith("signature invalid")
    assert hooks.github.events == []


def test_signature_is_checked_before_anything_else(hooks: Hooks) -> None:
    response = hooks.post_github(b"not json", event=None, delivery=None, signature="sha256=00")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("event", "delivery", "header"),
    [
        (None, "d-1", "X-GitHub-Event"),
        ("push", None, "X-GitHub-Delivery"),
        ("push", "has spaces", "X-GitHub-Delivery"),
        ("push", "x" * 101, "X-GitHub-Delivery"),
        ("push;rm", "d-1", "X-GitHub-Event"),
    ],
)
def test_missing_or_bad_header_is_400_naming_it(
    hooks: Hooks, event: str | None, delivery: str | None, header: str
) -> None:
    response = hooks.post_github(PUSH, event=event, delivery=delivery)
    assert response.status_code == 400
    assert response.get_json()["header"] == header
    assert header in response.get_json()["error"]
    assert hooks.github.events == []


@pytest.mark.parametrize(
    "body", [b"", b"payload=%7B%7D", b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000]
)
def test_not_json_is_400(hooks: Hooks, body: bytes) -> None:
    response = hooks.post_github(body)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("body is not JSON")


def test_invalid_payload_is_400_naming_the_field(hooks: Hooks) -> None:
    payload = load("push.with-new-branch.payload")
    del payload["repository"]["full_name"]
    response = hooks.post_github(json.dumps(payload).encode())
    assert response.status_code == 400
    assert response.get_json()["field"] == "repository.full_name"
    assert hooks.github.events == []


def test_body_over_the_limit_is_413_unread(make_hooks: MakeHooks) -> None:
    hooks = make_hooks(max_body=len(PUSH) - 1)
    response = hooks.post_github(PUSH)
    assert response.status_code == 413
    assert "error" in response.get_json()
    assert hooks.github.events == []
    assert hooks.post_github(b"{}", event="zen").status_code == 202  # small bodies still pass


def test_streamed_body_over_the_limit_is_413(make_hooks: MakeHooks) -> None:
    """A chunked body (no Content-Length) is cut off at the limit too."""
    hooks = make_hooks(max_body=1000)
    response = hooks.client.post(
        "/webhooks/github",
        input_stream=io.BytesIO(PUSH),
        headers={"X-Hub-Signature-256": sign(PUSH, GITHUB_SECRET)},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert hooks.github.events == []


def test_unknown_event_is_202_ignored(hooks: Hooks) -> None:
    response = hooks.post_github(b'{"action": "created"}', event="star")
    assert response.status_code == 202
    assert response.get_json()["reason"] == "event 'star' is not handled"
    assert hooks.github.events == []


def test_refusal_from_the_bot_is_200_with_its_reason(make_hooks: MakeHooks) -> None:
    hooks = make_hooks()
    hooks.github.answer = "duplicate"
    response = hooks.post_github(PUSH, delivery="again")
    assert response.status_code == 200
    assert response.get_json() == {"queued": False, "reason": "duplicate", "delivery": "again"}


def test_callback_failure_is_500_without_details(
    hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    hooks.github.error = RuntimeError("redis down: token ghs_s3cr3t")
    with caplog.at_level(logging.ERROR, logger="dockercise.webhooks"):
        response = hooks.post_github(PUSH)
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "ghs_s3cr3t" not in text and "redis" not in text
    assert response.get_json()["error"].startswith("internal error")
    assert any(r.exc_info for r in caplog.records), "the failure is logged with its traceback"


def test_healthz(hooks: Hooks) -> None:
    response = hooks.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/webhooks/github", 405),
        ("PUT", "/webhooks/dockercise", 405),
        ("POST", "/healthz", 405),
        ("POST", "/webhooks/gitlab", 404),
    ],
)
def test_http_errors_on_webhook_paths_are_json(
    hooks: Hooks, method: str, path: str, status: int
) -> None:
    response = hooks.client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json and response.get_json()["error"]


def test_extra_blueprints_are_served_with_their_own_error_pages(make_hooks: MakeHooks) -> None:
    site = Blueprint("site", __name__)
    site.add_url_rule("/runs", "runs", lambda: "<h1>runs</h1>")
    hooks = make_hooks(extra_blueprints=[site])
    assert hooks.client.get("/runs").get_data() == b"<h1>runs</h1>"
    missing = hooks.client.get("/nowhere")
    assert missing.status_code == 404 and not missing.is_json


@pytest.mark.parametrize("empty", ["github_secret", "events_secret"])
def test_config_refuses_an_empty_secret(empty: str) -> None:
    settings = {
        "github_secret": "a",
        "events_secret": "b",
        "on_github_event": print,
        "on_dockercise_event": print,
        empty: "",
    }
    with pytest.raises(ValueError, match=empty):
        WebhookConfig(**settings)  # type: ignore[arg-type]


def test_remote_build_complete_is_queued(hooks: Hooks) -> None:
    response = hooks.post_dockercise(REMOTE_BODY)
    assert response.status_code == 202
    assert response.get_json() == {"queued": True, "run_id": REMOTE["run_id"]}
    assert hooks.dockercise.events == [parse_dockercise(REMOTE)]
    assert hooks.github.events == []


@pytest.mark.parametrize(
    ("secret", "header"),
    [
        pytest.param(GITHUB_SECRET, "X-Dockercise-Signature-256", id="github-secret"),
        pytest.param(EVENTS_SECRET, "X-Hub-Signature-256", id="github-header"),
    ],
)
def test_remote_build_complete_bad_signature(hooks: Hooks, secret: str, header: str) -> None:
    response = hooks.post_dockercise(REMOTE_BODY, secret=secret, header=header)
    assert response.status_code == 401
    assert hooks.dockercise.events == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"nope", "body is not JSON"),
        (json.dumps(dict(REMOTE, status="passed")).encode(), "payload invalid: status: "),
        (json.dumps({k: v for k, v in REMOTE.items() if k != "sha"}).encode(), "payload invalid"),
    ],
)
def test_remote_build_complete_bad_body_is_400(hooks: Hooks, body: bytes, error: str) -> None:
    response = hooks.post_dockercise(body)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(error)
    assert hooks.dockercise.events == []


def test_remote_build_complete_duplicate_and_failure(make_hooks: MakeHooks) -> None:
    hooks = make_hooks()
    hooks.dockercise.answer = "duplicate"
    response = hooks.post_dockercise(REMOTE_BODY)
    assert response.status_code == 200
    assert response.get_json()["reason"] == "duplicate"
    hooks.dockercise.error = KeyError("boom")
    response = hooks.post_dockercise(REMOTE_BODY)
    assert response.status_code == 500
    assert "boom" not in response.get_data(as_text=True)


def test_remote_build_complete_over_the_limit(make_hooks: MakeHooks) -> None:
    hooks = make_hooks(max_body=100)
    assert hooks.post_dockercise(REMOTE_BODY).status_code == 413
    assert hooks.dockercise.events == []
