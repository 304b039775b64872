"""`--env NAME=VALUE` and `--env-file FILE` (pure): the run's own variable sources (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from runner.errors import UsageError

__all__ = ["parse_assignments", "read_env_file"]


def _split(text: str, where: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        raise UsageError(f"{where}: expected NAME=VALUE, got '{text}'")
    if sep:
        return name, value
    # A bare NAME passes the variable through from the environment, as `docker run --env NAME` does.
    return (name, environ[name]) if name in environ else None


def parse_assignments(items: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """`--env` values; the value is taken verbatim (no quotes removed, nothing expanded)."""
    found: dict[str, str] = {}
    for item in items:
        pair = _split(item, f"--env {item}", environ)
        if pair is not None:
            found[pair[0]] = pair[1]
    return found


def read_env_file(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """A docker-style env file: `NAME=VALUE` lines, `#` comments, values verbatim."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            f"--env-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})"
        ) from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pair = _split(line, f"{path}:{number}", environ)
        if pair is not None:
            found[pair[0]] = pair[1]
    return found
