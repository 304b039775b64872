"""`POST /webhooks/dockercise`: `remote-build-complete` events from dockercise bots (SPEC §8).

Signed like GitHub's deliveries, in `X-Dockercise-Signature-256`, with the
events secret.  There is no delivery header: the bot deduplicates by
`run_id`, and `on_event` says "duplicate" (or another reason) to refuse.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response

from webhooks._http import deliver, guarded, json_body, verified_body
from webhooks.events import RemoteBuildComplete, parse_dockercise

__all__ = ["SIGNATURE_HEADER", "dockercise_blueprint"]

SIGNATURE_HEADER = "X-Dockercise-Signature-256"


def dockercise_blueprint(
    secret: str, on_event: Callable[[RemoteBuildComplete], str | None]
) -> Blueprint:
    """The blueprint for one app; `on_event` returns None when queued, else why not."""
    blueprint = Blueprint("dockercise_hooks", __name__)

    def handle() -> Response:
        body = verified_body(SIGNATURE_HEADER, secret)
        event = parse_dockercise(json_body(body))
        return deliver(on_event, event, run_id=event.run_id)

    @blueprint.post("/webhooks/dockercise")
    def receive() -> Response:
        return guarded(handle, "/webhooks/dockercise")

    return blueprint
