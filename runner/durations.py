"""How long something took, and how that reads: the one way durations are shown.

The command line, the results pages and the bot's texts all print durations;
they go through `format_duration` so that a run reads the same in a terminal
and in a browser.  Pure, and in runner/ so that every package can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["UNKNOWN", "elapsed", "format_duration", "moment", "seconds_between"]

UNKNOWN = "—"
"""What an unknown duration reads as where a blank would look like a bug (the pages)."""


def format_duration(seconds: float | None, unknown: str = UNKNOWN) -> str:
    """`0.4 s`, `12 s`, `3 min 04 s`, `1 h 02 min`; `unknown` when there is none.

    A tenth of a second below ten seconds (where it still means something),
    whole units above, as people write them.
    """
    if seconds is None:
        return unknown
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from `start` to `end`, never negative; None while either is unknown."""
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def moment(value: object) -> datetime | None:
    """A stored `started`/`finished` (ISO 8601) as a datetime; None when it is not one.

    Stored JSON is read back from a store anyone with write access could have
    touched, so anything but a readable time is no time rather than an error."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def elapsed(data: Mapping[str, Any]) -> float | None:
    """Seconds from a stored run's or stage's `started` to its `finished` (SPEC §7 JSON).

    None while either is missing or unreadable: a run being written is read while it changes.
    """
    return seconds_between(moment(data.get("started")), moment(data.get("finished")))
