"""Build outcome -> GitHub check run payloads (pure; SPEC §12).

The one place a check run's words are made, as `bot.statuses` is for commit
statuses: the title, the summary table, the text with the failed stages'
last lines, the annotations. Everything a log line says is hostile: lines are
stripped of terminal escapes, and an annotation is made only for a plain
relative path that the caller confirms is a file of the checkout.

Decisions where SPEC §12 is silent:

- The conclusion is `failure` when a stage failed *or errored* (a check run
  has no `error`), `cancelled` when the build was cancelled (from the run page
  or superseded, whatever had failed before), `timed_out` when the run was
  stopped by the build time limit, `neutral` when no stage ran (every stage
  skipped, or none selected), else `success`. A build that could not run
  (checkout failed, internal error) or whose pipeline is invalid is `failure`,
  its title saying why.
- A stage's own check run (`meta.statuses: stages`) is created once, completed,
  when the stage ends: `success` for a passed stage, `skipped` for a skipped
  one, `failure`, `cancelled`.
- Annotations: level `failure`, for relative paths only (`./` dropped; absolute
  paths, `..` and control characters never), message cut to 1,000 characters;
  the first 50 across the failed stages, in stage order.
- Text: each failed stage (failed or errored, in run order) gets a heading and
  its last 50 lines in a fenced block; when the whole would pass GitHub's
  65,535 characters, the earliest lines go first, and a stage that no longer
  fits is named with "(log too long to show)".
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from runner.engine import BUILD_TIME_LIMIT
from runner.outcome import RunResult, StageResult, Status

__all__ = [
    "CHECK_NAME",
    "MAX_ANNOTATIONS",
    "MAX_TEXT",
    "TAIL_LINES",
    "Annotation",
    "CheckRun",
    "CheckStatus",
    "Conclusion",
    "LogScan",
    "ReportMode",
    "completed",
    "errored",
    "for_stage",
    "in_progress",
    "invalid",
    "queued",
    "scan_log",
    "title_of",
]

CHECK_NAME = "dockercise"
MAX_TEXT = 65535
"""GitHub refuses an output `text` or `summary` longer than this."""
MAX_ANNOTATIONS = 50
"""GitHub takes at most 50 annotations per request; the bot sends one request."""
TAIL_LINES = 50
MAX_MESSAGE = 1000
MAX_TITLE = 255

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LOCATION = re.compile(
    r"(?P<path>[^\s:][^:]*?):(?P<line>\d{1,9})(?::(?P<col>\d{1,9}))?: (?P<msg>.+)"
)


class ReportMode(StrEnum):
    """`DOCKERCISE_REPORT`: check runs (where the installation grants them) or statuses only."""

    CHECKS = "checks"
    STATUSES = "statuses"


class CheckStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Conclusion(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    NEUTRAL = "neutral"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Annotation:
    path: str
    line: int
    message: str
    column: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "start_line": self.line,
            "end_line": self.line,
            "annotation_level": "failure",
            "message": self.message,
        }
        if self.column is not None:  # columns only on one line, as GitHub wants
            data["start_column"] = data["end_column"] = self.column
        return data


@dataclass(frozen=True)
class CheckRun:
    """One create or update of a check run: what `bot.github_api` sends."""

    name: str
    status: CheckStatus
    external_id: str
    details_url: str | None = None
    conclusion: Conclusion | None = None
    title: str = ""
    summary: str = ""
    text: str = ""
    annotations: tuple[Annotation, ...] = ()

    def output(self) -> dict[str, Any] | None:
        if not self.title:
            return None
        out: dict[str, Any] = {"title": self.title, "summary": self.summary or self.title}
        if self.text:
            out["text"] = self.text
        if self.annotations:
            out["annotations"] = [a.to_json() for a in self.annotations]
        return out


@dataclass
class LogScan:
    """What a failed stage's log gives the check run: its last lines and its annotations."""

    tail: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)


def clean(line: str) -> str:
    """A log line without terminal escapes or control characters (tabs kept)."""
    return _CONTROL.sub("", _ESCAPES.sub("", line)).rstrip("\r\n")


def _relative(path: str) -> str | None:
    """A plain relative path (`./` dropped), or None for anything else."""
    while path.startswith("./"):
        path = path[2:]
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return path


def scan_log(
    lines: Iterable[str], is_file: Callable[[str], bool], room: int = MAX_ANNOTATIONS
) -> LogScan:
    """Read a failed stage's log once: keep its last TAIL_LINES, collect up to `room`
    annotations for `PATH:LINE[:COL]: message` lines whose PATH is a file of the checkout."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    found: list[Annotation] = []
    for raw in lines:
        line = clean(raw)
        tail.append(line)
        if len(found) >= room:
            continue
        match = _LOCATION.match(line.strip())
        if match is None:
            continue
        path = _relative(match["path"])
        number = int(match["line"])
        if path is None or number < 1 or not is_file(path):
            continue
        column = int(match["col"]) if match["col"] else None
        message = match["msg"].strip()[:MAX_MESSAGE]
        found.append(Annotation(path, number, message, column if column else None))
    return LogScan(list(tail), found)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def _why(result: StageResult) -> str:
    return f"{result.name} ({result.reason})" if result.reason else result.name


def title_of(run: RunResult, cancelled: str | None = None) -> str:
    """`3 of 4 stages passed; failed: test`, as the commit status says it."""
    results = list(run.stages.values())
    passed = sum(r.status is Status.SUCCESS for r in results)
    text = f"{passed} of {len(results)} stages passed"
    failed = [r.name for r in results if r.status is Status.FAILURE]
    broken = [r.name for r in results if r.status is Status.ERROR]
    if failed:
        text += "; failed: " + ", ".join(failed)
    if broken:
        text += "; error: " + ", ".join(broken)
    if cancelled is not None:
        text += f"; {cancelled}"
    return _fit(text, MAX_TITLE)


def _cell(text: str) -> str:
    """Table cell text: no pipes, no newlines, no Markdown links of the log's own making."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("[", "\\[")


def _summary(run: RunResult, run_url: str) -> str:
    rows = ["| stage | status | duration |", "|---|---|---|"]
    for result in run.stages.values():
        status = result.status.value + (f": {result.reason}" if result.reason else "")
        name = _cell(result.name)
        if result.logs:
            name = f"[{name}]({run_url}/{quote(result.name + '.log', safe='')})"
        rows.append(f"| {name} | {_cell(status)} | {_duration(result.duration)} |")
    summary = "\n".join(rows) + f"\n\n[The run's page]({run_url})\n"
    return _fit(summary, MAX_TEXT)


def _text(run: RunResult, tails: Mapping[str, Sequence[str]]) -> str:
    """Each failed stage's last lines, each stage given an equal share of what is left of
    GitHub's limit; the latest lines are kept, a line too long for the share keeps its end."""
    parts: list[str] = []
    used = 0
    names = list(tails)
    for i, name in enumerate(names):
        share = (MAX_TEXT - used) // (len(names) - i)
        result = run.stages.get(name)
        heading = f"### {_cell(name)}: {result.status.value if result else 'failed'}\n\n````\n"
        closing = "````\n"
        room = share - len(heading) - len(closing)
        kept: list[str] = []
        for line in reversed(tail := [t.replace("````", "'```") for t in tails[name]]):
            if room <= 1:
                break
            if len(line) + 1 > room:
                line = "…" + line[len(line) - room + 2 :]
            kept.append(line)
            room -= len(line) + 1
        if tail and not kept:
            block = f"### {_cell(name)}: (log too long to show)\n"
            if len(block) > share:
                continue
        else:
            block = heading + "".join(f"{line}\n" for line in reversed(kept)) + closing
        parts.append(block)
        used += len(block)
    return "".join(parts)


def _conclusion(run: RunResult, cancelled: str | None) -> Conclusion:
    if cancelled is not None:
        return Conclusion.CANCELLED
    if run.reason == BUILD_TIME_LIMIT:  # SPEC §10 limits
        return Conclusion.TIMED_OUT
    statuses = [r.status for r in run.stages.values()]
    if any(s.bad for s in statuses):
        return Conclusion.FAILURE
    if Status.CANCELLED in statuses:
        return Conclusion.CANCELLED
    if all(s is Status.SKIPPED for s in statuses):  # nothing ran
        return Conclusion.NEUTRAL
    return Conclusion.SUCCESS


def failed_stages(run: RunResult) -> list[str]:
    """The stages whose logs the check run shows: failed or errored, in run order."""
    return [r.name for r in run.stages.values() if r.status.bad]


def queued(build_id: str, details_url: str | None, name: str = CHECK_NAME) -> CheckRun:
    return CheckRun(name, CheckStatus.QUEUED, build_id, details_url)


def in_progress(build_id: str, details_url: str | None, name: str = CHECK_NAME) -> CheckRun:
    return CheckRun(name, CheckStatus.IN_PROGRESS, build_id, details_url)


def completed(
    build_id: str,
    run: RunResult,
    run_url: str,
    scans: Mapping[str, LogScan],
    cancelled: str | None = None,
) -> CheckRun:
    """The build's final check run. `scans`: each failed stage's log read by `scan_log`;
    `cancelled`: why the build was cancelled (`cancelled`, `cancelled: superseded`)."""
    annotations = [a for scan in scans.values() for a in scan.annotations][:MAX_ANNOTATIONS]
    return CheckRun(
        CHECK_NAME,
        CheckStatus.COMPLETED,
        build_id,
        run_url,
        _conclusion(run, cancelled),
        title_of(run, cancelled),
        _summary(run, run_url),
        _text(run, {name: scan.tail for name, scan in scans.items()}),
        tuple(annotations),
    )


def for_stage(build_id: str, result: StageResult, run_url: str) -> CheckRun:
    """A stage's own completed check run, `dockercise/<stage>` (`meta.statuses: stages`)."""
    conclusion = {
        Status.SUCCESS: Conclusion.SUCCESS,
        Status.SKIPPED: Conclusion.SKIPPED,
        Status.CANCELLED: Conclusion.CANCELLED,
    }.get(result.status, Conclusion.FAILURE)
    title = _fit(result.status.value + (f": {result.reason}" if result.reason else ""), MAX_TITLE)
    return CheckRun(
        f"{CHECK_NAME}/{result.name}",
        CheckStatus.COMPLETED,
        build_id,
        run_url,
        conclusion,
        title,
        title,
    )


def errored(build_id: str, why: str, details_url: str | None) -> CheckRun:
    """A build that could not run: `failure`, its title saying why."""
    title = _fit(f"build error: {why}", MAX_TITLE)
    return CheckRun(
        CHECK_NAME, CheckStatus.COMPLETED, build_id, details_url, Conclusion.FAILURE, title, title
    )


def invalid(build_id: str, problem: str, details_url: str | None) -> CheckRun:
    title = _fit(f"pipeline invalid: {problem}", MAX_TITLE)
    return CheckRun(
        CHECK_NAME, CheckStatus.COMPLETED, build_id, details_url, Conclusion.FAILURE, title, title
    )


def cancelled_before(build_id: str, why: str, details_url: str | None) -> CheckRun:
    """A build cancelled before it ran."""
    return CheckRun(
        CHECK_NAME, CheckStatus.COMPLETED, build_id, details_url, Conclusion.CANCELLED, why, why
    )
