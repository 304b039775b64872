"""Which network a run's containers join, and the names they are reached by (pure; SPEC §10).

A bot build gets a network of its own: its stages reach each other by stage
name, and no other build's containers are on it, so no other build's stage
answers to a name here.  Names that reach the engine are spelled from run ids
and stage names, which come from outside (a run id read back from a store, a
stage name from a pipeline anyone wrote), so each is sanitized here rather
than trusted to be spellable.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum

__all__ = [
    "BRIDGE_PREFIX",
    "NONE",
    "Networking",
    "bridge_name",
    "dns_aliases",
    "network_name",
    "stage_network",
]

NONE = "none"
"""The network mode of a container with no network at all (loopback only)."""

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
"""A DNS label (RFC 1123): letters, digits and inner hyphens, 1 to 63 characters."""

_UNSPELLABLE = re.compile(r"[^A-Za-z0-9_.-]")
"""What a Docker network name may not hold ([a-zA-Z0-9][a-zA-Z0-9_.-]*)."""

_MAX_NAME = 128

BRIDGE_PREFIX = "dcx-"
"""Every build network's host interface starts so: the egress policy matches `dcx+`."""


class Networking(StrEnum):
    """How a run's containers are networked."""

    AS_WRITTEN = "as-written"
    """`meta.network` is passed to the engine as written (local runs; default: the engine's)."""
    OWN = "own"
    """A network made for the run, removed with it; each stage joins it under its name."""
    NONE = "none"
    """No network at all (`meta.network: none` in a bot build)."""


def network_name(run_id: str, stage: str | None = None) -> str:
    """The engine's name of a run's network (or of one stage's, for its services).

    Anything Docker does not allow in a network name becomes `_`, and the
    name is cut to a length every engine takes; the run id keeps it unique.
    """
    parts = ["dockercise", run_id] + ([stage] if stage is not None else [])
    name = _UNSPELLABLE.sub("_", "-".join(parts))
    return name[:_MAX_NAME]


def stage_network(run_id: str, stage: str, attempt: int = 1) -> str:
    """The engine's name of a stage's own network, its services' (SPEC §14); unique in the run.

    The stage's name is spelled for the engine and cut, then followed by a
    digest of it: two stages whose names spell alike (`a[x]` and `a_x_`)
    still get two networks.  A retry's attempt gets one of its own, so it
    never waits for the last attempt's to be removed.
    """
    spelled = _UNSPELLABLE.sub("_", stage)[:48]
    digest = hashlib.sha256(stage.encode()).hexdigest()[:10]
    suffix = "" if attempt == 1 else f"-{attempt}"
    return network_name(run_id, f"{spelled}-{digest}{suffix}")


def bridge_name(network: str) -> str:
    """The host interface of a run's network: `dcx-` and 11 hex digits (Linux allows 15).

    Docker would name it `br-<id>`, which no firewall rule can tell from any
    other network's; with one prefix for every build network, the operators'
    egress policy (docs/reference.md) matches build traffic alone.
    """
    digest = hashlib.sha256(network.encode()).hexdigest()
    return BRIDGE_PREFIX + digest[: 15 - len(BRIDGE_PREFIX)]


def dns_aliases(stages: Iterable[str]) -> dict[str, str]:
    """Stage -> the name it is reached by on its run's network; not every stage has one.

    Only a stage name that is a valid DNS label is an alias (`build`, `db-1`;
    not `test[py=3.12]` nor `a.b`, which a resolver would read as a domain).
    DNS ignores case, so two stages whose names differ only in case get
    none: a name must never answer for the wrong stage.
    """
    names = list(stages)
    folded = Counter(name.casefold() for name in names)
    return {n: n for n in names if _LABEL.match(n) and folded[n.casefold()] == 1}
