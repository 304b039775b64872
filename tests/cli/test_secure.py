"""`dockercise keygen` and `dockercise encrypt NAME` (SPEC §5, §9), through `main`."""

from __future__ import annotations

import io
from typing import IO

import pytest
from cryptography.fernet import Fernet

from runner import pipeline
from runner.encryption import KEY_VARIABLE, Audience, decrypt, decrypt_pipeline, generate_key
from runner.errors import SecretInvalid
from tests.cli.test_cli import run_cli
from tests.conftest import WritePipeline

KEY = generate_key()


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    return KEY


def encrypt_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: IO[str],
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", stdin)
    return run_cli(capsys, "encrypt", *args)


def test_keygen_prints_one_valid_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "keygen")
    assert (code, err) == (0, "")
    assert out.endswith("\n") and out.count("\n") == 1
    Fernet(out.strip())  # raises if it is not a key
    assert run_cli(capsys, "keygen")[1] != out


@pytest.mark.parametrize("command", ["keygen", "encrypt"])
def test_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    assert "DOCKERCISE_SECRET_KEY" in out


@pytest.mark.parametrize(
    ("stdin", "value"),
    [
        ("s3cr3t\n", "s3cr3t"),
        ("s3cr3t", "s3cr3t"),
        ("line1\nline2\n\n", "line1\nline2\n"),
        ("  spaced $HOME 'q' ☃\n", "  spaced $HOME 'q' ☃"),
    ],
    ids=["echo", "no-newline", "multi-line", "verbatim"],
)
def test_encrypt_prints_a_line_that_decrypts_to_the_value(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    with_key: str,
    stdin: str,
    value: str,
) -> None:
    code, out, err = encrypt_cli(capsys, monkeypatch, io.StringIO(stdin), "NPM_TOKEN")
    assert (code, err) == (0, "")
    name, secure = out.rstrip("\n").split(": ", 1)
    assert name == "NPM_TOKEN"
    assert out.count("\n") == 1
    assert decrypt(name, secure, with_key, "test") == value


def test_encrypt_reads_bytes_so_carriage_returns_survive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, with_key: str
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO("a\r\nb ü\n".encode()), encoding="utf-8")
    code, out, _ = encrypt_cli(capsys, monkeypatch, stdin, "X")
    assert code == 0
    assert decrypt("X", out.strip().split(": ", 1)[1], with_key, "test") == "a\r\nb ü"


def test_printed_line_pastes_into_meta_secrets(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    write_pipeline: WritePipeline,
    with_key: str,
) -> None:
    _, out, _ = encrypt_cli(capsys, monkeypatch, io.StringIO("tok\nen\n"), "TOKEN")
    root = write_pipeline(
        {".dockercise.yml": f"meta:\n  secrets:\n    {out}a: {{img: busybox, run: 'true'}}\n"}
    )
    loaded = pipeline.load(root)
    assert loaded is not None
    assert decrypt_pipeline(loaded, with_key).variables == {"TOKEN": "tok\nen"}


@pytest.mark.parametrize(
    ("key", "stdin", "args", "message"),
    [
        (None, "v\n", ["X"], "dockercise: cannot encrypt: DOCKERCISE_SECRET_KEY is not set"),
        ("bad", "v\n", ["X"], "dockercise: cannot encrypt: DOCKERCISE_SECRET_KEY is not a valid"),
        (KEY, "", ["X"], "dockercise: no value on stdin"),
        (KEY, "\n", ["X"], "dockercise: no value on stdin"),
        (KEY, "v\n", ["MY TOKEN"], "dockercise: 'MY TOKEN' is not a variable name"),
        (KEY, "v\n", ["1X"], "dockercise: '1X' is not a variable name"),
        (KEY, "v\n", ["--repo", "octo", "X"], "dockercise: --repo 'octo' is not a repository"),
        (KEY, "v\n", ["--repo", "a/b/c", "X"], "dockercise: --repo 'a/b/c' is not a repository"),
    ],
    ids=[
        "no-key",
        "bad-key",
        "empty",
        "only-newline",
        "space-in-name",
        "digit-first",
        "repo-without-owner",
        "repo-too-deep",
    ],
)
def test_encrypt_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    stdin: str,
    args: list[str],
    message: str,
) -> None:
    if key is None:
        monkeypatch.delenv(KEY_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(KEY_VARIABLE, key)
    code, out, err = encrypt_cli(capsys, monkeypatch, io.StringIO(stdin), *args)
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_encrypt_rejects_stdin_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, with_key: str
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfe\n"), encoding="utf-8")
    code, out, err = encrypt_cli(capsys, monkeypatch, stdin, "X")
    assert (code, out) == (2, "")
    assert err == "dockercise: the value on stdin is not UTF-8 text\n"


def test_encrypt_without_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "encrypt")
    assert code == 2
    assert "Missing argument 'NAME'" in err


def test_encrypt_with_repo_opens_in_that_repositorys_builds_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, with_key: str
) -> None:
    code, out, err = encrypt_cli(
        capsys, monkeypatch, io.StringIO("tok\n"), "--repo", "octo/app", "NPM_TOKEN"
    )
    assert (code, err) == (0, "")
    name, secure = out.rstrip("\n").split(": ", 1)
    assert decrypt(name, secure, with_key, "test", Audience("octo/app", unbound=False)) == "tok"
    assert decrypt(name, secure, with_key, "test") == "tok"  # a local run: any binding
    with pytest.raises(SecretInvalid, match="encrypted for another repository"):
        decrypt(name, secure, with_key, "test", Audience("octo/lib"))
    _, unbound, _ = encrypt_cli(capsys, monkeypatch, io.StringIO("tok\n"), "NPM_TOKEN")
    with pytest.raises(SecretInvalid, match="encrypted for no repository"):
        decrypt(
            name, unbound.strip().split(": ", 1)[1], with_key, "test", Audience("octo/app", False)
        )


def test_encrypt_help_names_the_repo_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "encrypt", "--help")
    assert code == 0 and "--repo OWNER/REPO" in out and "DOCKERCISE_LEGACY_SECRETS" in out
