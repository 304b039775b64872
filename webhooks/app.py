"""The app factory: one Flask app for the webhooks (and the results website's blueprint).

Nothing is read from the environment here: the bot parses its settings once
and passes a `WebhookConfig`, so tests build an app with their own secrets
and callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from webhooks.dockercise_hooks import dockercise_blueprint
from webhooks.events import Event, RemoteBuildComplete
from webhooks.github_hooks import github_blueprint

__all__ = ["DEFAULT_MAX_BODY", "SECURITY_HEADERS", "WebhookConfig", "create_app"]

DEFAULT_MAX_BODY = 25 * 1024 * 1024
"""GitHub caps payloads at 25 MB and does not deliver bigger ones."""

_JSON_PATHS = ("/webhooks/", "/healthz")

SECURITY_HEADERS = {
    # Nothing the receiver answers is a page: no resource may load, nothing is sniffed.
    # Blueprints that serve pages (the results site) set their own policy first.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class WebhookConfig:
    """What the receiver needs; the callbacks only record or enqueue, and return fast.

    A callback returns None when the event is queued, or a short reason when
    it is not (e.g. "duplicate" for a redelivery already built).
    """

    github_secret: str
    events_secret: str
    on_github_event: Callable[[Event], str | None]
    on_dockercise_event: Callable[[RemoteBuildComplete], str | None]
    extra_blueprints: list[Blueprint] = field(default_factory=list)
    max_body: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        # An empty secret would let anyone sign a delivery; refuse to start with one.
        for name in ("github_secret", "events_secret"):
            if not getattr(self, name):
                raise ValueError(f"WebhookConfig.{name} is empty; webhooks need a secret")
        if self.max_body <= 0:
            raise ValueError(f"WebhookConfig.max_body must be positive, got {self.max_body}")


def _http_error(error: HTTPException) -> HTTPException | tuple[Response, int]:
    """JSON for errors on the webhook paths (404, 405, 413...); others keep Flask's pages."""
    if not request.path.startswith(_JSON_PATHS):
        return error
    code = error.code or 500
    return jsonify({"error": error.description or error.name}), code


def _secure(response: Response) -> Response:
    """On every response, errors (404, 405, 413, 500) and other blueprints' included."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


def _healthz() -> Response:
    return jsonify({"ok": True})


def create_app(config: WebhookConfig) -> Flask:
    """A new app: the GitHub and dockercise webhooks, `/healthz`, then `config.extra_blueprints`."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    app.register_blueprint(github_blueprint(config.github_secret, config.on_github_event))
    app.register_blueprint(dockercise_blueprint(config.events_secret, config.on_dockercise_event))
    app.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    for blueprint in config.extra_blueprints:
        app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_secure)
    return app
