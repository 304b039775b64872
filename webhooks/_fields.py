"""Typed reads from a decoded JSON payload, each failure naming the dotted path.

Payloads are untrusted shapes even when signed (a sender's bug, a GitHub
schema change), so every value the bot relies on is read through here and
a surprise becomes `PayloadInvalid("repository.full_name", ...)`, never a
KeyError deep inside a build, nor an overflow in the state's database.

Every number read is range-checked (ids are positive and JSON-safe: what
GitHub's own JavaScript clients can hold), and every string is free of NUL,
which nothing GitHub sends contains and which git, SQLite and C strings each
treat differently.  A `line` (a name, a ref, a URL) also has no other control
character and is at most MAX_LINE characters, so it can be logged, stored and
shown as one line.
"""

from __future__ import annotations

import re
from typing import Any

from webhooks.errors import PayloadInvalid

__all__ = ["MAX_ID", "MAX_LINE", "MAX_TEXT", "Fields"]

MAX_ID = 2**53 - 1
"""The largest id accepted: JSON's safe integers, which every GitHub id is."""
MAX_LINE = 1024
"""Characters of a one-line value (a ref, a name, a URL)."""
MAX_TEXT = 1 << 20
"""Characters of free text (a commit message)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_JSON_TYPES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


class Fields:
    """A JSON object and its dotted path inside the payload (`""` for the body itself)."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, dict):
            raise PayloadInvalid(path or "body", f"expected an object, got {_kind(data)}")
        self._data: dict[str, Any] = data
        self.path = path

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, expected: type, wanted: str, optional: bool) -> Any:
        if key not in self._data or (optional and self._data[key] is None):
            if optional:
                return None
            raise PayloadInvalid(self.where(key), f"missing (expected {wanted})")
        value = self._data[key]
        # bool is an int in Python, never in JSON.
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise PayloadInvalid(self.where(key), f"expected {wanted}, got {_kind(value)}")
        return value

    def _checked(self, where: str, value: str, line: bool) -> str:
        if line:
            if len(value) > MAX_LINE:
                raise PayloadInvalid(where, f"longer than {MAX_LINE} characters")
            if _CONTROL.search(value):
                raise PayloadInvalid(where, "expected one line without control characters")
        else:
            if len(value) > MAX_TEXT:
                raise PayloadInvalid(where, f"longer than {MAX_TEXT} characters")
            if "\0" in value:
                raise PayloadInvalid(where, "expected text without NUL characters")
        return value

    def string(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        what: str = "",
        line: bool = True,
    ) -> str:
        """A required string; with `pattern`, it must match it in full (`what` names the shape).

        `line=False` reads free text (newlines and tabs allowed, up to MAX_TEXT).
        """
        value: str = self._get(key, str, "a string", optional=False)
        self._checked(self.where(key), value, line)
        if pattern is not None and not pattern.fullmatch(value):
            raise PayloadInvalid(self.where(key), f"expected {what or 'a valid value'}")
        return value

    def optional_string(self, key: str, *, line: bool = True) -> str | None:
        value: str | None = self._get(key, str, "a string", optional=True)
        return None if value is None else self._checked(self.where(key), value, line)

    def integer(self, key: str, *, minimum: int = 1, maximum: int = MAX_ID) -> int:
        """A required integer from `minimum` to `maximum` (by default: an id)."""
        value: int = self._get(key, int, "an integer", optional=False)
        if not minimum <= value <= maximum:
            raise PayloadInvalid(
                self.where(key), f"expected an integer from {minimum} to {maximum}"
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value: bool | None = self._get(key, bool, "a boolean", optional=True)
        return default if value is None else value

    def object(self, key: str) -> Fields:
        return Fields(self._get(key, dict, "an object", optional=False), self.where(key))

    def optional_object(self, key: str) -> Fields | None:
        value = self._get(key, dict, "an object", optional=True)
        return None if value is None else Fields(value, self.where(key))

    def objects(self, key: str, *, optional: bool = False) -> list[Fields]:
        """A list of objects; an absent or null optional list reads as empty."""
        items: list[Any] | None = self._get(key, list, "a list", optional=optional)
        return [Fields(item, f"{self.where(key)}.{i}") for i, item in enumerate(items or [])]

    def strings(self, key: str, *, optional: bool = False) -> list[str]:
        """A list of strings; an absent or null optional list reads as empty."""
        items: list[Any] | None = self._get(key, list, "a list", optional=optional)
        for i, item in enumerate(items or []):
            if not isinstance(item, str):
                raise PayloadInvalid(
                    f"{self.where(key)}.{i}", f"expected a string, got {_kind(item)}"
                )
            self._checked(f"{self.where(key)}.{i}", item, line=False)
        return list(items or [])
