"""Outcomes as values: a stage's and a run's result, and how they are serialised (SPEC §7)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["RunResult", "StageResult", "Status", "new_run_id", "now"]


class Status(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def bad(self) -> bool:
        """A status that makes the run fail."""
        return self in (Status.FAILURE, Status.ERROR)


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def new_run_id(moment: datetime | None = None) -> str:
    """Sorts by start time (to the millisecond) and is unique across machines (random suffix)."""
    moment = moment or now()
    return (
        moment.strftime("%Y%m%dT%H%M%S")
        + f"{moment.microsecond // 1000:03d}Z-"
        + secrets.token_hex(4)
    )


@dataclass
class StageResult:
    name: str
    status: Status
    reason: str | None = None
    exit_code: int | None = None
    started: datetime | None = None
    finished: datetime | None = None
    image: str | None = None
    logs: str | None = None
    artefact: str | None = None
    check: bool | None = None
    attempts: int = 0
    cache: list[dict[str, Any]] | None = None
    """Each `cache` path: key, restored (`exact`, `fallback`, None), saved, bytes, seconds."""
    services: list[dict[str, Any]] | None = None
    """Each service beside the stage (SPEC §14): name, image, ready (seconds), exit_code, logs."""
    failed_upstream: str | None = None
    """For a skipped stage: the failed stage that caused the skip (not stored)."""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "started": iso(self.started),
            "finished": iso(self.finished),
            "duration": self.duration,
            "image": self.image,
            "logs": self.logs,
            "artefact": self.artefact,
            "attempts": self.attempts,
        }
        if self.check is not None:
            data["check"] = self.check
        if self.cache is not None:
            data["cache"] = self.cache
        if self.services is not None:
            data["services"] = self.services
        return data


@dataclass
class RunResult:
    id: str
    pipeline: str
    status: Status
    started: datetime
    trigger: dict[str, Any] = field(
        default_factory=lambda: {"kind": "manual", "host": os.uname().nodename}
    )
    finished: datetime | None = None
    stages: dict[str, StageResult] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """Each finished stage's trimmed stdout (not stored: a schedule's watch compares it)."""
    reason: str | None = None
    """Why the run was stopped before its end by a limit (`build time limit`); else None."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status.value,
            "trigger": self.trigger,
            "started": iso(self.started),
            "finished": iso(self.finished),
            "stages": [{"name": s.name, "status": s.status.value} for s in self.stages.values()],
            "edges": [list(e) for e in self.edges],
        }
        if self.reason is not None:
            data["reason"] = self.reason
        return data
