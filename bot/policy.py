"""What a bot build may have and may not do, decided before anything runs (pure; SPEC §4,
§5, §10).

A pull request from a fork gets neither secrets nor host volumes, and no bot
build mounts a host path outside `DOCKERCISE_ALLOWED_HOST_PATHS` unless its
repository is trusted (`DOCKERCISE_TRUSTED_REPOS`): the stages that want one
fail before they start, saying why, while the rest run.  The paths are
checked again, links resolved, as each container is made (`runner.confine`);
here they are compared as written.  A build gets a network of its own, or
none: a `meta.network` asking for anything else refuses the whole build.
Every bot build runs under the operator's limits (`allowance`), and a worker
short of disk takes no build at all (`room_for_build`).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass

from runner.errors import DockerciseError
from runner.limits import Limits, format_size
from runner.model import MountKind, Pipeline
from runner.networks import NONE, Networking
from runner.wording import quote

__all__ = [
    "BUILD_NETWORK",
    "FORK_SECRETS",
    "BuildAllowance",
    "NetworkRefused",
    "allowance",
    "host_paths",
    "networking",
    "restrictions",
    "room_for_build",
    "trusted_repository",
]

BUILD_NETWORK = "none"
"""The network of a bot build's image builds when the build has no network of its own
(`meta.network: none`); otherwise the engine gives them the build's own (SPEC §10: none
beyond its own), so `RUN pip install` works where the stages' own downloads would."""


@dataclass(frozen=True)
class BuildAllowance:
    """Everything a bot build gets from the policy, for its RunOptions."""

    denied: dict[str, str]
    """Stage -> why it fails before it starts (`restrictions`)."""
    limits: Limits
    build_network: str


def allowance(
    pipeline: Pipeline,
    fork: bool,
    allowed_host_paths: tuple[str, ...],
    limits: Limits,
    trusted: bool = False,
) -> BuildAllowance:
    """What one bot build may have: its stages' restrictions, the operator's limits, and
    no network for its image builds."""
    denied = restrictions(pipeline, fork, allowed_host_paths, trusted)
    return BuildAllowance(denied, limits, BUILD_NETWORK)


def room_for_build(free: int, limits: Limits) -> str | None:
    """Why a worker with `free` bytes under its data directory takes no build now, or None.

    Below DOCKERCISE_MIN_FREE a build would likely fail half-way for want of
    disk, and fill what is left; it waits on the queue for a worker with room.
    """
    if limits.min_free is None or free >= limits.min_free:
        return None
    return (
        f"only {format_size(free)} free under the data directory, less than"
        f" DOCKERCISE_MIN_FREE ({format_size(limits.min_free)}): taking no build"
    )


class NetworkRefused(DockerciseError):
    """`meta.network` asks a bot build for a network other than its own or none."""


def networking(network: str | None) -> Networking:
    """How a bot build's stages are networked: their own network, or none at all (SPEC §10).

    `host` would give the worker's own services, `bridge` or `container:...`
    other builds' containers: NetworkRefused, naming `meta.network`, ends the
    build before anything runs.
    """
    if network is None:
        return Networking.OWN
    if network == NONE:
        return Networking.NONE
    raise NetworkRefused(
        f"meta.network {quote(network, 60)} is not allowed in bot builds: only 'none'"
        " (each build gets a network of its own without it)"
    )


def trusted_repository(fork: bool, repo: str, trusted: Collection[str]) -> bool:
    """Whether the operator's trusted settings (`DOCKERCISE_TRUSTED_REPOS`) apply to a build.

    Never to a fork's (SPEC §10: forks get no trusted settings), even when the
    repository it asks to be built in is listed: the code is the fork's.
    GitHub's names ignore case, and so does the list.
    """
    return not fork and repo.lower() in {name.lower() for name in trusted}


def host_paths(fork: bool, trusted: bool, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where a build's host paths must lie when its containers are made; None: anywhere.

    A trusted repository's build mounts them as a local run does; a fork's
    none at all (its stages are refused before they start anyway).
    """
    if trusted and not fork:
        return None
    return () if fork else allowed


FORK_SECRETS = "secrets are not available to pull requests from forks"


def restrictions(
    pipeline: Pipeline, fork: bool, allowed_host_paths: tuple[str, ...], trusted: bool = False
) -> dict[str, str]:
    """Stages that must fail before they start in a bot build, with the reason (SPEC §4, §5).

    `trusted`: the repository is in DOCKERCISE_TRUSTED_REPOS (its host paths
    are not restricted, unless the build is a fork's).
    """
    denied: dict[str, str] = {}
    for stage in pipeline.stages.values():
        for mount in stage.vol:
            if mount.kind is MountKind.HOST and (
                fork or not (trusted or any(_under(mount.source, p) for p in allowed_host_paths))
            ):
                denied[stage.name] = (
                    f"host volume {mount.source} is not allowed in bot builds"
                    " (DOCKERCISE_ALLOWED_HOST_PATHS)"
                )
        wants_secret = any(
            (item.value is None and {item.name, item.name.upper()} & pipeline.meta.secrets.keys())
            or (item.value or "").startswith("secure:")
            for item in [*stage.env, *(i for service in stage.services for i in service.env)]
        )
        if fork and wants_secret:
            denied[stage.name] = FORK_SECRETS
    return denied


def _under(path: str, top: str) -> bool:
    path, top = os.path.normpath(path), os.path.normpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")
