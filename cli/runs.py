"""What `dockercise results` shows, as values: stored run and stage JSON -> rows, JSON, lines.

Pure: the command reads the store and picks the output; this module decides
what a run and its stages show, once for the table, the plain lines of a pipe
and `--json`, so the three always hold the same things.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len

from runner.durations import elapsed, format_duration

__all__ = ["RunView", "StageView", "columns", "run_line"]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _optional(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class StageView:
    name: str
    status: str | None
    exit_code: int | None
    started: str | None
    finished: str | None
    seconds: float | None
    reason: str | None

    @classmethod
    def of(cls, name: str, data: Mapping[str, Any]) -> StageView:
        """From a stage's JSON (or its entry in run.json while the stage's own is missing)."""
        exit_code = data.get("exit_code")
        return cls(
            name=name,
            status=_optional(data.get("status")),
            exit_code=exit_code if isinstance(exit_code, int) else None,
            started=_optional(data.get("started")),
            finished=_optional(data.get("finished")),
            seconds=elapsed(data),
            reason=_optional(data.get("reason")),
        )

    def cells(self) -> list[str]:
        """The table's row: stage, status, exit, time, reason."""
        return [
            self.name,
            _text(self.status),
            _text(self.exit_code),
            format_duration(self.seconds, unknown=""),
            _text(self.reason),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "exit_code": self.exit_code,
            "started": self.started,
            "finished": self.finished,
            "duration": self.seconds,
            "reason": self.reason,
        }


STAGE_HEADINGS = ["stage", "status", "exit", "time", "reason"]


@dataclass(frozen=True)
class RunView:
    id: str
    pipeline: str | None
    status: str | None
    trigger: dict[str, Any]
    started: str | None
    finished: str | None
    seconds: float | None
    stages: tuple[StageView, ...] = ()

    @classmethod
    def of(cls, run_id: str, data: Mapping[str, Any], stages: Sequence[StageView] = ()) -> RunView:
        """From run.json (empty when it cannot be read) and, for one run, its stages."""
        trigger = data.get("trigger")
        return cls(
            id=run_id,
            pipeline=_optional(data.get("pipeline")),
            status=_optional(data.get("status")),
            trigger=dict(trigger) if isinstance(trigger, Mapping) else {},
            started=_optional(data.get("started")),
            finished=_optional(data.get("finished")),
            seconds=elapsed(data),
            stages=tuple(stages),
        )

    @property
    def title(self) -> str:
        return f"run {self.id}: {self.pipeline} {self.status}"

    def to_json(self, with_stages: bool) -> dict[str, Any]:
        """The run's fields; `duration` in seconds (null while unknown); `trigger` as stored."""
        data: dict[str, Any] = {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "trigger": self.trigger,
            "started": self.started,
            "finished": self.finished,
            "duration": self.seconds,
        }
        if with_stages:
            data["stages"] = [s.to_json() for s in self.stages]
        return data


def run_line(run: RunView) -> str:
    """One line of the run list: id, status, trigger, duration, pipeline; nothing cut."""
    took = format_duration(run.seconds, unknown="")
    status = run.status or "?"
    trigger = _text(run.trigger.get("kind"))
    return f"{run.id}  {status:<9}  {trigger:<8}  {took:>10}  {_text(run.pipeline)}".rstrip()


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines of columns two spaces apart, each as wide as its widest cell.

    Widths count terminal cells (a CJK character takes two), so the columns
    line up wherever the text is shown; no cell is ever cut.
    """
    widths = [
        max((cell_len(row[i]) for row in rows if i < len(row)), default=0)
        for i in range(max((len(r) for r in rows), default=0))
    ]
    lines = []
    for row in rows:
        padded = [cell + " " * (widths[i] - cell_len(cell)) for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return lines
