"""`secure:` values: Fernet encryption with the key in DOCKERCISE_SECRET_KEY (SPEC §5, §10).

Pure: the key is passed in, never read from the environment here.  A value
that cannot be decrypted is reported by variable name and place only; no
message ever holds the key, a token's plaintext or the token itself.

One key serves every repository a bot builds, so a value is bound to its
repository inside the ciphertext (`encrypt(..., repo=...)`): the plaintext is
`_BOUND` followed by `{"repo", "value"}` as JSON.  The marker is inside what
Fernet authenticates, so nobody without the key can turn a bound value into
an unbound one, or the other way round; a plaintext without it is an unbound
value, as every value made before binding existed is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import SecretInvalid
from runner.model import Pipeline
from runner.services import literal_owner
from runner.wording import quote

if TYPE_CHECKING:  # cryptography costs 8 ms to import: only pipelines with secrets pay it
    from cryptography.fernet import Fernet

__all__ = [
    "KEY_VARIABLE",
    "LOCAL",
    "SECURE_PREFIX",
    "Audience",
    "Secrets",
    "decrypt",
    "decrypt_pipeline",
    "encrypt",
    "generate_key",
    "is_repository",
    "is_secure",
]

KEY_VARIABLE = "DOCKERCISE_SECRET_KEY"
SECURE_PREFIX = "secure:"

_NO_KEY = f"{KEY_VARIABLE} is not set; set it to the key the value was encrypted with"
_BAD_KEY = f"{KEY_VARIABLE} is not a valid Fernet key (make one with `dockercise keygen`)"
_WRONG_KEY = f"wrong {KEY_VARIABLE} or a tampered value"

_BOUND = b"\x00dockercise-secret-1\n"
"""Starts the plaintext of a value bound to a repository; no text a user types starts so."""
_REPOSITORY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*/(?!\.\.?$)[A-Za-z0-9_.-]+")


def is_repository(name: str) -> bool:
    """Whether `name` is `owner/repo` as GitHub spells them."""
    return _REPOSITORY.fullmatch(name) is not None


@dataclass(frozen=True)
class Audience:
    """Whose build decrypts a pipeline's values, and so which bindings it accepts."""

    repo: str | None = None
    """The repository of a bot build (its values must be bound to it); None in a local run,
    which accepts a value bound to any repository: whoever holds the key can read them all."""
    unbound: bool = True
    """Whether values bound to no repository are accepted: in local runs, and in the builds
    of the repositories the operator lists in DOCKERCISE_LEGACY_SECRETS."""


LOCAL = Audience()
"""A local run: any binding, and unbound values."""


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


def _open(cipher: Fernet, value: str) -> tuple[str | None, str]:
    """(the repository the value is bound to, or None, and the plaintext)."""
    from cryptography.fernet import InvalidToken

    try:
        data = cipher.decrypt(value.removeprefix(SECURE_PREFIX).encode("utf-8"))
    except (InvalidToken, UnicodeError):
        raise _Unusable(_WRONG_KEY) from None
    try:
        if not data.startswith(_BOUND):
            return None, data.decode("utf-8")
        bound = json.loads(data[len(_BOUND) :].decode("utf-8"))
        repo, plain = bound["repo"], bound["value"]
        if not isinstance(repo, str) or not isinstance(plain, str):
            raise TypeError(repo)
        return repo, plain
    except (UnicodeError, ValueError, KeyError, TypeError):  # the key's holder wrote nonsense
        raise _Unusable("not a value `dockercise encrypt` made") from None


def _accept(audience: Audience, name: str, bound_to: str | None) -> None:
    """Refuse a value that the audience's repository may not open (SPEC §10)."""
    repo = audience.repo
    if repo is None or (bound_to is None and audience.unbound):
        return
    again = f"make it again with dockercise encrypt --repo {repo} {name}"
    if bound_to is None:
        raise _Unusable(
            f"encrypted for no repository; {again}, or the bot's operator lists {repo}"
            " in DOCKERCISE_LEGACY_SECRETS"
        )
    if bound_to.lower() != repo.lower():  # GitHub's names ignore case
        raise _Unusable(f"encrypted for another repository; {again}")


def encrypt(value: str, key: str | None, repo: str | None = None) -> str:
    """The token for `value` (what follows `secure:`); SecretInvalid if the key is unusable.

    With `repo` (`owner/repo`) the value decrypts only in that repository's bot
    builds (and in local runs); without, it is unbound, as values were before.
    """
    if not key or not key.strip():
        raise SecretInvalid(
            [f"cannot encrypt: {KEY_VARIABLE} is not set (make one with `dockercise keygen`)"]
        )
    if repo is not None and not is_repository(repo):
        raise SecretInvalid([f"cannot encrypt: {repo!r} is not a repository, like owner/repo"])
    try:
        cipher = _cipher(key)
        data = value.encode("utf-8")
    except _Unusable as e:
        raise SecretInvalid([f"cannot encrypt: {e}"]) from None
    except UnicodeError:
        raise SecretInvalid(["cannot encrypt: the value is not valid UTF-8 text"]) from None
    if repo is not None:
        bound = {"repo": repo, "value": value}
        data = _BOUND + json.dumps(bound, ensure_ascii=False).encode("utf-8")
    elif data.startswith(_BOUND):  # would read back as a bound value
        raise SecretInvalid(["cannot encrypt: the value starts with dockercise's own marker"])
    return cipher.encrypt(data).decode("ascii")


def decrypt(name: str, value: str, key: str | None, where: str, audience: Audience = LOCAL) -> str:
    """The plaintext of a `secure:` value; any other value unchanged.

    `name` and `where` (".dockercise.yml:4", "meta.secrets") only word the
    SecretInvalid raised when the key is missing, malformed or wrong, or when
    the value is bound to a repository other than the audience's.
    """
    if not is_secure(value):
        return value
    try:
        bound_to, plain = _open(_cipher(key), value)
        _accept(audience, name, bound_to)
        return plain
    except _Unusable as e:
        raise SecretInvalid([_problem(name, where, e)]) from None


def _problem(name: str, where: str, reason: _Unusable) -> str:
    return f"cannot decrypt {name} ({where}): {reason}"


def decrypt_pipeline(pipeline: Pipeline, key: str | None, audience: Audience = LOCAL) -> Secrets:
    """Every `secure:` value of the pipeline in plain text, for `audience`'s build.

    The key is needed only if some value is `secure:`.  Every value that
    cannot be decrypted, or is bound to another repository (SPEC §10), is
    reported in one SecretInvalid, one line each, before anything runs.
    """
    problems: list[str] = []
    cipher: Fernet | None = None

    def plain(name: str, value: str, where: str) -> str | None:
        nonlocal cipher
        if not is_secure(value):
            return value
        try:
            cipher = cipher or _cipher(key)
            bound_to, found = _open(cipher, value)
            _accept(audience, name, bound_to)
            return found
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
        where = f"{stage.file}:{stage.key_lines.get('env', stage.line)}, stage {quote(stage.name)}"
        for item in stage.env:
            if item.value is not None and is_secure(item.value):
                found = plain(item.name, item.value, where)
                if found is not None:
                    literals[(stage.name, item.name)] = found
        for service in stage.services:
            owner = literal_owner(stage.name, service.name)
            at = f"{stage.file}:{service.line or stage.line}, stage {quote(stage.name)}"
            for item in service.env:
                if item.value is not None and is_secure(item.value):
                    found = plain(item.name, item.value, f"{at}, service {quote(service.name)}")
                    if found is not None:
                        literals[(owner, item.name)] = found
    if problems:
        raise SecretInvalid(problems)
    return Secrets(variables, literals)
