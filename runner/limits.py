"""The operator's limits on a run, and the pure decisions the engine takes from them (SPEC §10).

A bot build always runs under limits (`bot.policy` gives them, defaults
filled in); a local `dockercise run` only under those its environment sets.
Every field is optional: None means no limit, so one `Limits` type serves
both, and the engine never asks where a limit came from.

Sizes read as Docker's do (`512m`, `2g`: powers of 1024); durations as a
pipeline's `timeout` does (`90s`, `1h`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from runner.durations import format_duration
from runner.rules import parse_duration

__all__ = [
    "LIMIT_DEFAULTS",
    "Limits",
    "Resources",
    "capped_timeout",
    "format_size",
    "limits_from_env",
    "parse_size",
    "too_many_stages",
]

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*\Z", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_DURATION = re.compile(r"\s*(?:[0-9]+(?:\.[0-9]+)?\s*(?:ms|s|m|h)\s*)+\Z|\s*[0-9]+\s*\Z")


@dataclass(frozen=True)
class Resources:
    """What one container (a stage's, or an image build's) may use; None: no limit."""

    memory: int | None = None
    """Bytes of memory, swap included (no swap beyond it)."""
    cpus: float | None = None
    pids: int | None = None
    log: int | None = None
    """Bytes of output the engine itself may keep for the container (its log driver)."""

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.memory, self.cpus, self.pids, self.log))


@dataclass(frozen=True)
class Limits:
    """A run's limits (SPEC §10), each None when it has none."""

    stage_memory: int | None = None
    stage_cpus: float | None = None
    stage_pids: int | None = None
    stage_disk: int | None = None
    """Bytes a stage's volume may hold; past it the stage is stopped (`disk limit`)."""
    max_timeout: float | None = None
    """Seconds: longer stage timeouts are cut to it."""
    max_build_time: float | None = None
    """Seconds a run may take; then it is cancelled (`build time limit`)."""
    max_log: int | None = None
    """Bytes of log (and of /out file) a stage keeps; the rest is dropped, the stage goes on."""
    max_stages: int | None = None
    build_concurrency: int | None = None
    """Containers of one run at once."""
    min_free: int | None = None
    """Bytes free under the bot's data directory below which a worker takes no build."""

    @classmethod
    def defaults(cls) -> Limits:
        """Every limit at its default: a bot build's, unless its operator says otherwise."""
        limits, _ = limits_from_env({}, defaults=True)
        return limits

    @property
    def resources(self) -> Resources:
        return Resources(self.stage_memory, self.stage_cpus, self.stage_pids, self.max_log)


@dataclass(frozen=True)
class _Variable:
    field: str
    default: str
    kind: str
    """`size`, `duration`, `count` or `cpus`."""


_VARIABLES: dict[str, _Variable] = {
    "DOCKERCISE_STAGE_MEMORY": _Variable("stage_memory", "2g", "size"),
    "DOCKERCISE_STAGE_CPUS": _Variable("stage_cpus", "2", "cpus"),
    "DOCKERCISE_STAGE_PIDS": _Variable("stage_pids", "1024", "count"),
    "DOCKERCISE_STAGE_DISK": _Variable("stage_disk", "10g", "size"),
    "DOCKERCISE_MAX_TIMEOUT": _Variable("max_timeout", "1h", "duration"),
    "DOCKERCISE_MAX_BUILD_TIME": _Variable("max_build_time", "3h", "duration"),
    "DOCKERCISE_MAX_LOG": _Variable("max_log", "64m", "size"),
    "DOCKERCISE_MAX_STAGES": _Variable("max_stages", "500", "count"),
    "DOCKERCISE_BUILD_CONCURRENCY": _Variable("build_concurrency", "4", "count"),
    "DOCKERCISE_MIN_FREE": _Variable("min_free", "5g", "size"),
}
LIMIT_DEFAULTS = {name: v.default for name, v in _VARIABLES.items()}
"""Each limit's variable and its default in bot builds."""

_MIN_MEMORY = 6 * 1024 * 1024
"""Docker refuses a container with less memory than this."""


def parse_size(text: str) -> int:
    """`512m`, `2g`, `10GiB`, `1.5g`, `4096` -> bytes (powers of 1024, as Docker reads them).

    ValueError when it is not a size.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(text)
    number, unit = match.groups()
    return int(float(number) * 1024 ** _POWERS[unit.lower()])


def format_size(size: int) -> str:
    """Bytes as the largest whole binary unit that reads well: `64 MiB`, `10 GiB`, `700 B`."""
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        value = size / 1024**power
        if value >= 1:
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"


def _parse(name: str, variable: _Variable, raw: str) -> tuple[float | int | None, str | None]:
    """The value of one variable, or the problem with it (a one-line settings error)."""
    try:
        if variable.kind == "size":
            value: float | int = parse_size(raw)
        elif variable.kind == "duration":
            if not _DURATION.match(raw):
                raise ValueError(raw)
            value = parse_duration(int(raw) if raw.strip().isdigit() else raw)
        elif variable.kind == "cpus":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
        else:
            value = int(raw)
    except ValueError:
        return None, f"{name} must be {_expectation(variable)}, not '{raw}'"
    if value <= 0:
        return None, f"{name} must be more than 0, not '{raw}'"
    if name == "DOCKERCISE_STAGE_MEMORY" and value < _MIN_MEMORY:
        return None, f"{name} must be at least 6m (the least Docker allows), not '{raw}'"
    return value, None


def _expectation(variable: _Variable) -> str:
    return {
        "size": f"a size like {variable.default} (k, m, g, t: powers of 1024)",
        "duration": f"a duration like {variable.default} (ms, s, m, h)",
        "cpus": "a number of CPUs like 2 or 0.5",
        "count": f"a whole number like {variable.default}",
    }[variable.kind]


def limits_from_env(env: Mapping[str, str], defaults: bool) -> tuple[Limits, list[str]]:
    """The limits the environment sets, the others at their defaults (`defaults`) or None.

    The bot passes `defaults=True` (every bot build is limited), `dockercise
    run` False (local runs are limited only by what is set).  Returns the
    problems too, one line per bad variable, for the caller's settings error.
    """
    values: dict[str, float | int | None] = {}
    problems: list[str] = []
    for name, variable in _VARIABLES.items():
        raw = env.get(name, "")
        if raw.strip() == "":
            raw = variable.default if defaults else ""
        if raw == "":
            continue
        value, problem = _parse(name, variable, raw)
        if problem is not None:
            problems.append(problem)
        values[variable.field] = value
    return Limits(**values), problems  # type: ignore[arg-type]


def capped_timeout(wanted: float, limits: Limits) -> tuple[float, str | None]:
    """A stage's timeout under `max_timeout`, and the note its log gets when it was cut."""
    if limits.max_timeout is None or wanted <= limits.max_timeout:
        return wanted, None
    cap = limits.max_timeout
    return cap, (
        f"timeout cut from {format_duration(wanted)} to {format_duration(cap)}"
        " (DOCKERCISE_MAX_TIMEOUT)"
    )


def too_many_stages(count: int, limits: Limits) -> str | None:
    """The one-line problem of a build with more stages than allowed, or None."""
    if limits.max_stages is None or count <= limits.max_stages:
        return None
    return (
        f"the build has {count} stages, more than DOCKERCISE_MAX_STAGES allows"
        f" ({limits.max_stages})"
    )
