"""Eviction decided apart from any store (SPEC §13): days unused, then least recently used."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cachestore import parse_days
from runner.caching import DAY, Held, KeptImage, evictions, stale_kept
from runner.errors import UsageError
from runner.pruning import due, prune_kept
from tests.runner.fake_backend import FakeBackend

NOW = 1_000 * DAY


def test_unused_for_more_than_the_days_goes_whatever_the_room() -> None:
    held = [Held("old", 1, NOW - 8 * DAY), Held("week", 1, NOW - 7 * DAY), Held("new", 1, NOW)]
    assert evictions(held, NOW, 7, 10**9) == ["old"]
    assert evictions(held, NOW, None, 10**9) == []


def test_past_the_bytes_the_least_recently_used_go_first() -> None:
    held = [Held("b", 40, NOW - 2), Held("a", 40, NOW - 3), Held("c", 40, NOW - 1)]
    assert evictions(held, NOW, 7, 80) == ["a"]
    assert evictions(held, NOW, 7, 39) == ["a", "b", "c"]
    assert evictions(held, NOW, 7, None) == []


def test_both_bounds_together() -> None:
    held = [Held("stale", 1, NOW - 9 * DAY), Held("old", 50, NOW - DAY), Held("new", 50, NOW)]
    assert evictions(held, NOW, 7, 60) == ["stale", "old"]


def test_kept_images_are_pruned_by_their_own_kind_only() -> None:
    kept = [
        KeptImage("dockercise-cache/a/x:latest", "octo/app", NOW - 30 * DAY),
        KeptImage("dockercise-cache/b/x:latest", "local:/home/me/app", NOW - 30 * DAY),
        KeptImage("dockercise-cache/c/x:latest", "octo/busy", NOW - DAY),
    ]
    assert stale_kept(kept, NOW, 7, local=False) == ["dockercise-cache/a/x:latest"]
    assert stale_kept(kept, NOW, 7, local=True) == ["dockercise-cache/b/x:latest"]


def test_prune_kept_drops_what_is_stale_through_the_backend() -> None:
    backend = FakeBackend()
    backend.images["dockercise-cache/a/x:latest"] = {"dockercise.cache.repo": "octo/app"}
    assert prune_kept(backend, 7, local=False, now=NOW) == ["dockercise-cache/a/x:latest"]
    assert "dockercise-cache/a/x:latest" not in backend.images


def test_due_once_an_hour(tmp_path: Path) -> None:
    marker = tmp_path / "sub" / ".pruned"
    assert due(marker, now=NOW)
    assert not due(marker, now=NOW + 60)
    assert due(marker, now=NOW + 3601)


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "week", ""])
def test_days_must_be_whole_and_positive(text: str) -> None:
    with pytest.raises(UsageError, match="DOCKERCISE_CACHE_DAYS"):
        parse_days(text)
