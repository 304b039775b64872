"""The bot's state in SQLite, in the data directory: the web process and the workers of one
machine share it (`bot.state.base.StateStore` is the contract and documents each method).

stdlib `sqlite3` in WAL mode, one short transaction per call, the writers of
every process taking turns on a file lock beside the database.
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
from pathlib import Path
from typing import Any

from bot.jobs import Job
from bot.state.base import (
    ANNOUNCE_LEASE,
    PRUNE_BATCH,
    WAITING,
    WAITING_LIMIT,
    Build,
    Claim,
    Known,
    Phase,
    StateStore,
    approved_id,
    waited_id,
)

__all__ = ["SqliteState"]

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
    claimable real,
    announces integer not null default 0,
    cancel text,
    number integer
);
create unique index if not exists builds_delivery on builds(delivery) where delivery is not null;
create index if not exists builds_commit on builds(repo, sha);
create index if not exists builds_unfinished on builds(repo, created) where status != 'done';
create index if not exists builds_waiting on builds(repo, number, created)
    where state = 'waiting';
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
create table if not exists sessions (
    key text primary key,
    data text not null,
    expires real not null
);
create index if not exists sessions_expires on sessions(expires);
create table if not exists privacy (
    repo text primary key,
    private integer not null
);
create table if not exists leases (
    name text primary key,
    until real not null
);
"""


def _waits(db: sqlite3.Connection, build_id: str, twin: bool) -> bool:
    """Whether the build is `waiting` (inside a transaction); with `twin`, and not approved."""
    row = db.execute(
        "select (select 1 from builds where id = ? and state = ?),"
        " (select 1 from builds where id = ?)",
        (build_id, WAITING, approved_id(build_id)),
    ).fetchone()
    return row[0] is not None and not (twin and row[1] is not None)


def _close_all(descriptors: list[int], connections: list[sqlite3.Connection]) -> None:
    for fd in descriptors:
        os.close(fd)
    descriptors.clear()
    for db in connections:
        db.close()
    connections.clear()


class SqliteState(StateStore):
    """The state in one SQLite file; each thread opens its own connection, once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._local = threading.local()
        self._turns: list[int] = []  # every thread's descriptor of the lock file
        self._connections: list[sqlite3.Connection] = []  # every thread's connection
        self._release = weakref.finalize(self, _close_all, self._turns, self._connections)
        # Processes and threads starting together (a worker beside the web side,
        # on a fresh data directory) would race to switch the journal mode and
        # to upgrade the schema; SQLite answers "database is locked" at once to
        # the loser of the journal switch, whatever the timeout. One at a time.
        turn = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        db = sqlite3.connect(path, timeout=30)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            db.execute("pragma journal_mode=wal")  # readers never wait for the writer
            columns = {row[1] for row in db.execute("pragma table_info(builds)")}
            if columns and "claimable" not in columns:  # a data directory of an earlier version
                db.execute("alter table builds add column claimable real")
            if columns and "announces" not in columns:
                db.execute("alter table builds add column announces integer not null default 0")
            if columns and "cancel" not in columns:
                db.execute("alter table builds add column cancel text")
            if columns and "number" not in columns:  # waiting builds are found by it
                db.execute("alter table builds add column number integer")
                db.execute(
                    "update builds set number = json_extract(job, '$.number')"
                    " where state = 'waiting'"
                )
            db.executescript(_SCHEMA)
        finally:
            db.close()
            os.close(turn)  # releases the lock

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened once: a webhook should not pay for opening one.

        synchronous=NORMAL with WAL survives any crash of the process (what the
        bot must survive); only a power cut can lose the last transactions.
        """
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # Used by this thread alone; close() may come from another.
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.execute("pragma synchronous=normal")
            self._local.db = db
            self._connections.append(db)
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

    def close(self) -> None:
        self._release()

    # --- builds -----------------------------------------------------------------

    def record(self, job: Job) -> Job | str:
        waited = None if job.approved_by is None else waited_id(job.id)
        with self._db() as db:
            if waited is not None and not _waits(db, waited, twin=False):
                return f"build {waited} no longer waits"
            inserted = db.execute(
                "insert into builds (id, delivery, repo, sha, job, created, number)"
                " values (?, ?, ?, ?, ?, ?, ?)"
                " on conflict (delivery) where delivery is not null do nothing",
                (job.id, job.delivery, job.repo, job.sha, job.to_json(), time.time(), job.number),
            )
            if inserted.rowcount == 1:
                return job
            row = db.execute(
                "select status, job from builds where delivery = ?", (job.delivery,)
            ).fetchone()
        return Job.from_json(row[1]) if Phase(row[0]) is Phase.QUEUED else "duplicate delivery"

    def handed_over(self, build_id: str) -> None:
        with self._db() as db:
            db.execute("update builds set handed = 1 where id = ?", (build_id,))

    def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Claim]:
        now = time.time()
        # Nothing to claim (most polls) costs one read on a small index, and no write.
        claimable = self._connection().execute(
            "select 1 from builds where handed = 0 and status = 'queued'"
            " and coalesce(claimable, 0) <= ? limit 1",
            (now,),
        )
        if not claimable.fetchall():  # all: the statement ends, and its read snapshot with it
            return []
        with self._db() as db:
            rows = db.execute(
                "update builds set claimable = ?, announces = announces + 1 where id in"
                " (select id from builds where handed = 0 and status = 'queued'"
                " and coalesce(claimable, 0) <= ? order by created limit ?)"
                " returning job, announces, created",
                (now + lease, now, limit),
            ).fetchall()
        rows.sort(key=lambda r: r[2])  # `returning` keeps no order
        return [Claim(Job.from_json(r[0]), r[1]) for r in rows]

    def start(self, build_id: str, worker: str) -> bool:
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
                "select job, status, run_id, worker, heartbeat, attempts, state, created"
                " from builds " + where,
                args,
            ).fetchall()
        return [Build(Job.from_json(r[0]), Phase(r[1]), *r[2:]) for r in rows]

    def stale(self, older_than: float) -> list[Build]:
        return self._builds(
            "where status = 'running' and heartbeat < ?", (time.time() - older_than,)
        )

    def take_stale(self, build_id: str, older_than: float) -> bool:
        now = time.time()
        with self._db() as db:
            cursor = db.execute(
                "update builds set heartbeat = ? where id = ? and status = 'running'"
                " and heartbeat < ?",
                (now, build_id, now - older_than),
            )
            return cursor.rowcount == 1

    def running(self) -> list[Build]:
        return self._builds("where status = 'running' order by created", ())

    def get(self, build_id: str) -> Build | None:
        found = self._builds("where id = ?", (build_id,))
        return found[0] if found else None

    def recent(self, limit: int = 20) -> list[Build]:
        return self._builds("order by created desc limit ?", (limit,))

    # --- acting on builds: cancel, supersede, re-run (SPEC §11, §12) -------------

    def request_cancel(self, build_id: str, why: str) -> Phase | None:
        with self._db() as db:
            row = db.execute("select status from builds where id = ?", (build_id,)).fetchone()
            if row is None:
                return None
            if Phase(row[0]) is not Phase.DONE:
                db.execute(
                    "update builds set cancel = coalesce(cancel, ?) where id = ?", (why, build_id)
                )
        return Phase(row[0])

    def cancel_requested(self, build_id: str) -> str | None:
        row = (
            self._connection()
            .execute("select cancel from builds where id = ?", (build_id,))
            .fetchone()
        )
        return None if row is None else row[0]

    def unfinished(self, repo: str) -> list[Build]:
        return self._builds("where repo = ? and status != 'done' order by created", (repo,))

    def builds_of(self, repo: str, sha: str) -> list[Build]:
        return self._builds("where repo = ? and sha = ? order by created desc", (repo, sha))

    # --- fork builds waiting for approval (SPEC §11) -----------------------------

    def waiting(self, repo: str, number: int) -> list[Build]:
        # The partial index `builds_waiting` holds waiting builds only (its condition is
        # spelled as in the schema, so SQLite uses it); each twin is a primary-key probe.
        return self._builds(
            "where repo = ? and number = ? and state = 'waiting' and not exists"
            " (select 1 from builds twin where twin.id = builds.id || ?)"
            " order by created limit ?",
            (repo, number, approved_id(""), WAITING_LIMIT),
        )

    def end_waiting(self, build_id: str, state: str) -> bool:
        with self._db() as db:
            if not _waits(db, build_id, twin=True):
                return False
            db.execute("update builds set state = ? where id = ?", (state, build_id))
            return True

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

    def scheduled(self, repo: str, when: float) -> None:
        with self._db() as db:
            db.execute("update pipelines set scheduled = ? where repo = ?", (when, repo))

    def watched(self, repo: str, output: str) -> str | None:
        with self._db() as db:
            row = db.execute("select watched from pipelines where repo = ?", (repo,)).fetchone()
            db.execute("update pipelines set watched = ? where repo = ?", (output, repo))
        return row[0] if row else None

    # --- remote-build-complete events received ----------------------------------

    def receive(
        self, run_id: str, pipeline: str, ref: str, sha: str, status: str, url: str
    ) -> bool:
        with self._db() as db:
            cursor = db.execute(
                "insert or ignore into remote_events"
                " (run_id, pipeline, ref, sha, status, url, received) values (?, ?, ?, ?, ?, ?, ?)",
                (run_id, pipeline.lower(), ref, sha, status, url, time.time()),
            )
            return cursor.rowcount == 1

    def green_since(self, pipeline: str, branch: str | None, run_id_after: str) -> str | None:
        # Run ids sort by start time, so "started after" is a string comparison.
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

    # --- the results site: sign-in sessions, repositories' privacy -------------

    def put_session(self, key: str, data: str, ttl: float) -> None:
        with self._db() as db:
            db.execute(
                "insert into sessions (key, data, expires) values (?, ?, ?) on conflict(key)"
                " do update set data = excluded.data, expires = excluded.expires",
                (key, data, time.time() + ttl),
            )

    def get_session(self, key: str) -> str | None:
        # A plain read: no writer's turn is needed for one row.
        row = (
            self._connection()
            .execute("select data from sessions where key = ? and expires > ?", (key, time.time()))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def drop_session(self, key: str) -> None:
        with self._db() as db:
            db.execute("delete from sessions where key = ?", (key,))

    def set_private(self, repo: str, private: bool) -> None:
        with self._db() as db:
            db.execute(
                "insert into privacy (repo, private) values (?, ?) on conflict(repo)"
                " do update set private = excluded.private",
                (repo.lower(), int(private)),
            )

    def is_private(self, repo: str) -> bool | None:
        row = (
            self._connection()
            .execute("select private from privacy where repo = ?", (repo.lower(),))
            .fetchone()
        )
        return None if row is None else bool(row[0])

    # --- chores one worker of many does (the minutely reap and schedule tick) ----

    def prune(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        with self._db() as db:
            cursor = db.execute(
                "delete from builds where id in (select id from builds"
                " where status = 'done' and created < ? limit ?)",
                (cutoff, PRUNE_BATCH),
            )
            db.execute("delete from remote_events where received < ?", (cutoff,))
            db.execute("delete from sessions where expires <= ?", (time.time(),))
            return cursor.rowcount

    def lease(self, name: str, seconds: float) -> bool:
        now = time.time()
        with self._db() as db:
            cursor = db.execute(
                "insert into leases (name, until) values (?, ?) on conflict(name)"
                " do update set until = excluded.until where leases.until <= ?",
                (name, now + seconds, now),
            )
            return cursor.rowcount == 1
