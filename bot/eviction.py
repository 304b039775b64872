"""Which mirrors go when they take more disk than `DOCKERCISE_MIRROR_MAX` (pure; SPEC §13)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MirrorUse", "victims"]


@dataclass(frozen=True)
class MirrorUse:
    name: str
    size: int
    """Bytes on disk: the bare mirror and its working tree."""
    used: float
    """When a build or the announcer last used it (seconds since the epoch)."""


def victims(mirrors: list[MirrorUse], limit: int, keep: str | None = None) -> list[str]:
    """The mirrors to remove, least recently used first, until the rest fit in `limit`.

    `keep` (the mirror a build has just used) is never one of them, even when
    it alone is over the limit: removing it would make the next build of that
    repository fetch everything again, and free nothing a build could use.
    """
    total = sum(m.size for m in mirrors)
    chosen = []
    for mirror in sorted(mirrors, key=lambda m: (m.used, m.name)):
        if total <= limit:
            break
        if mirror.name == keep:
            continue
        chosen.append(mirror.name)
        total -= mirror.size
    return chosen
