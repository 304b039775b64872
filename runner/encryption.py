"""`secure:` values: Fernet encryption with the key in DOCKERCISE_SECRET_KEY (SPEC §5).

Pure: the key is passed in, never read from the environment here.  A value
that cannot be decrypted is reported by variable name and place only; no
message ever holds the key, a token's plaintext or the token itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import SecretInvalid
from runner.model import Pipeline

if TYPE_CHECKING:  # cryptography costs 8 ms to import: only pipelines with secrets pay it
    from cryptography.fernet import Fernet

__all__ = [
    "KEY_VARIABLE",
    "SECURE_PREFIX",
    "Secrets",
    "decrypt",
    "decrypt_pipeline",
    "encrypt",
    "generate_key",
    "is_secure",
]

KEY_VARIABLE = "DOCKERCISE_SECRET_KEY"
SECURE_PREFIX = "secure:"

_NO_KEY = f"{KEY_VARIABLE} is not set; set it to the key the value was encrypted with"
_BAD_KEY = f"{KEY_VARIABLE} is not a valid Fernet key (make one with `dockercise keygen`)"
_WRONG_KEY = f"wrong {KEY_VARIABLE} or a tampered value"


class _Unusable(Exception):
    """Why a key or a token cannot be used; the caller adds the variable and place."""


@dataclass(frozen=True)
class Secrets:
    """A pipeline's secrets in plain text; `repr` shows only the names."""

    variables: dict[str, str] = field(default_factory=dict)
    """meta.secrets NAME -> plaintext: the first source for external env items (SPEC §3)."""
    literals: dict[tuple[str, str], str] = field(default_factory=dict)
    """(stage, env item NAME) -> plaintext, for `{NAME: "secure:..."}` items."""

    def values(self) -> list[str]:
        """Every secret value, once each, for the masker.

        A plain value in meta.secrets counts too: it stands where secrets do.
        """
        found = [*self.variables.values(), *self.literals.values()]
        return [v for v in dict.fromkeys(found) if v]

    def __repr__(self) -> str:
        literals = [f"{stage}.{name}" for stage, name in self.literals]
        return f"Secrets(variables={sorted(self.variables)}, literals={literals})"


def generate_key() -> str:
    """A new random key, for DOCKERCISE_SECRET_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def is_secure(value: str) -> bool:
    return value.startswith(SECURE_PREFIX)


def _cipher(key: str | None) -> Fernet:
    from cryptography.fernet import Fernet

    if not key or not key.strip():
        raise _Unusable(_NO_KEY)
    try:
        return Fernet(key.strip())
    except ValueError:
        raise _Unusable(_BAD_KEY) from None


def _open(cipher: Fernet, value: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return cipher.decrypt(value.removeprefix(SECURE_PREFIX).encode("utf-8")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise _Unusable(_WRONG_KEY) from None


def encrypt(value: str, key: str | None) -> str:
    """The token for `value` (what follows `secure:`); SecretInvalid if the key is unusable."""
    if not key or not key.strip():
        raise SecretInvalid(
            [f"cannot encrypt: {KEY_VARIABLE} is not set (make one with `dockercise keygen`)"]
        )
    try:
        cipher = _cipher(key)
        data = value.encode("utf-8")
    except _Unusable as e:
        raise SecretInvalid([f"cannot encrypt: {e}"]) from None
    except UnicodeError:
        raise SecretInvalid(["cannot encrypt: the value is not valid UTF-8 text"]) from None
    return cipher.encrypt(data).decode("ascii")


def decrypt(name: str, value: str, key: str | None, where: str) -> str:
    """The plaintext of a `secure:` value; any other value unchanged.

    `name` and `where` (".dockercise.yml:4", "meta.secrets") only word the
    SecretInvalid raised when the key is missing, malformed or wrong.
    """
    if not is_secure(value):
        return value
    try:
        return _open(_cipher(key), value)
    except _Unusable as e:
        raise SecretInvalid([_problem(name, where, e)]) from None


def _problem(name: str, where: str, reason: _Unusable) -> str:
    return f"cannot decrypt {name} ({where}): {reason}"


def decrypt_pipeline(pipeline: Pipeline, key: str | None) -> Secrets:
    """Every `secure:` value of the pipeline in plain text.

    The key is needed only if some value is `secure:`.  Every value that
    cannot be decrypted is reported in one SecretInvalid, one line each.
    """
    problems: list[str] = []
    cipher: Fernet | None = None

    def plain(name: str, value: str, where: str) -> str | None:
        nonlocal cipher
        if not is_secure(value):
            return value
        try:
            cipher = cipher or _cipher(key)
            return _open(cipher, value)
        except _Unusable as e:
            problems.append(_problem(name, where, e))
            return None

    variables: dict[str, str] = {}
    for name, value in pipeline.meta.secrets.items():
        found = plain(name, value, "meta.secrets")
        if found is not None:
            variables[name] = found
    literals: dict[tuple[str, str], str] = {}
    for stage in pipeline.stages.values():
        where = f"{stage.file}:{stage.key_lines.get('env', stage.line)}"
        for item in stage.env:
            if item.value is not None and is_secure(item.value):
                found = plain(item.name, item.value, where)
                if found is not None:
                    literals[(stage.name, item.name)] = found
    if problems:
        raise SecretInvalid(problems)
    return Secrets(variables, literals)
