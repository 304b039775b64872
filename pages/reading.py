"""What the results pages show, read from a ResultReader into plain values.

The routes stay thin: they validate the URL's parts, call one of these, and
render.  Everything here goes through the ResultReader interface only, so a
local directory and S3 read alike; a file that is missing or not valid JSON
reads as absent rather than raising, since a run being written is read while
it changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pages.terminal import strip_controls
from runner.durations import elapsed, moment
from runner.outcome import Status
from runner.store.base import ResultReader, valid_part

__all__ = [
    "LOG_TAIL",
    "PAGE_SIZE",
    "LogView",
    "RunRow",
    "RunState",
    "StageRow",
    "read_json",
    "run_rows",
    "run_state",
    "service_logs",
    "stage_rows",
]

PAGE_SIZE = 50
"""Runs per page of a run list: each one costs a read of its run.json."""
LOG_TAIL = 256 * 1024
"""Bytes of a log shown on a run page (the end, where failures are); the .log link has it all."""

_NOT_RUN = frozenset({Status.SKIPPED, Status.CANCELLED, Status.WAITING})


def read_json(store: ResultReader, run_id: str, name: str) -> dict[str, Any] | None:
    """The file as a JSON object, or None when absent, invalid, or not an object."""
    if not valid_part(run_id) or not valid_part(name):
        return None
    try:
        data = store.read_json(run_id, name)
    except ValueError:  # half-written by a store without atomic writes, or damaged
        return None
    return data if isinstance(data, dict) else None


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class RunRow:
    id: str
    pipeline: str
    status: str
    trigger: str
    detail: str
    started: datetime | None
    seconds: float | None


def _row(run_id: str, data: Mapping[str, Any]) -> RunRow:
    """A run's line in a list, from its run.json (which anyone with the store could write)."""
    kind, detail = _trigger(data)
    return RunRow(
        id=run_id,
        pipeline=_text(data.get("pipeline")),
        status=_text(data.get("status")) or "unknown",
        trigger=kind,
        detail=detail,
        started=moment(data.get("started")),
        seconds=elapsed(data),
    )


def _trigger(data: Mapping[str, Any]) -> tuple[str, str]:
    """The trigger's kind, and its other fields as `key: value` text (ref, sha, host...)."""
    trigger = data.get("trigger")
    if not isinstance(trigger, dict):
        return "", ""
    detail = " ".join(
        f"{k}: {str(v)[:40]}"
        for k, v in trigger.items()
        if k != "kind" and isinstance(v, str | int | float) and not isinstance(v, bool)
    )
    return _text(trigger.get("kind")), detail


def run_rows(store: ResultReader, page: int = 0) -> tuple[list[RunRow], bool]:
    """One page of the run list, newest first, and whether older runs follow."""
    ids = store.run_ids()
    chosen = ids[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    rows = []
    for run_id in chosen:
        data = read_json(store, run_id, "run.json")
        if data is None:
            continue  # a run whose run.json is not there (yet): nothing to show
        rows.append(_row(run_id, data))
    return rows, len(ids) > (page + 1) * PAGE_SIZE


@dataclass(frozen=True)
class RunState:
    """run.json and the newest JSON of each of its stages: what the live page polls."""

    run: dict[str, Any]
    stages: list[dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return [_text(s.get("name")) for s in self.stages]

    @property
    def edges(self) -> list[tuple[str, str]]:
        found = self.run.get("edges")
        pairs = found if isinstance(found, list) else []
        return [(str(p[0]), str(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "run": self.run, "stages": self.stages}

    @property
    def version(self) -> str:
        """Changes whenever anything the page shows from the JSON files changes."""
        raw = json.dumps({"run": self.run, "stages": self.stages}, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def run_state(store: ResultReader, run_id: str) -> RunState | None:
    """The run's state, or None when there is no such run (the caller answers 404)."""
    run = read_json(store, run_id, "run.json")
    if run is None:
        return None
    entries = run.get("stages")
    stages = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = entry["name"]
        found = read_json(store, run_id, f"{name}.json") if valid_part(name) else None
        stages.append(found if found is not None and found.get("name") == name else dict(entry))
    return RunState(run, stages)


@dataclass(frozen=True)
class LogView:
    text: str | None
    """The (end of the) log, or None when there is nothing to show; `note` then says why."""
    note: str
    size: int = 0
    cut: bool = False
    downloadable: bool = False


@dataclass(frozen=True)
class ServiceRow:
    """A service beside a stage (SPEC §14), as its stage's JSON lists it, with its log."""

    name: str
    image: str
    ready: float | None
    exit_code: str
    log: LogView
    waiting: bool = False
    """Not ready yet, its stage still running (rather than never ready)."""


@dataclass(frozen=True)
class StageRow:
    name: str
    status: str
    exit_code: str
    reason: str
    started: datetime | None
    seconds: float | None
    image: str
    attempts: int
    artefact: bool
    log: LogView
    services: tuple[ServiceRow, ...] = ()


def log_allowed(stage: Mapping[str, Any], stored: set[str]) -> bool:
    """Whether the stage's log may be shown or downloaded at all.

    A finished stage shows its log only when its JSON names one; a `noLog`
    stage's JSON never does (`logs: null`), so its output is never read.  A
    running stage's JSON names its log only at the end, so until then the
    partial log is shown if the file exists (a `noLog` stage never has one).
    """
    name = stage.get("name")
    if not isinstance(name, str) or f"{name}.log" not in stored:
        return False
    if stage.get("logs") is not None:
        return True
    return stage.get("status") == Status.RUNNING


def service_logs(stage: Mapping[str, Any], stored: set[str]) -> dict[str, str]:
    """`<stage>.<service>` -> its log's file name, for each service log that may be shown.

    A stage lists its services in its JSON as soon as they have started, each
    with its log unless the stage keeps none (a `noLog` stage's services keep
    none): the same rule as the stage's own log, so a running stage's services'
    logs are shown while it runs, as its own partial log is.
    """
    services = stage.get("services")
    name = stage.get("name")
    if not isinstance(services, list) or not log_allowed(stage, stored):
        return {}
    assert isinstance(name, str)  # log_allowed checked it
    found = {}
    for service in services:
        logs = service.get("logs") if isinstance(service, dict) else None
        if isinstance(logs, str) and logs in stored and logs == f"{name}.{service.get('name')}.log":
            found[logs.removesuffix(".log")] = logs
    return found


def _services(
    store: ResultReader, run_id: str, stage: Mapping[str, Any], stored: set[str]
) -> tuple[ServiceRow, ...]:
    services = stage.get("services")
    if not isinstance(services, list):
        return ()
    shown = service_logs(stage, stored)
    rows = []
    for service in services:
        if not isinstance(service, dict):
            continue
        name = _text(service.get("name"))
        base = f"{_text(stage.get('name'))}.{name}"
        log = LogView(None, "no log stored")
        if base in shown:
            log = _tail_view(store, run_id, base)
        ready, code = service.get("ready"), service.get("exit_code")
        rows.append(
            ServiceRow(
                name=name,
                image=_text(service.get("image")),
                ready=float(ready) if isinstance(ready, int | float) else None,
                exit_code="" if code is None else str(code),
                log=log,
                waiting=stage.get("status") == Status.RUNNING,
            )
        )
    return tuple(rows)


def _log(store: ResultReader, run_id: str, stage: Mapping[str, Any], stored: set[str]) -> LogView:
    status = _text(stage.get("status"))
    if not log_allowed(stage, stored):
        if stage.get("logs") is not None:
            return LogView(None, "no log stored")
        if status in (Status.RUNNING, Status.WAITING):
            return LogView(None, "no output yet")
        if status in _NOT_RUN:
            return LogView(None, f"no output ({status})")
        return LogView(None, "output hidden (noLog)")
    return _tail_view(store, run_id, _text(stage.get("name")))


def _tail_view(store: ResultReader, run_id: str, name: str) -> LogView:
    """The end of `<name>.log`, from a whole line on."""
    found = _tail(store, run_id, name, LOG_TAIL)
    if found is None:  # removed since it was listed
        return LogView(None, "no log stored")
    tail, size = found
    text = tail.decode("utf-8", "replace")
    cut = size > len(tail)
    if cut:
        text = text.partition("\n")[2]  # start at a whole line
    return LogView(strip_controls(text), "" if text else "empty", size, cut, True)


def _tail(store: ResultReader, run_id: str, stage: str, limit: int) -> tuple[bytes, int] | None:
    """The last `limit` bytes of the log and its whole size; only those bytes are read."""
    found = store.stream(run_id, f"{stage}.log", -limit)
    if found is None:
        return None
    size, chunks = found
    try:
        tail = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return tail[-limit:], size


def stage_rows(store: ResultReader, run_id: str, state: RunState) -> list[StageRow]:
    """Each stage with its timings, its log (or why none is shown), and its artefact."""
    stored = set(store.names(run_id))
    rows = []
    for stage in state.stages:
        name = _text(stage.get("name"))
        exit_code = stage.get("exit_code")
        attempts = stage.get("attempts")
        rows.append(
            StageRow(
                name=name,
                status=_text(stage.get("status")) or Status.WAITING,
                exit_code="" if exit_code is None else str(exit_code),
                reason=strip_controls(_text(stage.get("reason"))),
                started=moment(stage.get("started")),
                seconds=elapsed(stage),
                image=_text(stage.get("image")),
                attempts=attempts if isinstance(attempts, int) else 0,
                artefact=stage.get("artefact") is not None and f"{name}.zip" in stored,
                log=_log(store, run_id, stage, stored),
                services=_services(store, run_id, stage, stored),
            )
        )
    return rows


SCANNED = 50
"""Newest runs read for the latest build of each branch (landing page, badges)."""


def branch_of(run: Mapping[str, Any]) -> str | None:
    """The branch a run built (`refs/heads/B` of its trigger), `#N` for a pull request."""
    trigger = run.get("trigger")
    if not isinstance(trigger, dict):
        return None
    ref = trigger.get("ref")
    if isinstance(ref, str) and ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    number = trigger.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        return f"#{number}"
    return None


def latest_per_branch(store: ResultReader, limit: int = SCANNED) -> dict[str, RunRow]:
    """The newest run of each branch among the `limit` newest runs, newest first."""
    latest: dict[str, RunRow] = {}
    for run_id in store.run_ids()[:limit]:
        data = read_json(store, run_id, "run.json")
        branch = None if data is None else branch_of(data)
        if data is None or branch is None or branch in latest:
            continue
        latest[branch] = _row(run_id, data)
    return latest
