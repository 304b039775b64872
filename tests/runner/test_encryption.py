"""runner/encryption.py: `secure:` values, keys, repositories, a pipeline's secrets (§5, §10)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from runner import pipeline
from runner.encryption import (
    LOCAL,
    SECURE_PREFIX,
    Audience,
    Secrets,
    decrypt,
    decrypt_pipeline,
    encrypt,
    generate_key,
    is_secure,
)
from runner.errors import SecretInvalid
from runner.model import Pipeline
from tests.conftest import WritePipeline

KEY = generate_key()
OTHER_KEY = generate_key()
PLAIN = "s3cr3t value"


def secure(value: str, key: str = KEY, repo: str | None = None) -> str:
    return SECURE_PREFIX + encrypt(value, key, repo)


def tampered(token: str) -> str:
    """One character in the middle changed: still base64, no longer signed."""
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.parametrize(
    "value",
    ["x", PLAIN, "line1\nline2\n", "quotes ' \" $HOME `x` \\n", "☃ ünï", " \t padded \r\n"],
)
def test_round_trip_keeps_every_character(value: str) -> None:
    assert decrypt("X", secure(value), KEY, "meta.secrets") == value


def test_tokens_differ_each_time_and_hide_the_value() -> None:
    first, second = encrypt(PLAIN, KEY), encrypt(PLAIN, KEY)
    assert first != second
    assert PLAIN not in first


def test_non_secure_value_is_returned_unchanged_without_a_key() -> None:
    assert decrypt("X", "plain", None, "meta.secrets") == "plain"
    assert is_secure(secure("v"))
    assert not is_secure("plain")


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, secure(PLAIN), "DOCKERCISE_SECRET_KEY is not set; "),
        ("", secure(PLAIN), "DOCKERCISE_SECRET_KEY is not set; "),
        ("not-a-key", secure(PLAIN), "DOCKERCISE_SECRET_KEY is not a valid Fernet key"),
        (KEY[:-4], secure(PLAIN), "DOCKERCISE_SECRET_KEY is not a valid Fernet key"),
        (OTHER_KEY, secure(PLAIN), "wrong DOCKERCISE_SECRET_KEY or a tampered value"),
        (KEY, tampered(secure(PLAIN)), "wrong DOCKERCISE_SECRET_KEY or a tampered value"),
        (KEY, "secure:", "wrong DOCKERCISE_SECRET_KEY or a tampered value"),
        (KEY, "secure:ünï", "wrong DOCKERCISE_SECRET_KEY or a tampered value"),
    ],
    ids=["none", "empty", "malformed", "short", "wrong", "tampered", "no-token", "non-ascii"],
)
def test_decrypt_problems_name_variable_and_place_never_the_secret(
    key: str | None, value: str, reason: str
) -> None:
    with pytest.raises(SecretInvalid) as caught:
        decrypt("NPM_TOKEN", value, key, ".dockercise.yml:4")
    message = str(caught.value)
    assert message.startswith("cannot decrypt NPM_TOKEN (.dockercise.yml:4): " + reason)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    assert PLAIN not in message
    for secret in (KEY, OTHER_KEY, value.removeprefix(SECURE_PREFIX)):
        assert not secret or secret not in message


def test_malformed_key_message_gives_the_way_out() -> None:
    with pytest.raises(SecretInvalid, match=r"make one with `dockercise keygen`"):
        decrypt("X", secure(PLAIN), "nope", "meta.secrets")


def test_key_with_surrounding_whitespace_still_works() -> None:
    assert decrypt("X", secure(PLAIN), f"  {KEY}\n", "meta.secrets") == PLAIN


@pytest.mark.parametrize(("key", "reason"), [(None, "is not set"), ("bad", "is not a valid")])
def test_encrypt_needs_a_valid_key(key: str | None, reason: str) -> None:
    with pytest.raises(SecretInvalid, match=f"^cannot encrypt: DOCKERCISE_SECRET_KEY {reason}"):
        encrypt(PLAIN, key)


def _load(write_pipeline: WritePipeline, token: str, password: str) -> Pipeline:
    loaded = pipeline.load(
        write_pipeline(
            {
                ".dockercise.yml": f"""
                    meta:
                      secrets: {{TOKEN: "{token}", PLAIN_ONE: "as is"}}
                    deploy:
                      img: busybox
                      env: [TOKEN, {{PASS: "{password}"}}, {{USER: admin}}]
                      run: "true"
                    """
            }
        )
    )
    assert loaded is not None
    return loaded


def test_decrypt_pipeline_gives_variables_literals_and_values(
    write_pipeline: WritePipeline,
) -> None:
    loaded = _load(write_pipeline, secure("tok-123"), secure("pa ss\nword"))
    found = decrypt_pipeline(loaded, KEY)
    assert found.variables == {"TOKEN": "tok-123", "PLAIN_ONE": "as is"}
    assert found.literals == {("deploy", "PASS"): "pa ss\nword"}
    assert found.values() == ["tok-123", "as is", "pa ss\nword"]
    assert "tok-123" not in repr(found) and "word" not in repr(found)


def test_pipeline_without_secure_values_needs_no_key(write_pipeline: WritePipeline) -> None:
    loaded = pipeline.load(
        write_pipeline({".dockercise.yml": "a: {img: busybox, env: [{X: '1'}], run: 'true'}\n"})
    )
    assert loaded is not None
    assert decrypt_pipeline(loaded, None) == Secrets()


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "DOCKERCISE_SECRET_KEY is not set"),
        ("bad", "DOCKERCISE_SECRET_KEY is not a valid Fernet key"),
        (OTHER_KEY, "wrong DOCKERCISE_SECRET_KEY or a tampered value"),
    ],
)
def test_decrypt_pipeline_reports_every_bad_value_at_once(
    write_pipeline: WritePipeline, key: str | None, reason: str
) -> None:
    loaded = _load(write_pipeline, secure("tok-123"), secure("password"))
    with pytest.raises(SecretInvalid) as caught:
        decrypt_pipeline(loaded, key)
    lines = str(caught.value).splitlines()
    assert caught.value.problems == lines
    assert [line.split(": ", 1)[0] for line in lines] == [
        "cannot decrypt TOKEN (meta.secrets)",
        "cannot decrypt PASS (.dockercise.yml:6, stage 'deploy')",
    ]
    assert all(reason in line for line in lines)
    assert "tok-123" not in str(caught.value) and "password" not in str(caught.value)


def test_decrypt_pipeline_reports_only_the_bad_values(write_pipeline: WritePipeline) -> None:
    loaded = _load(write_pipeline, secure("tok-123"), tampered(secure("password")))
    with pytest.raises(SecretInvalid) as caught:
        decrypt_pipeline(loaded, KEY)
    assert caught.value.problems == [
        "cannot decrypt PASS (.dockercise.yml:6, stage 'deploy'):"
        " wrong DOCKERCISE_SECRET_KEY or a tampered value"
    ]


# --- values bound to their repository (SPEC §10) ------------------------------------------

APP = Audience("octo/app", unbound=False)
LEGACY_APP = Audience("octo/app", unbound=True)


@pytest.mark.parametrize("audience", [APP, LEGACY_APP, Audience("OCTO/App"), LOCAL])
def test_a_bound_value_opens_in_its_repository_and_locally(audience: Audience) -> None:
    assert decrypt("X", secure(PLAIN, repo="octo/app"), KEY, "meta.secrets", audience) == PLAIN


@pytest.mark.parametrize("audience", [Audience("octo/lib", unbound=False), Audience("octo/lib")])
def test_a_bound_value_copied_into_another_repository_is_refused(audience: Audience) -> None:
    with pytest.raises(SecretInvalid) as caught:
        decrypt("NPM_TOKEN", secure(PLAIN, repo="octo/app"), KEY, "meta.secrets", audience)
    message = str(caught.value)
    assert message == (
        "cannot decrypt NPM_TOKEN (meta.secrets): encrypted for another repository;"
        " make it again with dockercise encrypt --repo octo/lib NPM_TOKEN"
    )
    assert "octo/app" not in message and PLAIN not in message


def test_an_unbound_value_opens_only_locally_and_in_legacy_repositories() -> None:
    value = secure(PLAIN)
    assert decrypt("X", value, KEY, "meta.secrets", LOCAL) == PLAIN
    assert decrypt("X", value, KEY, "meta.secrets", LEGACY_APP) == PLAIN
    with pytest.raises(SecretInvalid, match="DOCKERCISE_LEGACY_SECRETS") as caught:
        decrypt("X", value, KEY, "meta.secrets", APP)
    assert str(caught.value) == (
        "cannot decrypt X (meta.secrets): encrypted for no repository; make it again with"
        " dockercise encrypt --repo octo/app X, or the bot's operator lists octo/app in"
        " DOCKERCISE_LEGACY_SECRETS"
    )


def test_values_made_before_binding_are_unbound() -> None:
    old = SECURE_PREFIX + Fernet(KEY).encrypt(PLAIN.encode()).decode()
    assert decrypt("X", old, KEY, "meta.secrets", LEGACY_APP) == PLAIN
    with pytest.raises(SecretInvalid, match="encrypted for no repository"):
        decrypt("X", old, KEY, "meta.secrets", APP)


def test_the_binding_is_inside_what_the_key_authenticates() -> None:
    """Whoever lacks the key cannot unbind a value: the marker is in the plaintext, and a
    bound token opened anywhere gives its value, never its JSON."""
    token = secure(PLAIN, repo="octo/app").removeprefix(SECURE_PREFIX)
    raw = Fernet(KEY).decrypt(token.encode())
    assert PLAIN.encode() in raw and raw != PLAIN.encode()
    assert decrypt("X", SECURE_PREFIX + token, KEY, "meta.secrets") == PLAIN
    with pytest.raises(SecretInvalid, match="tampered"):
        decrypt("X", SECURE_PREFIX + tampered(token), KEY, "meta.secrets", LEGACY_APP)


def test_a_bound_looking_plaintext_not_made_by_encrypt_is_refused() -> None:
    forged = Fernet(KEY).encrypt(b"\x00dockercise-secret-1\n{not json").decode()
    with pytest.raises(SecretInvalid, match="not a value `dockercise encrypt` made"):
        decrypt("X", SECURE_PREFIX + forged, KEY, "meta.secrets")
    with pytest.raises(SecretInvalid, match="marker"):
        encrypt("\x00dockercise-secret-1\nvalue", KEY)


@pytest.mark.parametrize("repo", ["octo", "octo/", "/app", "octo/app/x", "octo/..", "oc to/app"])
def test_encrypt_refuses_what_is_not_a_repository(repo: str) -> None:
    with pytest.raises(SecretInvalid, match="is not a repository, like owner/repo"):
        encrypt(PLAIN, KEY, repo)


def test_decrypt_pipeline_refuses_every_value_of_another_repository(
    write_pipeline: WritePipeline,
) -> None:
    loaded = _load(
        write_pipeline, secure("tok-123", repo="octo/lib"), secure("password", repo="octo/app")
    )
    with pytest.raises(SecretInvalid) as caught:
        decrypt_pipeline(loaded, KEY, APP)
    assert [line.split(": encrypted", 1)[0] for line in caught.value.problems] == [
        "cannot decrypt TOKEN (meta.secrets)"
    ]
    with pytest.raises(SecretInvalid) as caught:
        decrypt_pipeline(loaded, KEY, Audience("octo/other"))
    assert [line.split(": encrypted", 1)[0] for line in caught.value.problems] == [
        "cannot decrypt TOKEN (meta.secrets)",
        "cannot decrypt PASS (.dockercise.yml:6, stage 'deploy')",
    ]
    assert decrypt_pipeline(loaded, KEY).values() == ["tok-123", "as is", "password"]


def test_decrypt_pipeline_opens_its_own_repositorys_values(write_pipeline: WritePipeline) -> None:
    loaded = _load(
        write_pipeline, secure("tok-123", repo="octo/app"), secure("password", repo="Octo/App")
    )
    found = decrypt_pipeline(loaded, KEY, APP)
    assert found.variables["TOKEN"] == "tok-123"
    assert found.literals == {("deploy", "PASS"): "password"}
