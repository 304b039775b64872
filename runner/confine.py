"""Paths a run hands to the engine, checked where they are used: host paths and build contexts.

The Docker engine follows symbolic links when it bind-mounts a host path or
reads a build context, so a path that looks allowed as written can lead
anywhere: a link in an allowed folder (planted by an earlier stage that
mounted it writable), or a link committed to the checkout as a build context
or `.dockerignore`.  These checks run right before the path is used (before
each container is created, before each image build), so a link planted
after the run started is seen too.  A refusal is a `Refused`: the stage fails
with the reason, one line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from runner.errors import Refused
from runner.wording import escape, quote

__all__ = ["build_paths", "host_path"]


def _under(path: str, top: str) -> bool:
    top = os.path.normpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def host_path(source: Path, allowed: Sequence[str]) -> Path:
    """The host path to mount, when it is allowed: else Refused.

    `source` is absolute and normalised, not resolved.  It is allowed when
    nothing on its way is a symbolic link (its real path is itself) and it
    lies under one of the `allowed` folders; a listed folder that is itself
    reached through a link allows nothing (list real paths).
    """
    written = os.path.normpath(source)
    real = os.path.realpath(written)
    if real != written:
        raise Refused(
            f"host volume {escape(written)} is or passes through a symbolic link"
            f" (to {escape(real)}): not allowed in bot builds"
        )
    if not any(_under(written, top) for top in allowed):
        raise Refused(
            f"host volume {escape(written)} is not allowed in bot builds"
            " (DOCKERCISE_ALLOWED_HOST_PATHS)"
        )
    return Path(written)


def build_paths(project: Path, context: Path, dockerfile: str, strict: bool) -> None:
    """Refuse a build context, Dockerfile or `.dockerignore` that leads out of the checkout.

    `strict` (bot builds): no component of any of them below the checkout may
    be a symbolic link, even one pointing inside.  Otherwise (local runs) each
    must resolve inside the project.  The context's other files need no
    check: they are archived as they are, links as links (never followed).
    """
    root = os.path.realpath(project)
    targets = [(context, "build context"), (context / dockerfile, "Dockerfile")]
    ignore = context / ".dockerignore"
    if os.path.lexists(ignore):
        targets.append((ignore, ".dockerignore"))
    for path, what in targets:
        shown = quote(_shown(path, project))
        if not _under(os.path.normpath(path), os.path.normpath(project)):
            raise Refused(f"{what} {shown} is outside the checkout")
        if strict:
            link = _first_link(project, path)
            if link is not None:
                raise Refused(
                    f"{what} {shown} passes through a symbolic link"
                    f" ({quote(_shown(link, project))}): not allowed in bot builds"
                )
        elif not _under(os.path.realpath(path), root):
            raise Refused(f"{what} {shown} resolves outside the project")


def _first_link(project: Path, path: Path) -> Path | None:
    """The first component of `path` below `project` that is a symbolic link, if any."""
    relative = Path(os.path.normpath(path)).relative_to(os.path.normpath(project))
    current = Path(os.path.normpath(project))
    for part in relative.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None  # what is missing is said by the caller ("no Dockerfile")
        if stat.S_ISLNK(mode):
            return current
    return None


def _shown(path: Path, project: Path) -> str:
    try:
        return str(Path(os.path.normpath(path)).relative_to(os.path.normpath(project)))
    except ValueError:
        return str(path)
