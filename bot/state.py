"""What the bot remembers across restarts: deliveries seen, and each build's progress.

`StateStore` is the contract; `State` keeps it in SQLite in the data directory
(stdlib `sqlite3`, one short transaction per call, writers taking turns on a
file lock), so the web process and the workers on one machine share it, and
`bot.state_redis.RedisState` keeps it in Redis, so workers on many machines
do.  `open_state` picks one from the settings.  A build is recorded (by the
web process) -> claimed and queued (by an announcer) -> running (one worker,
with a heartbeat) -> done; a running build whose heartbeat stops is found by
`stale()` and finished or re-queued.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.state_redis import RedisState

__all__ = ["Build", "Job", "Known", "State", "StateStore", "open_state"]

_SCHEMA = """
create table if not exists builds (
    id text primary key,
    delivery text,
    repo text not null,
    sha text not null,
    job text not null,
    status text not null default 'queued',
    run_id text,
    worker text,
    heartbeat real,
    attempts integer not null default 0,
    handed integer not null default 0,
    created real not null,
    state text,
    claimable real
);
create unique index if not exists builds_delivery on builds(delivery) where delivery is not null;
create index if not exists builds_unannounced on builds(created)
    where handed = 0 and status = 'queued';
create table if not exists pipelines (
    repo text primary key,
    clone_url text not null,
    installation_id integer,
    upstream text not null default '[]',
    cron text,
    watch text,
    scheduled real,
    watched text
);
create table if not exists remote_events (
    run_id text primary key,
    pipeline text not null,
    ref text not null,
    sha text not null,
    status text not null,
    url text not null,
    received real not null
);
create table if not exists leases (
    name text primary key,
    until real not null
);
"""


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
class Job:
    """One build to do: what to check out and how it was triggered."""

    id: str
    kind: str  # push | pull_request | upstream | schedule | watch | manual
    repo: str
    clone_url: str
    ref: str
    sha: str
    branch: str | None = None
    installation_id: int | None = None
    delivery: str | None = None
    fork: bool = False
    number: int | None = None
    changed: tuple[str, ...] | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    """Run only these stages (and what they need): a schedule's `watch` check."""

    def to_json(self) -> str:
        # Shallow on purpose: dataclasses.asdict deep-copies, and this runs in every webhook.
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        if data.get("changed") is not None:
            data["changed"] = tuple(data["changed"])
        data["targets"] = tuple(data.get("targets") or ())
        return cls(**data)


@dataclass(frozen=True)
class Build:
    job: Job
    status: str
    run_id: str | None
    worker: str | None
    heartbeat: float | None
    attempts: int
    state: str | None


ANNOUNCE_LEASE = 60.0
"""Seconds an announcer has to queue a build it claimed before another may claim it."""
PRUNE_BATCH = 1000
"""Builds `prune()` forgets at most in one call (the minutely chore calls it)."""


class StateStore(Protocol):
    """What the bot keeps between processes; `State` (SQLite) and `RedisState` both provide it.

    Each method is atomic on its own: two workers calling `start()` on one build
    get one True, two webhooks recording one delivery get one new build.
    """

    def record(self, job: Job) -> Job | str: ...
    def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Job]: ...
    def handed_over(self, build_id: str) -> None: ...
    def start(self, build_id: str, worker: str) -> bool: ...
    def beat(self, build_id: str) -> None: ...
    def set_run(self, build_id: str, run_id: str) -> None: ...
    def finish(self, build_id: str, state: str) -> None: ...
    def requeue(self, build_id: str) -> None: ...
    def stale(self, older_than: float) -> list[Build]: ...
    def take_stale(self, build_id: str, older_than: float) -> bool: ...
    def running(self) -> list[Build]: ...
    def get(self, build_id: str) -> Build | None: ...
    def recent(self, limit: int = 20) -> list[Build]: ...
    def remember(
        self,
        repo: str,
        clone_url: str,
        installation_id: int | None,
        upstream: tuple[str, ...],
        cron: str | None,
        watch: str | None,
    ) -> None: ...
    def known(self) -> list[Known]: ...
    def subscribers(self, upstream: str) -> list[Known]: ...
    def scheduled(self, repo: str, when: float) -> None: ...
    def watched(self, repo: str, output: str) -> str | None: ...
    def receive(
        self, run_id: str, pipeline: str, ref: str, sha: str, status: str, url: str
    ) -> bool: ...
    def green_since(self, pipeline: str, branch: str | None, run_id_after: str) -> str | None: ...
    def lease(self, name: str, seconds: float) -> bool: ...
    def prune(self, older_than: float) -> int: ...


def open_state(settings: Settings) -> State | RedisState:
    """Redis when `DOCKERCISE_REDIS_URL` is set (workers on many machines share it), else SQLite."""
    if settings.redis_url:
        from bot.state_redis import RedisState

        return RedisState(settings.redis_url)
    return State(settings.data_dir / "state.db")


def _close_all(descriptors: list[int]) -> None:
    for fd in descriptors:
        os.close(fd)


class State:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._local = threading.local()
        self._turns: list[int] = []  # every thread's descriptor of the lock file
        weakref.finalize(self, _close_all, self._turns)
        db = sqlite3.connect(path, timeout=30)
        try:
            db.execute("pragma journal_mode=wal")  # readers never wait for the writer
            columns = {row[1] for row in db.execute("pragma table_info(builds)")}
            if columns and "claimable" not in columns:  # a data directory of an earlier version
                db.execute("alter table builds add column claimable real")
            db.executescript(_SCHEMA)
        finally:
            db.close()

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened once: a webhook should not pay for opening one.

        synchronous=NORMAL with WAL survives any crash of the process (what the
        bot must survive); only a power cut can lose the last transactions.
        """
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("pragma synchronous=normal")
            self._local.db = db
            turn = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._turns.append(turn)  # this thread's, like `db`
            self._local.turn = turn
        return db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One transaction; the writers of every process take turns on a file lock.

        Without the lock, a writer that finds the database busy sleeps in
        SQLite's busy handler (a millisecond at first, longer each time) even
        when the holder is done microseconds later: under a burst of webhooks
        that left a third of the CPU idle. A flock() waiter wakes the moment the
        holder lets go. SQLite's own locking still guards the data.
        """
        db = self._connection()
        fcntl.flock(self._local.turn, fcntl.LOCK_EX)
        try:
            db.execute("begin immediate")
            try:
                yield db
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise
        finally:
            fcntl.flock(self._local.turn, fcntl.LOCK_UN)

    def record(self, job: Job) -> Job | str:
        """Remember a new build: the build to queue, or why there is none.

        A redelivered event whose build started already is a duplicate; one
        whose build never started is that build again (its task is idempotent):
        the caller queues what this returns, not its own copy.
        """
        with self._db() as db:
            inserted = db.execute(
                "insert into builds (id, delivery, repo, sha, job, created)"
                " values (?, ?, ?, ?, ?, ?)"
                " on conflict (delivery) where delivery is not null do nothing",
                (job.id, job.delivery, job.repo, job.sha, job.to_json(), time.time()),
            )
            if inserted.rowcount == 1:
                return job
            row = db.execute(
                "select status, job from builds where delivery = ?", (job.delivery,)
            ).fetchone()
        return Job.from_json(row[1]) if row[0] == "queued" else "duplicate delivery"

    def handed_over(self, build_id: str) -> None:
        """The build's task is on the queue (after the `pending` status, so never before it)."""
        with self._db() as db:
            db.execute("update builds set handed = 1 where id = ?", (build_id,))

    def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Job]:
        """Take up to `limit` recorded builds that are not on the queue yet, oldest first.

        Each is offered again `lease` seconds later unless handed over by then
        (its announcer died). Polled often: when there is nothing to claim, this
        is one read on a small index, and no write.
        """
        now = time.time()
        claimable = self._connection().execute(
            "select 1 from builds where handed = 0 and status = 'queued'"
            " and coalesce(claimable, 0) <= ? limit 1",
            (now,),
        )
        if not claimable.fetchall():  # all: the statement ends, and its read snapshot with it
            return []
        with self._db() as db:
            rows = db.execute(
                "update builds set claimable = ? where id in (select id from builds"
                " where handed = 0 and status = 'queued' and coalesce(claimable, 0) <= ?"
                " order by created limit ?) returning job",
                (now + lease, now, limit),
            ).fetchall()
        return [Job.from_json(r[0]) for r in rows]

    def start(self, build_id: str, worker: str) -> bool:
        """Claim a queued build for this worker; False when another has it or it is done."""
        with self._db() as db:
            cursor = db.execute(
                "update builds set status = 'running', worker = ?, heartbeat = ?,"
                " attempts = attempts + 1 where id = ? and status = 'queued'",
                (worker, time.time(), build_id),
            )
            return cursor.rowcount == 1

    def beat(self, build_id: str) -> None:
        with self._db() as db:
            db.execute("update builds set heartbeat = ? where id = ?", (time.time(), build_id))

    def set_run(self, build_id: str, run_id: str) -> None:
        with self._db() as db:
            db.execute("update builds set run_id = ? where id = ?", (run_id, build_id))

    def finish(self, build_id: str, state: str) -> None:
        with self._db() as db:
            db.execute(
                "update builds set status = 'done', state = ? where id = ?", (state, build_id)
            )

    def requeue(self, build_id: str) -> None:
        with self._db() as db:
            db.execute(
                "update builds set status = 'queued', worker = null, run_id = null where id = ?",
                (build_id,),
            )

    def _builds(self, where: str, args: tuple[Any, ...]) -> list[Build]:
        with self._db() as db:
            rows = db.execute(
                "select job, status, run_id, worker, heartbeat, attempts, state from builds "
                + where,
                args,
            ).fetchall()
        return [Build(Job.from_json(r[0]), *r[1:]) for r in rows]

    def stale(self, older_than: float) -> list[Build]:
        """Running builds whose worker has not said it is alive for `older_than` seconds."""
        return self._builds(
            "where status = 'running' and heartbeat < ?", (time.time() - older_than,)
        )

    def take_stale(self, build_id: str, older_than: float) -> bool:
        """Take a dead build for settling: True for one caller; it beats the heartbeat now,
        so the other workers' reapers, running at the same moment, leave it alone."""
        now = time.time()
        with self._db() as db:
            cursor = db.execute(
                "update builds set heartbeat = ? where id = ? and status = 'running'"
                " and heartbeat < ?",
                (now, build_id, now - older_than),
            )
            return cursor.rowcount == 1

    def running(self) -> list[Build]:
        """Every build a worker is on now (or was, if it died), oldest first."""
        return self._builds("where status = 'running' order by created", ())

    def get(self, build_id: str) -> Build | None:
        found = self._builds("where id = ?", (build_id,))
        return found[0] if found else None

    def recent(self, limit: int = 20) -> list[Build]:
        return self._builds("order by created desc limit ?", (limit,))

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
        with self._db() as db:
            db.execute(
                "insert into pipelines (repo, clone_url, installation_id, upstream, cron, watch)"
                " values (?, ?, ?, ?, ?, ?) on conflict(repo) do update set"
                " clone_url = excluded.clone_url, installation_id = excluded.installation_id,"
                " upstream = excluded.upstream, cron = excluded.cron, watch = excluded.watch",
                (repo, clone_url, installation_id, json.dumps(list(upstream)), cron, watch),
            )

    def known(self) -> list[Known]:
        with self._db() as db:
            rows = db.execute(
                "select repo, clone_url, installation_id, upstream, cron, watch, scheduled,"
                " watched from pipelines order by repo"
            ).fetchall()
        return [Known(r[0], r[1], r[2], tuple(json.loads(r[3])), *r[4:]) for r in rows]

    def subscribers(self, upstream: str) -> list[Known]:
        return [k for k in self.known() if upstream.lower() in (u.lower() for u in k.upstream)]

    def scheduled(self, repo: str, when: float) -> None:
        with self._db() as db:
            db.execute("update pipelines set scheduled = ? where repo = ?", (when, repo))

    def watched(self, repo: str, output: str) -> str | None:
        """Store the watch stage's output; return the previous one."""
        with self._db() as db:
            row = db.execute("select watched from pipelines where repo = ?", (repo,)).fetchone()
            db.execute("update pipelines set watched = ? where repo = ?", (output, repo))
        return row[0] if row else None

    # --- remote-build-complete events received ----------------------------------

    def receive(
        self, run_id: str, pipeline: str, ref: str, sha: str, status: str, url: str
    ) -> bool:
        """Record an event; False when this run's event was received already."""
        with self._db() as db:
            cursor = db.execute(
                "insert or ignore into remote_events"
                " (run_id, pipeline, ref, sha, status, url, received) values (?, ?, ?, ?, ?, ?, ?)",
                (run_id, pipeline.lower(), ref, sha, status, url, time.time()),
            )
            return cursor.rowcount == 1

    def green_since(self, pipeline: str, branch: str | None, run_id_after: str) -> str | None:
        """The run id of a green build of `pipeline` that started after `run_id_after`.

        Run ids sort by start time, so "started after" is a string comparison.
        """
        query = (
            "select run_id from remote_events where pipeline = ? and status = 'success'"
            " and run_id > ?"
        )
        args: list[Any] = [pipeline.lower(), run_id_after]
        if branch is not None:
            query += " and ref = ?"
            args.append(f"refs/heads/{branch}")
        with self._db() as db:
            row = db.execute(query + " order by run_id limit 1", args).fetchone()
        return row[0] if row else None

    # --- chores one worker of many does (the minutely reap and schedule tick) ----

    def prune(self, older_than: float) -> int:
        """Forget finished builds and received events older than `older_than` seconds.

        Without it the state grows with every push. Up to PRUNE_BATCH builds a
        call, so a long backlog does not hold the write lock for long; the
        number of builds forgotten.
        """
        cutoff = time.time() - older_than
        with self._db() as db:
            cursor = db.execute(
                "delete from builds where id in (select id from builds"
                " where status = 'done' and created < ? limit ?)",
                (cutoff, PRUNE_BATCH),
            )
            db.execute("delete from remote_events where received < ?", (cutoff,))
            return cursor.rowcount

    def lease(self, name: str, seconds: float) -> bool:
        """Take the lease on chore `name` for `seconds`; False while another holder's runs.

        Every consumer enqueues the minutely chore; the lease lets one of them do it.
        """
        now = time.time()
        with self._db() as db:
            cursor = db.execute(
                "insert into leases (name, until) values (?, ?) on conflict(name)"
                " do update set until = excluded.until where leases.until <= ?",
                (name, now + seconds, now),
            )
            return cursor.rowcount == 1
