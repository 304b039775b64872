"""Secret values -> `***` in any text dockercise prints or stores (SPEC §5), and line splitting.

Output arrives in arbitrary chunks, so a value can be split across two writes;
`LineSplitter` holds back the unfinished line, and masking is applied to whole
lines.  A line that never ends is let go in pieces, each cut where no value
can straddle it (`Masker.settled`), so a value printed across a piece's
boundary is masked as if the line had been masked whole.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable

__all__ = ["LONG_LINE", "MASK", "MIN_LENGTH", "LineSplitter", "Masker"]

MASK = "***"
MIN_LENGTH = 4
"""Shorter values are not masked: hiding every `a` or `ok` would make logs unreadable."""

LONG_LINE = 64 * 1024
"""Bytes of an unfinished line held back before a piece of it is let go."""


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
        self._longest = 0
        self.add(*values)

    def add(self, *values: str) -> None:
        with self._lock:
            for value in values:
                self._values |= _variants(value)
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._longest = len(ordered[0]) if ordered else 0

    @property
    def longest(self) -> int:
        return self._longest

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    def settled(self, text: str) -> int:
        """How much of an unfinished `text` can be masked now as it will be once it is whole.

        Masking is a left-to-right scan that replaces, at each position, the
        longest value found there.  A decision at a position needs the
        `longest` characters from it, so positions closer than that to the end
        may still change with what follows; a value found that reaches past
        that point is kept whole.  `self(text[:n])` for the returned `n`
        equals the first part of masking the whole line, and at most
        `longest - 1` characters are kept (more only inside a found value).
        """
        pattern, longest = self._pattern, self._longest
        if pattern is None:
            return len(text)
        known = max(len(text) - longest + 1, 0)  # positions whose decision is final
        cut = known
        for match in pattern.finditer(text):
            if match.start() >= known:
                break
            cut = max(cut, match.end())
        return cut


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of `data` start a UTF-8 character that is not complete yet."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:  # the lead byte says how long its character is
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if length > back else 0
    return 0


class LineSplitter:
    """Bytes in arbitrary chunks -> complete decoded lines (without their newline).

    A line longer than LONG_LINE bytes comes out in pieces; with `masker`,
    each piece ends where masking it alone gives what masking the whole line
    would (see `Masker.settled`), so a secret is never cut in two.
    """

    def __init__(self, masker: Masker | None = None) -> None:
        self._pending = b""
        self._masker = masker
        self._kept = 0
        """Bytes held back by the last piece let go: the next one waits for LONG_LINE more."""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        if lines:
            self._kept = 0
        out = [line.decode("utf-8", "replace").removesuffix("\r") for line in lines]
        if len(self._pending) > LONG_LINE + self._kept:
            piece = self._piece()
            if piece:
                out.append(piece)
        return out

    def _piece(self) -> str:
        """Let go of the settled part of the unfinished line; keep the rest."""
        pending = self._pending
        whole = len(pending) - _incomplete_tail(pending)
        text = pending[:whole].decode("utf-8", "surrogateescape")  # bytes survive the round trip
        cut = len(text) if self._masker is None else self._masker.settled(text)
        piece = text[:cut].encode("utf-8", "surrogateescape")
        self._pending = pending[len(piece) :]
        self._kept = len(self._pending)
        return piece.decode("utf-8", "replace")

    def close(self) -> list[str]:
        rest, self._pending, self._kept = self._pending, b"", 0
        return [rest.decode("utf-8", "replace")] if rest else []
