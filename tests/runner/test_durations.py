"""runner/durations.py: the one way durations are computed and shown (CLI, pages, bot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runner.durations import elapsed, format_duration, seconds_between


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.42, "0.4 s"), (12.4, "12 s"), (184, "3 min 04 s"), (3720, "1 h 02 min")],
)
def test_durations_read_as_people_write_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_an_unknown_duration_may_read_as_blank() -> None:
    assert format_duration(None, unknown="") == ""
    assert format_duration(-0.01) == "0.0 s"  # clocks that step back never read as negative


T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_seconds_between_moments() -> None:
    assert seconds_between(T0, T0 + timedelta(seconds=2.5)) == 2.5
    assert seconds_between(T0 + timedelta(seconds=1), T0) == 0.0
    assert seconds_between(None, T0) is None
    assert seconds_between(T0, None) is None


@pytest.mark.parametrize(
    ("data", "seconds"),
    [
        ({"started": "2026-01-02T03:04:05.000Z", "finished": "2026-01-02T03:04:07.500Z"}, 2.5),
        ({"started": "2026-01-02T03:04:05.000Z", "finished": None}, None),
        ({"started": "2026-01-02T03:04:05.000Z"}, None),
        ({"started": "yesterday", "finished": "2026-01-02T03:04:07.500Z"}, None),
        ({"started": 5, "finished": 7}, None),
        ({}, None),
    ],
)
def test_elapsed_of_stored_json(data: dict[str, Any], seconds: float | None) -> None:
    assert elapsed(data) == seconds
