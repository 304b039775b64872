"""What dead processes left behind: found by their owner, removed, their runs finished (SPEC §10).

A run labels its containers, networks and built images with its owner
(`runner.ownership`) and the store it writes to, and writes the same into
an `owner.json` in its private temp directory the moment it makes it.  When
`dockercise run`, `worker` or `serve` starts, `sweep` looks at all of them:
what a dead owner of this machine made is removed, and the dead runs are
finished in their stores (run.json and the stages it left `running`:
`error`, reason `interrupted`), so that nothing shows them running forever.

Several processes sweep at once on a shared machine, and each only removes
what `ownership.judge` calls dead: never a live process's things, never
another machine's.  Everything is done twice over harmlessly (removing what
is gone, finishing a finished run).  A temp directory is only believed when
it is this user's own, not a link, and its record names the run its name
does; images are never believed about stores (a pulled image may carry any
label), only removed when dead.  A built image names its run by its tags
only: those of a run judged dead by its containers or temp directory go,
and so do those of a run whose owner tag (`ownership.owner_tag`) names a
dead owner, when the run left neither (a reboot emptied the temp folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.backend import ContainerBackend, Kind, Labelled
from runner.errors import ContainerFailed, DockerciseError
from runner.outcome import Status, iso, now
from runner.ownership import (
    LABEL_RUN,
    LABEL_STORE,
    Machine,
    Owner,
    Process,
    Verdict,
    digested,
    here,
    judge,
    process,
    tag_owner,
)
from runner.store import open_store
from runner.store.base import ResultStore, valid_part

__all__ = [
    "OWNER_FILE",
    "REASON",
    "RunRecord",
    "Swept",
    "finish_run",
    "read_record",
    "summary",
    "sweep",
    "sweep_here",
    "write_record",
]

OWNER_FILE = "owner.json"
REASON = "interrupted"
TEMP_PREFIX = "dockercise-"
_FINAL = {s.value for s in Status} - {Status.RUNNING.value, Status.WAITING.value}


@dataclass(frozen=True)
class RunRecord:
    """Whose a run is and where its results go: labels, and a temp directory's owner.json."""

    run_id: str
    store: str
    owner: Owner

    def labels(self) -> dict[str, str]:
        return {LABEL_RUN: self.run_id, LABEL_STORE: self.store, **self.owner.labels()}

    @classmethod
    def from_labels(cls, labels: Any) -> RunRecord | None:
        owner = Owner.from_labels(labels)
        run_id, store = labels.get(LABEL_RUN), labels.get(LABEL_STORE)
        if owner is None or not isinstance(run_id, str) or not valid_part(run_id):
            return None
        return cls(run_id, store if isinstance(store, str) else "", owner)


def write_record(private: Path, record: RunRecord) -> None:
    """Write the record into the run's private directory (made by this process, mode 0700)."""
    data = {"run": record.run_id, "store": record.store, "owner": record.owner.to_json()}
    (private / OWNER_FILE).write_text(json.dumps(data))


def read_record(directory: Path) -> RunRecord | None:
    """The record of a `dockercise-<runId>-*` temp directory, or None when it is not believable.

    Only a real directory of this user, whose record names the run of its
    own name: anyone may make a directory in /tmp, and a planted record must
    not steer the sweeper's writes to a store of someone's choosing.
    """
    try:
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return None
        fd = os.open(directory / OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with open(fd, "rb", closefd=False) as file:
            data = json.loads(file.read(64 * 1024))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(data, dict):
        return None
    run_id, store = data.get("run"), data.get("store")
    owner = Owner.from_json(data.get("owner"))
    if owner is None or not isinstance(run_id, str) or not isinstance(store, str):
        return None
    if not valid_part(run_id) or not directory.name.startswith(f"{TEMP_PREFIX}{run_id}-"):
        return None
    return RunRecord(run_id, store, owner)


@dataclass
class Swept:
    """What a sweep did, and what it could not do (one line each, for the log)."""

    removed: list[Labelled] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    """Run ids finished as `error` / `interrupted` in their stores."""
    problems: list[str] = field(default_factory=list)


def sweep(
    backend: ContainerBackend | None,
    open_store: Callable[[str], ResultStore],
    temp: Path,
    machine: Machine,
    lookup: Callable[[int], Process | None],
) -> Swept:
    """Remove what dead owners on `machine` left and finish their runs; never raises.

    `open_store(url)` opens a run's store (the caller's environment holds a
    remote store's credentials); `temp` is where runs make their private
    directories; `lookup` is `ownership.process`, or a test's.
    """
    swept = Swept()
    things: list[Labelled] = []
    if backend is not None:
        try:
            things = backend.labelled(LABEL_RUN)
        except ContainerFailed as e:
            swept.problems.append(str(e))
    dead_things = [t for t in things if _dead(Owner.from_labels(t.labels), machine, lookup)]
    runs: dict[tuple[str, str], list[Path]] = {}
    dead_runs: list[str] = []
    for thing in dead_things:
        record = RunRecord.from_labels(thing.labels)
        if record is not None and thing.kind is not Kind.IMAGE:
            dead_runs.append(record.run_id)
        if thing.kind is Kind.CONTAINER and record is not None and record.store:
            runs.setdefault((record.run_id, record.store), [])
    for directory in _temp_dirs(temp):
        record = read_record(directory)
        if record is not None and _dead(record.owner, machine, lookup):
            runs.setdefault((record.run_id, record.store), []).append(directory)
            dead_runs.append(record.run_id)
    for (run_id, url), directories in sorted(runs.items()):
        if _finish(open_store, url, run_id, swept):
            for directory in directories:
                shutil.rmtree(directory, ignore_errors=True)
                swept.directories.append(directory)
    if backend is not None:
        dead_runs += _dead_builders(backend, machine, lookup, swept)
        for thing in dead_things + _built_images(backend, dead_runs, swept):
            backend.discard(thing)
            swept.removed.append(thing)
    return swept


def _dead_builders(
    backend: ContainerBackend,
    machine: Machine,
    lookup: Callable[[int], Process | None],
    swept: Swept,
) -> list[str]:
    """The runs whose built images' owner tag names a dead owner on `machine` (judged as
    labels are, the machine's parts digested as the tag has them)."""
    try:
        tags = backend.built_tags()
    except ContainerFailed as e:
        swept.problems.append(str(e))
        return []
    here_digested = digested(machine)
    runs = []
    for tag in tags:
        named = tag_owner(tag.partition(":")[2])
        if named is None or not valid_part(named[0]):
            continue
        if judge(named[1], here_digested, lookup) is Verdict.DEAD:
            runs.append(named[0])
    return runs


def _built_images(backend: ContainerBackend, runs: Iterable[str], swept: Swept) -> list[Labelled]:
    """The images dead runs built: named by their run (their tags), since they name no owner
    (a label that changes every run would cost every build a step the cache never has)."""
    found: list[Labelled] = []
    for run_id in sorted(set(runs)):
        try:
            found += backend.built_images(run_id)
        except ContainerFailed as e:
            swept.problems.append(str(e))
    return found


def sweep_here(backend: ContainerBackend | None, environ: Mapping[str, str]) -> Swept:
    """`sweep` on this machine: its temp folder, /proc, and stores opened with `environ`."""
    return sweep(
        backend,
        lambda url: open_store(url, Path.cwd(), environ),
        Path(tempfile.gettempdir()),
        here(),
        process,
    )


def summary(swept: Swept) -> list[str]:
    """What was removed and finished, one line each; nothing when nothing was left."""
    lines = []
    if swept.finished:
        lines.append(
            f"finished {len(swept.finished)} run(s) of dead processes as error (interrupted): "
            + ", ".join(swept.finished)
        )
    if swept.removed or swept.directories:
        lines.append(
            f"removed what dead runs left: {len(swept.removed)} container(s), network(s) or"
            f" image(s), {len(swept.directories)} temp folder(s)"
        )
    return lines


def _dead(owner: Owner | None, machine: Machine, lookup: Callable[[int], Process | None]) -> bool:
    return owner is not None and judge(owner, machine, lookup) is Verdict.DEAD


def _temp_dirs(temp: Path) -> Iterable[Path]:
    try:
        with os.scandir(temp) as entries:
            return [
                Path(e.path)
                for e in entries
                if e.name.startswith(TEMP_PREFIX) and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


def _finish(open_store: Callable[[str], ResultStore], url: str, run_id: str, swept: Swept) -> bool:
    """Finish the run in its store; False (its directory is kept, to try again) on failure."""
    if not url:
        return True
    try:
        store = open_store(url)
        try:
            if finish_run(store, run_id, now()):
                swept.finished.append(run_id)
        finally:
            store.close()
    except (DockerciseError, OSError, ValueError) as e:
        swept.problems.append(f"cannot finish run {run_id} in {url}: {e}")
        return False
    return True


def finish_run(store: ResultStore, run_id: str, moment: datetime) -> bool:
    """Finish a run its dead owner left `running`: False when there is none, or it is finished.

    Stages left running (or waiting for a remote build) end as `error`,
    reason `interrupted`; stages that never started as `cancelled`, reason
    `interrupted`; finished ones keep their outcome.  The moment of death is
    not known: `finished` is `moment`, when it was found dead.
    """
    run = store.read_json(run_id, "run.json")
    if run is None or run.get("status") != Status.RUNNING.value:
        return False
    entries = run.get("stages")
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not valid_part(f"{name}.json"):
            continue
        stage = store.read_json(run_id, f"{name}.json")
        if stage is None:
            stage = {"name": name, "status": Status.CANCELLED.value, "reason": REASON}
            stage.update(finished=iso(moment), duration=None, attempts=0)
            store.write_json(run_id, f"{name}.json", stage)
        elif stage.get("status") not in _FINAL:
            stage.update(status=Status.ERROR.value, reason=REASON, finished=iso(moment))
            stage["duration"] = _seconds(stage.get("started"), moment)
            store.write_json(run_id, f"{name}.json", stage)
        entry["status"] = stage.get("status")
    run.update(status=Status.ERROR.value, reason=REASON, finished=iso(moment))
    store.write_json(run_id, "run.json", run)
    return True


def _seconds(started: object, moment: datetime) -> float | None:
    if not isinstance(started, str):
        return None
    with contextlib.suppress(ValueError, TypeError):  # TypeError: a time without its offset
        return (moment - datetime.fromisoformat(started)).total_seconds()
    return None
