"""Secret values -> `***` in any text dockercise prints or stores (SPEC §5), and line splitting.

Output arrives in arbitrary chunks, so a value can be split across two writes;
`LineSplitter` holds back the unfinished line, and masking is applied to whole
lines (or to very long unfinished ones, keeping a tail that could start a value).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable

__all__ = ["MASK", "MIN_LENGTH", "LineSplitter", "Masker"]

MASK = "***"
MIN_LENGTH = 4
"""Shorter values are not masked: hiding every `a` or `ok` would make logs unreadable."""

_LONG_LINE = 64 * 1024


def _variants(value: str) -> set[str]:
    """The value, each of its lines, and their base64 forms."""
    value = value.strip()
    found = {
        v for v in (value, *(line.strip() for line in value.splitlines())) if len(v) >= MIN_LENGTH
    }
    return found | {base64.b64encode(v.encode()).decode() for v in found}


class Masker:
    """Replaces every known value with `***`; values may be added while a run goes on."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str) -> None:
        with self._lock:
            for value in values:
                self._values |= _variants(value)
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @property
    def longest(self) -> int:
        return max(map(len, self._values), default=0)

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text


class LineSplitter:
    """Bytes in arbitrary chunks -> complete decoded lines (without their newline)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        if len(self._pending) > _LONG_LINE:
            lines.append(self._pending)
            self._pending = b""
        return [line.decode("utf-8", "replace").removesuffix("\r") for line in lines]

    def close(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8", "replace")] if rest else []
