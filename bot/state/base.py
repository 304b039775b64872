"""The state contract: what the bot remembers across restarts, whichever store keeps it.

A build is recorded (by the web process) -> claimed and queued (by an
announcer) -> running (one worker, with a heartbeat) -> done; a running build
whose heartbeat stops is found by `stale()` and finished or re-queued.  The
stores (`bot.state.sqlite_store`, `bot.state.redis_store`) subclass
`StateStore`, so each method is documented here once and mypy checks that
every store has all of them; this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.jobs import Job

__all__ = [
    "ANNOUNCE_LEASE",
    "PRUNE_BATCH",
    "WAITING",
    "WAITING_LIMIT",
    "Build",
    "Claim",
    "Known",
    "Phase",
    "StateStore",
    "approved_id",
    "waited_id",
]

ANNOUNCE_LEASE = 60.0
"""Seconds an announcer has to queue a build it claimed before another may claim it."""
PRUNE_BATCH = 1000
"""Builds `prune()` forgets at most in one call (the minutely chore calls it)."""
WAITING = "waiting"
"""The final word on a fork's build that waits for a writer's Approve (`bot.approval`);
the stores index builds finished with it by pull request (`waiting()`)."""
WAITING_LIMIT = 50
"""Waiting builds `waiting()` returns at most: each newer commit ends the older ones, so a
pull request has one at a time but for races; the bound keeps a lookup cheap whatever."""
_APPROVED = "-approved"


def approved_id(build_id: str) -> str:
    """The id of the build an Approve of `build_id` makes: one per waiting build, whoever
    presses it and however often, so two writers approving at once start one build."""
    return f"{build_id}{_APPROVED}"


def waited_id(build_id: str) -> str | None:
    """The waiting build `build_id` is the approved twin of, by its id alone (None: none)."""
    return build_id.removesuffix(_APPROVED) if build_id.endswith(_APPROVED) else None


class Phase(StrEnum):
    """Where a build is in its life; the value is what the stores keep."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class Known:
    """A repository whose pipeline the bot has loaded: what it subscribes to, when it runs."""

    repo: str
    clone_url: str
    installation_id: int | None
    upstream: tuple[str, ...]
    cron: str | None
    watch: str | None
    scheduled: float | None
    watched: str | None


@dataclass(frozen=True)
class Claim:
    """A recorded build an announcer has taken, and how many times one has (this one too).

    An announcer that dies on a build (a hostile repository that brings its
    process down, say) leaves it to the next one after the lease; the count
    lets the next one give up on it rather than die in turn, forever.
    """

    job: Job
    tries: int


@dataclass(frozen=True)
class Build:
    """A recorded build as the state has it; `state` is its final word once `done`."""

    job: Job
    status: Phase
    run_id: str | None
    worker: str | None
    heartbeat: float | None
    attempts: int
    state: str | None
    created: float | None = None
    """When it was recorded (the store's clock): superseding compares waiting and queued
    builds by it."""


class StateStore(Protocol):
    """What the bot keeps between processes: builds, known pipelines, events received.

    Each method is atomic on its own: two workers calling `start()` on one build
    get one True, two webhooks recording one delivery get one new build.
    """

    # --- builds -----------------------------------------------------------------

    def record(self, job: Job) -> Job | str:
        """Remember a new build: the build to queue, or why there is none.

        A redelivered event whose build started already is a duplicate; one
        whose build never started is that build again (its task is idempotent):
        the caller queues what this returns, not its own copy. An approved build
        (`approved_id`, `job.approved_by` set) is refused once the build it
        approves no longer waits (superseded).
        """
        ...

    def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Claim]:
        """Take up to `limit` recorded builds that are not on the queue yet, oldest first.

        Each is offered again `lease` seconds later unless handed over (or
        finished) by then: its announcer died. Each claim is counted. Polled
        often: when there is nothing to claim, this costs one small read and no
        write.
        """
        ...

    def handed_over(self, build_id: str) -> None:
        """The build's task is on the queue (after the `pending` status, so never before it)."""
        ...

    def start(self, build_id: str, worker: str) -> bool:
        """Claim a queued build for this worker; False when another has it or it is done."""
        ...

    def beat(self, build_id: str) -> None:
        """The worker on this build is alive (now, by the store's clock)."""
        ...

    def set_run(self, build_id: str, run_id: str) -> None:
        """The build's run has started under `run_id` (what the reaper cleans up after)."""
        ...

    def finish(self, build_id: str, state: str) -> None:
        """The build is done; `state` is its final word (a commit state, `none`, `filtered`...)."""
        ...

    def requeue(self, build_id: str) -> None:
        """Make a running build queued again (its worker died), forgetting worker and run."""
        ...

    def stale(self, older_than: float) -> list[Build]:
        """Running builds whose worker has not said it is alive for `older_than` seconds."""
        ...

    def take_stale(self, build_id: str, older_than: float) -> bool:
        """Take a dead build for settling: True for one caller; it beats the heartbeat now,
        so the other workers' reapers, running at the same moment, leave it alone."""
        ...

    def running(self) -> list[Build]:
        """Every build a worker is on now (or was, if it died), oldest first."""
        ...

    def get(self, build_id: str) -> Build | None:
        """The build, or None if it was never recorded (or is forgotten)."""
        ...

    def recent(self, limit: int = 20) -> list[Build]:
        """The `limit` newest builds, newest first."""
        ...

    # --- acting on builds: cancel, supersede, re-run (SPEC §11, §12) -------------

    def request_cancel(self, build_id: str, why: str) -> Phase | None:
        """Ask for the build to be cancelled (`why`: `cancelled`, `cancelled: superseded`).

        Only recorded: the worker that runs the build polls `cancel_requested`
        with its heartbeat and stops it, whichever process asked; a queued build
        is ended by the worker that starts it, before anything runs. The build's
        phase (a done build is left alone), or None for an unknown one.
        """
        ...

    def cancel_requested(self, build_id: str) -> str | None:
        """Why the build must be cancelled, or None (one small read: polled each second)."""
        ...

    def unfinished(self, repo: str) -> list[Build]:
        """The repository's queued and running builds, oldest first (superseding, SPEC §11)."""
        ...

    def builds_of(self, repo: str, sha: str) -> list[Build]:
        """The builds of one commit of a repository still remembered, newest first (re-runs)."""
        ...

    # --- fork builds waiting for approval (SPEC §11) -----------------------------

    def waiting(self, repo: str, number: int) -> list[Build]:
        """Pull request `number`'s builds finished `WAITING` and not approved, oldest first,
        at most WAITING_LIMIT (superseding, SPEC §11).

        Indexed by repository and pull request: the cost does not grow with
        the repository's other pull requests, however many an outsider opens.
        """
        ...

    def end_waiting(self, build_id: str, state: str) -> bool:
        """Give a waiting build the final word `state` (`cancelled: superseded`) unless it is
        no longer waiting or its approved twin was recorded; True when it was ended.

        Atomic with `record()` of the approved twin, which is refused once the
        waiting build has ended: an Approve and a newer commit racing leave
        either a running approved build or a superseded waiting one, never both.
        """
        ...

    # --- pipelines the bot knows (upstream subscriptions, schedules) ------------

    def remember(
        self,
        repo: str,
        clone_url: str,
        installation_id: int | None,
        upstream: tuple[str, ...],
        cron: str | None,
        watch: str | None,
    ) -> None:
        """Learn a repository's triggers each time its pipeline is loaded (kept across restarts)."""
        ...

    def known(self) -> list[Known]:
        """Every repository remembered, by name."""
        ...

    def subscribers(self, upstream: str) -> list[Known]:
        """The known pipelines whose `meta.on.upstream` names `upstream` (in any case)."""
        wanted = upstream.lower()
        return [k for k in self.known() if wanted in (u.lower() for u in k.upstream)]

    def scheduled(self, repo: str, when: float) -> None:
        """The repository's schedule fired at `when` (so a restart does not fire it again)."""
        ...

    def watched(self, repo: str, output: str) -> str | None:
        """Store the watch stage's output; return the previous one."""
        ...

    # --- remote-build-complete events received ----------------------------------

    def receive(
        self, run_id: str, pipeline: str, ref: str, sha: str, status: str, url: str
    ) -> bool:
        """Record an event; False when this run's event was received already."""
        ...

    def green_since(self, pipeline: str, branch: str | None, run_id_after: str) -> str | None:
        """The run id of a green build of `pipeline` that started after `run_id_after`.

        Run ids sort by start time, so "started after" is "sorts after".
        """
        ...

    # --- the results site: sign-in sessions, repositories' privacy (SPEC §11) ---

    def put_session(self, key: str, data: str, ttl: float) -> None:
        """Keep a signed-in (or signing-in) session's data for `ttl` seconds under `key`.

        `key` is a digest of the cookie's random id, never the id itself: the state
        read by someone else names no live session.
        """
        ...

    def get_session(self, key: str) -> str | None:
        """The session's data, or None when it never was, has ended or has expired."""
        ...

    def drop_session(self, key: str) -> None:
        """End the session now (sign-out, sign-in renewing its id, a failed token refresh)."""
        ...

    def set_private(self, repo: str, private: bool) -> None:
        """What the latest delivery of `repo` (any case) said of its privacy: the latest wins."""
        ...

    def is_private(self, repo: str) -> bool | None:
        """Whether `repo` (any case) is private; None when no delivery ever said (private)."""
        ...

    # --- chores one worker of many does (the minutely reap and schedule tick) ----

    def lease(self, name: str, seconds: float) -> bool:
        """Take the lease on chore `name` for `seconds`; False while another holder's runs.

        Every consumer enqueues the minutely chore; the lease lets one of them do it.
        """
        ...

    def prune(self, older_than: float) -> int:
        """Forget finished builds and received events older than `older_than` seconds.

        Without it the state grows with every push. Up to PRUNE_BATCH builds a
        call, so a long backlog does not hold the store for long; the number of
        builds forgotten.
        """
        ...

    def close(self) -> None:
        """Let go of connections and files; the store is not used after this."""
        ...
