"""Acting on builds (SPEC §11): Re-run and Cancel, as the run page's buttons ask.

Both only write to the state, so any process may take the request: a re-run
is recorded like a delivery (an announcer reports and queues it), and a
cancel is a flag the worker running the build polls with its heartbeat
(`bot.builds`), whichever machine it is on. Who may ask is decided before
(write access on the repository, SPEC §11); this module trusts its caller.
"""

from __future__ import annotations

from dataclasses import replace

from bot.jobs import Job, JobKind, new_build_id
from bot.state import StateStore
from bot.state.base import Phase

__all__ = ["CANCELLED", "cancel", "rerun"]

CANCELLED = "cancelled"
"""The final word of a build cancelled by a user (its commit status' description)."""


def rerun(state: StateStore, build_id: str, sender: str | None = None) -> Job | None:
    """Record a new build of the same commit and ref, with the same trigger and trust
    (SPEC §10, §11); None when the build is unknown (or forgotten)."""
    found = state.get(build_id)
    if found is None:
        return None
    job = found.job
    again = replace(
        job,
        id=new_build_id(),
        delivery=None,
        kind=JobKind.SCHEDULE if job.kind is JobKind.WATCH else job.kind,
        targets=(),
        trigger={**job.trigger, "rerun_of": job.id, "sender": sender},
    )
    recorded = state.record(again)
    return recorded if isinstance(recorded, Job) else None


def cancel(state: StateStore, build_id: str, why: str = CANCELLED) -> Phase | None:
    """Ask for a queued or running build to be cancelled; its phase (None: unknown).

    A running build's containers stop within a few seconds of this (the worker
    polls each second); a queued one ends, reported cancelled, when a worker
    takes it, without running. A done build is left as it is.
    """
    return state.request_cancel(build_id, why)
