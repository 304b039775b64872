"""What the bot remembers across restarts: deliveries seen, and each build's progress.

`StateStore` (`bot.state.base`) is the contract; `open_state` picks the store
the settings ask for, importing that one only when asked: nothing that
needs only the contract (or a `Job`) loads a store's client library.
"""

from __future__ import annotations

from bot.settings import Settings
from bot.state.base import ANNOUNCE_LEASE, PRUNE_BATCH, Build, Claim, Known, Phase, StateStore

__all__ = [
    "ANNOUNCE_LEASE",
    "PRUNE_BATCH",
    "Build",
    "Claim",
    "Known",
    "Phase",
    "StateStore",
    "open_state",
]


def open_state(settings: Settings) -> StateStore:
    """Redis when `DOCKERCISE_REDIS_URL` is set (workers on many machines share it), else SQLite."""
    if settings.redis_url:
        from bot.state.redis_store import RedisState

        return RedisState(settings.redis_url)
    from bot.state.sqlite_store import SqliteState

    return SqliteState(settings.data_dir / "state.db")
