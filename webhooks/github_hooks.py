"""`POST /webhooks/github`: GitHub's deliveries, verified, parsed and handed to the bot.

The view answers well within GitHub's 10 seconds because it only verifies,
parses and calls `on_event`, which records or enqueues and returns.  Order
matters: size limit, then signature, and only then headers and body.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, jsonify

from webhooks._http import deliver, guarded, json_body, required_header, verified_body
from webhooks.events import Event, Ignored, PingEvent, parse_github

__all__ = ["DELIVERY_HEADER", "EVENT_HEADER", "SIGNATURE_HEADER", "github_blueprint"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"


def github_blueprint(secret: str, on_event: Callable[[Event], str | None]) -> Blueprint:
    """The blueprint for one app; `on_event` returns None when queued, else why not."""
    blueprint = Blueprint("github_hooks", __name__)

    def handle() -> Response:
        body = verified_body(SIGNATURE_HEADER, secret)
        name = required_header(EVENT_HEADER)
        delivery = required_header(DELIVERY_HEADER)
        event = parse_github(name, delivery, json_body(body))
        if isinstance(event, Ignored):
            response = jsonify(
                {"queued": False, "ignored": True, "reason": event.reason, "delivery": delivery}
            )
            response.status_code = 202
            return response
        if isinstance(event, PingEvent):
            return jsonify({"ok": True, "zen": event.zen, "delivery": delivery})
        return deliver(on_event, event, delivery=delivery)

    @blueprint.post("/webhooks/github")
    def receive() -> Response:
        return guarded(handle, "/webhooks/github")

    return blueprint
