"""What a bot build may not do, decided before anything runs (pure; SPEC §4, §5).

A pull request from a fork gets neither secrets nor host volumes, and no bot
build mounts a host path outside `DOCKERCISE_ALLOWED_HOST_PATHS`: the stages
that want one fail before they start, saying why, while the rest run.
"""

from __future__ import annotations

import os

from runner.model import MountKind, Pipeline

__all__ = ["FORK_SECRETS", "restrictions"]

FORK_SECRETS = "secrets are not available to pull requests from forks"


def restrictions(
    pipeline: Pipeline, fork: bool, allowed_host_paths: tuple[str, ...]
) -> dict[str, str]:
    """Stages that must fail before they start in a bot build, with the reason (SPEC §4, §5)."""
    denied: dict[str, str] = {}
    for stage in pipeline.stages.values():
        for mount in stage.vol:
            if mount.kind is MountKind.HOST and (
                fork or not any(_under(mount.source, p) for p in allowed_host_paths)
            ):
                denied[stage.name] = (
                    f"host volume {mount.source} is not allowed in bot builds"
                    " (DOCKERCISE_ALLOWED_HOST_PATHS)"
                )
        wants_secret = any(
            (item.value is None and {item.name, item.name.upper()} & pipeline.meta.secrets.keys())
            or (item.value or "").startswith("secure:")
            for item in stage.env
        )
        if fork and wants_secret:
            denied[stage.name] = FORK_SECRETS
    return denied


def _under(path: str, top: str) -> bool:
    path, top = os.path.normpath(path), os.path.normpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")
