"""What both webhook views share: reading a signed body, errors as JSON, the catch-all.

Kept apart from the pure modules so that verification and parsing stay
testable without Flask; this is the thin I/O around them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from webhooks.errors import (
    BodyNotJSON,
    HeaderInvalid,
    PayloadInvalid,
    SignatureInvalid,
    WebhookError,
)
from webhooks.verify import verify_signature

__all__ = [
    "deliver",
    "guarded",
    "json_body",
    "json_error",
    "read_body",
    "required_header",
    "verified_body",
]

log = logging.getLogger("dockercise.webhooks")

E = TypeVar("E")
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,100}")


def json_error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


_READ = 1 << 16


def read_body(limit: int) -> bytes:
    """The raw body, or RequestEntityTooLarge (413) when it is over `limit` bytes.

    A declared Content-Length over the limit is refused unread.  A body sent
    without one (chunked) is read up to `limit + 1` bytes: one more than the
    limit means too large.  (Werkzeug's own cap cuts such a body at the limit
    silently, which then fails its signature: a 401 for what is a 413.)
    """
    stream = get_input_stream(request.environ, max_content_length=limit + 1)
    body = bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(_READ, limit + 1 - len(body)))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return bytes(body)


def verified_body(signature_header: str, secret: str) -> bytes:
    """The raw body, once its signature is checked; nothing else of the request is read before.

    The app's MAX_CONTENT_LENGTH is enforced first, however the body is sent
    (`read_body`).
    """
    body = read_body(current_app.config["MAX_CONTENT_LENGTH"])
    verify_signature(body, request.headers.get(signature_header), secret)
    return body


def required_header(name: str) -> str:
    """A short token header (event name, delivery id): safe to log, store and echo back."""
    value = request.headers.get(name)
    if not value:
        raise HeaderInvalid(name, "missing")
    if not _HEADER_TOKEN.fullmatch(value):
        raise HeaderInvalid(name, "expected at most 100 letters, digits, '.', '_' or '-'")
    return value


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise BodyNotJSON() from e


def deliver(callback: Callable[[E], str | None], event: E, **ids: str) -> Response:
    """Hand the event to the bot: 202 when queued, 200 with the callback's reason when not."""
    refusal = callback(event)
    if refusal is None:
        response = jsonify({"queued": True, **ids})
        response.status_code = 202
        return response
    return jsonify({"queued": False, "reason": refusal, **ids})


def guarded(handle: Callable[[], Response], endpoint: str) -> Response:
    """Run a webhook view: the one place its errors become answers (and never a traceback).

    HTTP errors raised by Flask itself (413 for a body over the limit) pass
    through to the app's JSON error handler.
    """
    try:
        return handle()
    except SignatureInvalid as e:
        log.warning("%s: refused unsigned delivery from %s: %s", endpoint, request.remote_addr, e)
        return json_error(401, f"signature invalid: {e}")
    except HeaderInvalid as e:
        return json_error(400, str(e), header=e.header)
    except PayloadInvalid as e:
        log.warning("%s: invalid payload: %s", endpoint, e)
        return json_error(400, f"payload invalid: {e}", field=e.field)
    except WebhookError as e:
        return json_error(400, str(e))
    except HTTPException:
        raise
    except Exception:
        log.exception("%s: delivery failed", endpoint)
        return json_error(500, "internal error: the event was not queued (see the bot's log)")
