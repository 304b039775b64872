"""`remote: owner/repo[@branch]` stages: waiting for another pipeline's green build (SPEC §2).

No container runs and no worker thread is held: the scheduler polls every
waiting stage each time it wakes.  What counts as green comes from a
RemoteWatcher (the bot answers from the `remote-build-complete` events it
received); a local run has none, so its remote stages fail at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from runner.model import Stage
from runner.outcome import StageResult, Status, now

__all__ = ["RemoteRefused", "RemoteWaits", "RemoteWatcher", "parse_remote"]

NO_WATCHER = "remote stages wait for the bot's remote-build-complete events; run them in bot builds"


class RemoteRefused(Exception):
    """This build may not wait for that pipeline (SPEC §10); the message is the stage's reason."""


class RemoteWatcher(Protocol):
    def green(self, pipeline: str, branch: str | None, after_run_id: str) -> str | None:
        """The run id of a green build of `pipeline` that started after `after_run_id`.

        `branch` None means the pipeline's default branch.  RemoteRefused fails the
        stage at once, with its message as the reason.
        """


def parse_remote(remote: str) -> tuple[str, str | None]:
    """`owner/repo@branch` -> ("owner/repo", "branch"); no `@`: None, the default branch."""
    pipeline, _, branch = remote.partition("@")
    return pipeline, branch or None


@dataclass
class RemoteWaits:
    run_id: str
    watcher: RemoteWatcher | None
    waiting: dict[str, tuple[Stage, StageResult, float]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.waiting)

    def add(self, stage: Stage, timeout: float) -> StageResult:
        result = StageResult(stage.name, Status.RUNNING, started=now(), attempts=1)
        self.waiting[stage.name] = (stage, result, time.monotonic() + timeout)
        return result

    def poll(self) -> list[StageResult]:
        """The waiting stages that are settled now: green, timed out, or impossible."""
        settled = []
        for name, (stage, result, deadline) in list(self.waiting.items()):
            assert stage.remote is not None
            pipeline, branch = parse_remote(stage.remote)
            green: str | None = None
            refused: str | None = None
            try:
                green = self.watcher.green(pipeline, branch, self.run_id) if self.watcher else None
            except RemoteRefused as e:
                refused = str(e)
            if refused is not None:
                result.status, result.reason = Status.FAILURE, refused
            elif green is not None:
                result.status, result.reason = (
                    Status.SUCCESS,
                    f"{stage.remote} went green (run {green})",
                )
            elif self.watcher is None:
                result.status, result.reason = Status.FAILURE, NO_WATCHER
            elif time.monotonic() >= deadline:
                result.status = Status.FAILURE
                result.reason = f"timeout waiting for a green build of {stage.remote}"
            else:
                continue
            result.finished = now()
            del self.waiting[name]
            settled.append(result)
        return settled

    def cancel(self, reason: str) -> list[StageResult]:
        cancelled = []
        for _, result, _ in self.waiting.values():
            result.status, result.reason, result.finished = (Status.CANCELLED, reason, now())
            cancelled.append(result)
        self.waiting.clear()
        return cancelled
