"""Kept images no build has started from for days, removed (SPEC §13; docs/reference.md §13).

Kept images (`runner.caching.kept_image`) outlive runs by design, one per
repository and `build` stage; without a bound a worker's engine would keep
every repository it ever built.  A kept image's last use is the engine's own
record (`ContainerBackend.use_kept` tags it again), so every worker and run
sharing an engine sees the same time.  A worker prunes its repositories'
kept images at most once an hour (`due`), a local run its projects' ones;
neither touches the other's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from runner import caching
from runner.backend import ContainerBackend

__all__ = ["EVERY", "due", "prune_kept"]

EVERY = 3600.0
"""Seconds between two prunings of the same kind by one worker (listing costs)."""


def prune_kept(
    backend: ContainerBackend, days: float, local: bool, now: float | None = None
) -> list[str]:
    """Remove the kept images (local projects' or the bot's) unused for over `days` days.

    Their names; ContainerFailed when the engine cannot list them.
    """
    stale = caching.stale_kept(backend.kept_images(), now or time.time(), days, local)
    for name in stale:
        backend.drop_kept(name)
    return stale


def due(marker: Path, now: float | None = None, every: float = EVERY) -> bool:
    """Whether the clean-up `marker` names is due (its file older than `every` seconds), and
    if so, mark it done now: of several processes asking at once, few go on."""
    moment = now or time.time()
    try:
        if moment - marker.stat().st_mtime < every:
            return False
    except FileNotFoundError:
        marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    os.utime(marker, (moment, moment))
    return True
