"""The validated pipeline: plain dataclasses, built by `runner.pipeline`, read by the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = [
    "CachePath",
    "EnvItem",
    "Meta",
    "Mount",
    "MountKind",
    "Pipeline",
    "Service",
    "Stage",
    "Triggers",
    "When",
]

CODE = "code"
"""The reserved name of the checkout (SPEC §1)."""


class When(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ALWAYS = "always"


class MountKind(StrEnum):
    STAGE = "stage"
    CODE = "code"
    HOST = "host"


@dataclass(frozen=True)
class Mount:
    """A `vol` item: what is mounted (a stage's volume, the checkout, a host path) and where."""

    kind: MountKind
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class EnvItem:
    """An `env` item: a literal (`value` set), or a name resolved from a stage or outside."""

    name: str
    value: str | None = None


@dataclass(frozen=True)
class CachePath:
    """A `cache` item: a container path kept between builds, keyed by `key` files' contents."""

    path: str
    key: tuple[str, ...] = ()
    """Globs, relative to the checkout, of the files whose contents key the cache."""


@dataclass(frozen=True)
class Service:
    """A `services` item: a container beside its stage, reached by `name` (SPEC §14)."""

    name: str
    img: str
    line: int
    """Where the service is written, for error messages."""
    run: str | None = None
    """A script run as `/bin/sh -c`; None: the image's own command."""
    env: tuple[EnvItem, ...] = ()
    ready: str | None = None
    """A shell command that exits 0 once the service serves; None: ready once started."""


@dataclass(frozen=True)
class Stage:
    name: str
    file: str
    line: int
    img: str | None = None
    build: str | None = None
    run: str | None = None
    after: tuple[str, ...] = ()
    env: tuple[EnvItem, ...] = ()
    vol: tuple[Mount, ...] = ()
    on: str | None = None
    dir: str | None = None
    no_log: bool = False
    never_fail: bool = False
    when: When = When.SUCCESS
    if_: str | None = None
    unless: str | None = None
    timeout: float | None = None
    retry: int = 0
    paths: tuple[str, ...] = ()
    remote: str | None = None
    cache: tuple[CachePath, ...] = ()
    services: tuple[Service, ...] = ()
    matrix: dict[str, list[str | int | float | bool]] | None = field(
        default=None, compare=False, hash=False
    )
    """`matrix` as written; only until the loader expands the stage (runner.matrix)."""
    origin: str | None = None
    """The matrix stage this stage is one expansion of."""
    variables: tuple[tuple[str, str], ...] = ()
    """An expansion's matrix variables and values, in matrix order (also in `env`)."""
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    """The line of each key, for error messages."""


@dataclass(frozen=True)
class Triggers:
    """`meta.on`: what makes the bot build (SPEC §6, §8)."""

    push: bool = True
    branches: tuple[str, ...] = ()
    """Globs of the branches whose pushes build; empty: every branch."""
    pull_request: bool = True
    cron: str | None = None
    watch: str | None = None
    upstream: tuple[str, ...] = ()


class Supersede(StrEnum):
    """`meta.supersede`: which builds a newer commit cancels in the bot (SPEC §11)."""

    PULL_REQUESTS = "pull_requests"
    """A pull request's older commits' builds (the default)."""
    ALL = "all"
    """Those and a branch's older commits' builds."""
    NONE = "none"


@dataclass(frozen=True)
class Meta:
    name: str
    concurrency: int | None = None
    timeout: float | None = None
    network: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    statuses: str = "pipeline"
    on: Triggers = field(default_factory=Triggers)
    downstream: tuple[str, ...] = ()
    supersede: Supersede = Supersede.PULL_REQUESTS


@dataclass
class Pipeline:
    """Every stage of every pipeline file under `root`, and the edges between them."""

    root: Path
    files: list[str]
    stages: dict[str, Stage]
    meta: Meta
    deps: dict[str, set[str]]
    """stage -> the stages it depends on (every edge of SPEC §2)."""
    matrices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """matrix stage as written -> the names of its expansions (which are in `stages`)."""
