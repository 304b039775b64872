"""Typed reads from a decoded JSON payload, each failure naming the dotted path.

Payloads are untrusted shapes even when signed (a sender's bug, a GitHub
schema change), so every value the bot relies on is read through here and
a surprise becomes `PayloadInvalid("repository.full_name", ...)`, never a
KeyError deep inside a build.
"""

from __future__ import annotations

import re
from typing import Any

from webhooks.errors import PayloadInvalid

__all__ = ["Fields"]

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

    def string(self, key: str, *, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        """A required string; with `pattern`, it must match it in full (`what` names the shape)."""
        value: str = self._get(key, str, "a string", optional=False)
        if pattern is not None and not pattern.fullmatch(value):
            raise PayloadInvalid(self.where(key), f"expected {what or 'a valid value'}")
        return value

    def optional_string(self, key: str) -> str | None:
        value: str | None = self._get(key, str, "a string", optional=True)
        return value

    def integer(self, key: str) -> int:
        value: int = self._get(key, int, "an integer", optional=False)
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
        return list(items or [])
