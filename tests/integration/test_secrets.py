"""Secrets end to end: decrypted into containers, and never printed or stored (SPEC §5)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.encryption import KEY_VARIABLE, encrypt, generate_key
from tests.integration.conftest import IMAGE, Outcome

pytestmark = pytest.mark.docker

TOKEN = "tok-3f9a-SECRET-d81c"
PASSWORD = "pa55 w0rd with spaces"
CERT = "-----BEGIN KEY-----\nline-one-of-the-key\nline-two-of-the-key\n-----END KEY-----"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = generate_key()
    monkeypatch.setenv(KEY_VARIABLE, value)
    return value


def _everything_written(result: Outcome) -> str:
    stored = "".join(p.read_bytes().decode("utf-8", "replace") for p in result.run_dir.iterdir())
    return result.out + result.err + stored


def test_secrets_reach_stages_and_are_masked_everywhere(
    project: Callable[..., Path], dockercise: Callable[..., Outcome], key: str
) -> None:
    root = project(
        f"""
        meta:
          secrets:
            TOKEN: "secure:{encrypt(TOKEN, key)}"
            CERT: "secure:{encrypt(CERT, key)}"
        use:
          img: {IMAGE}
          env: [token, cert, {{PASS: "secure:{encrypt(PASSWORD, key)}"}}]
          run: |
            test "$TOKEN" = "{TOKEN}" && echo "token arrived intact"
            test "$PASS" = "{PASSWORD}" && echo "password arrived intact"
            echo "plain: $TOKEN"
            printf 'split: tok-3f9a-'; sleep 0.2; printf 'SECRET-d81c\\n'
            echo "pass: $PASS"
            echo "b64: $(printf %s "$TOKEN" | base64)"
            echo "$CERT"
            env | sort
            echo "fatal: could not authenticate with $TOKEN" >&2
            exit 1
        """
    )
    result = dockercise(root, "run")
    assert result.code == 1
    assert "token arrived intact" in result.log("use")
    assert "password arrived intact" in result.log("use")
    written = _everything_written(result)
    for secret in (
        TOKEN,
        PASSWORD,
        base64.b64encode(TOKEN.encode()).decode(),
        *CERT.splitlines()[1:3],
    ):
        assert secret not in written, f"{secret!r} leaked"
    assert "plain: ***" in result.log("use")
    assert "fatal: could not authenticate with ***" in result.log("use")
    assert "TOKEN=***" in result.log("use")


@pytest.mark.parametrize("problem", ["tampered", "wrong key", "no key"])
def test_bad_secrets_stop_the_run_before_anything_starts(
    project: Callable[..., Path],
    dockercise: Callable[..., Outcome],
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    problem: str,
) -> None:
    token = encrypt(TOKEN, key)
    if problem == "tampered":
        token = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    elif problem == "wrong key":
        monkeypatch.setenv(KEY_VARIABLE, generate_key())
    else:
        monkeypatch.delenv(KEY_VARIABLE)
    root = project(
        f"""
        meta:
          secrets: {{TOKEN: "secure:{token}"}}
        use: {{img: {IMAGE}, env: [token], run: echo started}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 2
    assert "TOKEN" in result.err
    assert "Traceback" not in result.err
    assert TOKEN not in result.err
    assert not (root / ".dockercise").exists()
