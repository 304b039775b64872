"""Signatures: the only thing checked before a body is trusted."""

from __future__ import annotations

import pytest

from webhooks.errors import SignatureInvalid
from webhooks.verify import sign, verify_signature

BODY = b'{"zen": "Keep it logically awesome."}'
SECRET = "s3cret"
GOOD = sign(BODY, SECRET)


def test_sign_is_sha256_prefixed_hex() -> None:
    assert GOOD.startswith("sha256=")
    assert len(GOOD) == len("sha256=") + 64
    # The value GitHub documents for its example secret and body.
    assert sign(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_good_signature_passes() -> None:
    verify_signature(BODY, GOOD, SECRET)


def test_uppercase_hex_passes() -> None:
    verify_signature(BODY, "sha256=" + GOOD.removeprefix("sha256=").upper(), SECRET)


@pytest.mark.parametrize(
    ("body", "header", "secret", "message"),
    [
        pytest.param(BODY, None, SECRET, "missing", id="missing"),
        pytest.param(BODY, "", SECRET, "missing", id="empty"),
        pytest.param(BODY, GOOD.replace("sha256=", "sha1="), SECRET, "start with", id="sha1"),
        pytest.param(BODY, GOOD.removeprefix("sha256="), SECRET, "start with", id="no-prefix"),
        pytest.param(BODY, "sha256=" + "z" * 64, SECRET, "hex", id="non-hex"),
        pytest.param(BODY, GOOD[:-2], SECRET, "hex", id="short"),
        pytest.param(BODY, "sha256=" + "é" * 64, SECRET, "hex", id="non-ascii"),
        pytest.param(BODY + b" ", GOOD, SECRET, "does not match", id="tampered-body"),
        pytest.param(BODY, GOOD, "other", "does not match", id="wrong-secret"),
        pytest.param(BODY, sign(BODY, ""), "", "no webhook secret", id="empty-secret"),
    ],
)
def test_bad_signature_is_refused(
    body: bytes, header: str | None, secret: str, message: str
) -> None:
    with pytest.raises(SignatureInvalid, match=message) as caught:
        verify_signature(body, header, secret)
    assert GOOD.removeprefix("sha256=") not in str(caught.value)
