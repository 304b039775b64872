"""Build outcome -> GitHub commit status payloads (pure; the one place status text is made)."""

from __future__ import annotations

from dataclasses import dataclass

from runner.outcome import RunResult, StageResult, Status

__all__ = ["CONTEXT", "CommitStatus", "errored", "fit", "for_run", "for_stage", "pending"]

CONTEXT = "dockercise"
MAX_DESCRIPTION = 139  # GitHub refuses 140 characters or more


@dataclass(frozen=True)
class CommitStatus:
    state: str  # pending | success | failure | error
    description: str
    context: str = CONTEXT
    target_url: str | None = None


def fit(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _why(result: StageResult) -> str:
    return f"{result.name} ({result.reason})" if result.reason else result.name


def pending(target_url: str | None = None, what: str = "build queued") -> CommitStatus:
    return CommitStatus("pending", fit(what), target_url=target_url)


def errored(why: str, target_url: str | None = None) -> CommitStatus:
    return CommitStatus("error", fit(f"build error: {why}"), target_url=target_url)


def for_run(run: RunResult, target_url: str | None) -> CommitStatus:
    """`4 of 5 stages passed; failed: test (exit 1)`, with the run's final state."""
    results = list(run.stages.values())
    passed = sum(r.status is Status.SUCCESS for r in results)
    text = f"{passed} of {len(results)} stages passed"
    failed = [r for r in results if r.status is Status.FAILURE]
    broken = [r for r in results if r.status is Status.ERROR]
    if failed:
        text += "; failed: " + ", ".join(_why(r) for r in failed)
    if broken:
        text += "; error: " + ", ".join(_why(r) for r in broken)
    if run.reason is not None:  # stopped by a limit (`build time limit`), whatever else failed
        text += f"; cancelled ({run.reason})"
    if broken:
        state = "error"
    elif failed:
        state = "failure"
    elif run.status is Status.CANCELLED:
        state, text = "error", text if run.reason is not None else text + "; cancelled"
    else:
        state = "success"
    return CommitStatus(state, fit(text), target_url=target_url)


def for_stage(result: StageResult, target_url: str | None) -> CommitStatus:
    """One stage's own status (`meta.statuses: stages`), context `dockercise/<stage>`."""
    state = {
        Status.SUCCESS: "success",
        Status.FAILURE: "failure",
        Status.ERROR: "error",
        Status.SKIPPED: "success",
        Status.CANCELLED: "error",
    }.get(result.status, "pending")
    text = result.status.value + (f": {result.reason}" if result.reason else "")
    return CommitStatus(state, fit(text), f"{CONTEXT}/{result.name}", target_url)
