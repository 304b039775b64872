"""The webhook tests' one fake of the bot (a recording callback), signed requests and apps."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from webhooks.app import WebhookConfig, create_app
from webhooks.events import Event, RemoteBuildComplete
from webhooks.verify import sign

PAYLOADS = Path(__file__).parent / "github-payloads"
PAYLOAD_FILES = sorted(PAYLOADS.glob("*.json"))
GITHUB_SECRET = "github-test-secret"
EVENTS_SECRET = "events-test-secret"

T = TypeVar("T")


def event_name(path: Path) -> str:
    """`<X-GitHub-Event>.<example>.json` -> the event name."""
    return path.name.split(".", 1)[0]


def load(name: str) -> dict[str, Any]:
    """A fresh copy of one real payload, e.g. `load("push.with-new-branch")`."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_bytes())
    return data


@dataclass
class Recorder(Generic[T]):
    """Stands in for the bot's callback: records what it is given, answers as told."""

    events: list[T] = field(default_factory=list)
    answer: str | None = None
    error: Exception | None = None

    def __call__(self, event: T) -> str | None:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        return self.answer


@dataclass
class Hooks:
    """A test client of a fresh app and the two recorders behind it."""

    client: FlaskClient
    github: Recorder[Event]
    dockercise: Recorder[RemoteBuildComplete]

    def post_github(
        self,
        body: bytes,
        event: str | None = "push",
        delivery: str | None = "delivery-1",
        signature: str | None = None,
        secret: str = GITHUB_SECRET,
    ) -> TestResponse:
        """POST signed `body` (with `secret`) unless `signature` is given; None drops a header."""
        headers = {
            "X-Hub-Signature-256": sign(body, secret) if signature is None else signature,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "Content-Type": "application/json",
        }
        return self.client.post(
            "/webhooks/github",
            data=body,
            headers={k: v for k, v in headers.items() if v is not None},
        )

    def post_dockercise(
        self, body: bytes, secret: str = EVENTS_SECRET, header: str = "X-Dockercise-Signature-256"
    ) -> TestResponse:
        return self.client.post(
            "/webhooks/dockercise",
            data=body,
            headers={header: sign(body, secret), "Content-Type": "application/json"},
        )


MakeHooks = Callable[..., Hooks]


@pytest.fixture
def make_hooks() -> MakeHooks:
    """Build an app with the recorders; keyword arguments override WebhookConfig fields."""

    def make(**overrides: Any) -> Hooks:
        github: Recorder[Event] = Recorder()
        dockercise: Recorder[RemoteBuildComplete] = Recorder()
        settings: dict[str, Any] = {
            "github_secret": GITHUB_SECRET,
            "events_secret": EVENTS_SECRET,
            "on_github_event": github,
            "on_dockercise_event": dockercise,
            **overrides,
        }
        app = create_app(WebhookConfig(**settings))
        return Hooks(app.test_client(), github, dockercise)

    return make


@pytest.fixture
def hooks(make_hooks: MakeHooks) -> Hooks:
    return make_hooks()
