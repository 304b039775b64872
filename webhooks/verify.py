"""HMAC-SHA256 signatures of webhook bodies (pure: no I/O, no Flask).

GitHub signs each delivery in `X-Hub-Signature-256` and dockercise signs its
own `remote-build-complete` events in `X-Dockercise-Signature-256`, both as
`sha256=<hex of HMAC-SHA256(secret, raw body)>`.  The signature covers the
exact bytes received, so it must be checked before the body is decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import string

from webhooks.errors import SignatureInvalid

__all__ = ["PREFIX", "sign", "verify_signature"]

PREFIX = "sha256="
_HEX_DIGITS = frozenset(string.hexdigits)
_DIGEST_HEX_LENGTH = hashlib.sha256().digest_size * 2


def _digest(body: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()


def sign(body: bytes, secret: str) -> str:
    """The signature header value for `body`: `sha256=<64 lowercase hex digits>`."""
    return PREFIX + _digest(body, secret).hex()


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """Return if `header` signs `body` with `secret`; raise SignatureInvalid otherwise.

    An empty secret is refused too: anyone can compute an HMAC with it.  The
    comparison runs in constant time (`hmac.compare_digest`), and the error
    messages never echo the header or the expected value.
    """
    if not secret:
        raise SignatureInvalid("no webhook secret is configured; refusing every delivery")
    if not header:
        raise SignatureInvalid("missing signature header")
    if not header.startswith(PREFIX):
        raise SignatureInvalid(f"signature must start with '{PREFIX}'")
    given_hex = header[len(PREFIX) :]
    if len(given_hex) != _DIGEST_HEX_LENGTH or not _HEX_DIGITS.issuperset(given_hex):
        raise SignatureInvalid(f"signature must be '{PREFIX}' and 64 hex digits")
    if not hmac.compare_digest(bytes.fromhex(given_hex), _digest(body, secret)):
        raise SignatureInvalid("signature does not match the body (wrong secret?)")
