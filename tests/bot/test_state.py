"""The state contract (`bot.state.base.StateStore`), checked on both stores: SQLite, a real Redis.

The same test body runs against each, so a worker cannot tell which one it has.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.approval import approved
from bot.jobs import Job, JobKind
from bot.settings import Settings
from bot.state import StateStore, open_state
from bot.state.base import WAITING, WAITING_LIMIT, Phase, approved_id
from bot.state.redis_store import RedisState
from bot.state.sqlite_store import SqliteState
from bot.supersede import SUPERSEDED
from runner.outcome import new_run_id


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        yield SqliteState(tmp_path / "state.db")
        return
    shared = RedisState(request.getfixturevalue("fresh_redis"))
    try:
        yield shared
    finally:
        shared.close()


def job(build_id: str, delivery: str | None = None, repo: str = "octo/app") -> Job:
    return Job(
        id=build_id,
        kind=JobKind.PUSH,
        repo=repo,
        clone_url=f"http://127.0.0.1:1/git/{repo}.git",
        ref="refs/heads/main",
        sha="a" * 40,
        branch="main",
        installation_id=77,
        delivery=delivery,
        fork=False,
        changed=("README",),
        trigger={"sender": "octocat"},
    )


def test_open_state_follows_the_settings(settings: Settings, fresh_redis: str) -> None:
    assert isinstance(open_state(settings), SqliteState)
    shared = open_state(replace(settings, redis_url=fresh_redis))
    assert isinstance(shared, RedisState)
    shared.close()


def test_a_delivery_is_a_duplicate_once_its_build_started(store: StateStore) -> None:
    first = job("b1", delivery="d-1")
    assert store.record(first) == first
    assert store.record(job("b2", delivery="d-1")) == first  # queued: the same build again
    assert store.get("b2") is None
    assert store.start("b1", "w1")
    assert store.record(job("b3", delivery="d-1")) == "duplicate delivery"
    assert store.record(job("b4")) == job("b4")  # no delivery id: never a duplicate
    assert store.record(job("b5")) == job("b5")
    assert [b.job.id for b in store.recent()] == ["b5", "b4", "b1"]
    assert [b.job.id for b in store.recent(2)] == ["b5", "b4"]


def test_sqlite_writers_take_turns_on_the_lock_file(tmp_path: Path) -> None:
    """Writers of other processes hold the lock file while they write: a writer waits for it
    (and is not left sleeping in SQLite's busy handler)."""
    state = SqliteState(tmp_path / "state.db")
    recorded: list[Job | str] = []
    with (tmp_path / "state.db.lock").open("ab") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        writer = threading.Thread(target=lambda: recorded.append(state.record(job("b1"))))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive() and not recorded  # waiting for its turn
        fcntl.flock(other_process, fcntl.LOCK_UN)
        writer.join(5)
    assert recorded == [job("b1")]
    assert state.get("b1") is not None


def test_sqlite_stores_opening_together_take_turns_on_the_lock_file(tmp_path: Path) -> None:
    """A worker and the web side starting together on a fresh data directory: the loser
    of SQLite's switch to WAL got "database is locked" at once (a build lost in CI)."""
    opened: list[SqliteState] = []
    with (tmp_path / "state.db.lock").open("ab") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        opener = threading.Thread(target=lambda: opened.append(SqliteState(tmp_path / "state.db")))
        opener.start()
        opener.join(0.3)
        assert opener.is_alive() and not opened  # waiting for its turn
        fcntl.flock(other_process, fcntl.LOCK_UN)
        opener.join(5)
    (state,) = opened
    assert state.record(job("b1")) == job("b1")
    state.close()


def _open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def test_closing_the_sqlite_store_lets_go_of_every_thread_s_files(tmp_path: Path) -> None:
    state = SqliteState(tmp_path / "state.db")
    state.record(job("b1"))
    other = threading.Thread(target=state.record, args=(job("b2"),))
    other.start()
    other.join()
    assert {str(tmp_path / "state.db"), str(tmp_path / "state.db.lock")} <= _open_files()
    state.close()
    assert not {f for f in _open_files() if f.startswith(str(tmp_path))}


def test_a_build_round_trips_with_its_job(store: StateStore) -> None:
    store.record(job("b1"))
    build = store.get("b1")
    assert build is not None
    assert (build.job, build.status, build.run_id, build.worker) == (
        job("b1"),
        "queued",
        None,
        None,
    )
    assert (build.heartbeat, build.attempts, build.state) == (None, 0, None)
    assert store.start("b1", "host:1")
    store.set_run("b1", "run-1")
    store.finish("b1", "success")
    build = store.get("b1")
    assert build is not None
    assert (build.status, build.run_id, build.worker, build.attempts, build.state) == (
        "done",
        "run-1",
        "host:1",
        1,
        "success",
    )
    assert not store.start("b1", "host:2")  # done: nobody builds it again
    assert store.get("missing") is None


def _stored_job(store: StateStore, build_id: str) -> str:
    """The job's text as the store keeps it."""
    if isinstance(store, SqliteState):
        db = sqlite3.connect(store.path)
        try:
            return str(db.execute("select job from builds where id = ?", (build_id,)).fetchone()[0])
        finally:
            db.close()
    assert isinstance(store, RedisState)
    return str(store.redis.hget(f"{store.prefix}build:{build_id}", "job"))


@pytest.mark.parametrize("kind", list(JobKind))
def test_every_job_kind_round_trips_and_is_stored_as_its_string(
    store: StateStore, kind: JobKind
) -> None:
    recorded = replace(job("b1"), kind=kind)
    store.record(recorded)
    assert json.loads(_stored_job(store, "b1"))["kind"] == kind.value  # as before JobKind
    build = store.get("b1")
    assert build is not None and build.job == recorded and build.job.kind is kind
    assert [c.job for c in store.claim_unannounced(1)] == [recorded]


def test_updates_of_unknown_builds_create_nothing(store: StateStore) -> None:
    store.beat("ghost")
    store.set_run("ghost", "run-1")
    store.finish("ghost", "error")
    store.requeue("ghost")
    assert not store.start("ghost", "w1")
    assert store.get("ghost") is None
    assert store.recent() == []


def test_exactly_one_worker_claims_a_build(store: StateStore) -> None:
    ids = [f"b{i}" for i in range(6)]
    for build_id in ids:
        store.record(job(build_id))
    wins: dict[str, list[str]] = {build_id: [] for build_id in ids}
    ready = threading.Barrier(8)

    def worker(name: str) -> None:
        order = ids[:]
        random.Random(name).shuffle(order)
        ready.wait()
        for build_id in order:
            if store.start(build_id, name):
                wins[build_id].append(name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(names) == 1 for names in wins.values()), wins
    assert [b.job.id for b in store.running()] == ids  # oldest first
    for build_id, (name,) in wins.items():
        build = store.get(build_id)
        assert build is not None
        assert (build.status, build.worker, build.attempts) == ("running", name, 1)


def test_a_silent_worker_goes_stale_and_one_reaper_takes_it(store: StateStore) -> None:
    store.record(job("b1"))
    store.record(job("b2"))
    assert store.start("b1", "w1")
    assert store.start("b2", "w2")
    assert store.stale(5) == []
    time.sleep(0.4)
    store.beat("b2")
    (dead,) = store.stale(0.3)
    assert (dead.job.id, dead.worker, dead.status) == ("b1", "w1", "running")
    taken = [store.take_stale("b1", 0.3) for _ in range(3)]
    assert taken == [True, False, False]  # its heartbeat is fresh again: the others leave it
    assert not store.take_stale("b2", 0.3)  # alive
    store.finish("b2", "success")
    assert [b.job.id for b in store.running()] == ["b1"]
    time.sleep(0.4)
    assert [b.job.id for b in store.stale(0.3)] == ["b1"]  # a finished build is never stale


def test_a_requeued_build_is_claimed_again(store: StateStore) -> None:
    store.record(job("b1"))
    assert store.start("b1", "w1")
    store.set_run("b1", "run-1")
    store.requeue("b1")
    build = store.get("b1")
    assert build is not None
    assert (build.status, build.worker, build.run_id, build.attempts) == ("queued", None, None, 1)
    assert store.stale(0) == []
    assert store.start("b1", "w2")
    build = store.get("b1")
    assert build is not None
    assert (build.status, build.worker, build.attempts) == ("running", "w2", 2)


def test_pipelines_are_remembered_and_found_by_upstream(store: StateStore) -> None:
    store.remember("octo/app", "http://x/app.git", 77, ("Octo/Lib",), "0 3 * * *", "check")
    store.remember("octo/zed", "http://x/zed.git", None, ("octo/lib", "octo/other"), None, None)
    store.remember("octo/base", "http://x/base.git", 5, (), None, None)
    assert [k.repo for k in store.known()] == ["octo/app", "octo/base", "octo/zed"]
    app = store.known()[0]
    assert (app.clone_url, app.installation_id, app.upstream) == (
        "http://x/app.git",
        77,
        ("Octo/Lib",),
    )
    assert (app.cron, app.watch, app.scheduled, app.watched) == ("0 3 * * *", "check", None, None)
    assert [k.repo for k in store.subscribers("octo/lib")] == ["octo/app", "octo/zed"]
    assert [k.repo for k in store.subscribers("OCTO/LIB")] == ["octo/app", "octo/zed"]
    assert [k.repo for k in store.subscribers("octo/other")] == ["octo/zed"]
    assert store.subscribers("octo/nobody") == []

    store.scheduled("octo/app", 1_700_000_000.25)
    assert store.watched("octo/app", "v1") is None
    store.remember("octo/app", "http://x/app2.git", None, (), None, None)  # the pipeline changed
    (app, *_) = store.known()
    assert (app.clone_url, app.installation_id, app.upstream, app.cron, app.watch) == (
        "http://x/app2.git",
        None,
        (),
        None,
        None,
    )
    assert (app.scheduled, app.watched) == (1_700_000_000.25, "v1")  # kept across a reload


def test_the_watch_output_is_stored_and_the_previous_returned(store: StateStore) -> None:
    store.remember("octo/app", "http://x/app.git", 77, (), "* * * * *", "check")
    assert store.watched("octo/app", "1.0") is None
    assert store.watched("octo/app", "1.0") == "1.0"
    assert store.watched("octo/app", "1.1") == "1.0"
    assert store.watched("octo/unknown", "x") is None
    store.scheduled("octo/unknown", 5.0)
    assert [k.repo for k in store.known()] == ["octo/app"]  # unknown repos are not created


def test_an_event_is_received_once_per_run(store: StateStore) -> None:
    args = ("Octo/Lib", "refs/heads/main", "b" * 40)
    assert store.receive("run-1", *args, "success", "http://x/run-1")
    assert not store.receive("run-1", *args, "success", "http://x/run-1")
    assert not store.receive("run-1", *args, "failure", "http://x/other")  # a replay, altered
    assert store.receive("run-2", *args, "failure", "http://x/run-2")


def test_prune_forgets_finished_builds_and_events_once_old(store: StateStore) -> None:
    store.record(job("old", delivery="d-old"))
    store.finish("old", "success")
    store.record(job("stuck"))  # queued: never forgotten, however old
    store.receive("run-1", "octo/lib", "refs/heads/main", "s1", "success", "u1")
    time.sleep(0.1)
    store.record(job("new", delivery="d-new"))
    store.finish("new", "failure")
    store.receive("run-2", "octo/lib", "refs/heads/main", "s2", "success", "u2")

    assert store.prune(0.05) == 1
    assert store.get("old") is None
    assert store.get("stuck") is not None and store.get("new") is not None
    assert [b.job.id for b in store.recent()] == ["new", "stuck"]
    assert store.green_since("octo/lib", "main", "") == "run-2"  # run-1 is forgotten
    assert store.receive("run-1", "octo/lib", "refs/heads/main", "s1", "success", "u1")
    assert store.record(job("again", delivery="d-old")) == job("again", delivery="d-old")
    assert store.record(job("dup", delivery="d-new")) == "duplicate delivery"
    assert store.prune(3600) == 0


def test_green_since_finds_the_first_green_run_after_one(store: StateStore) -> None:
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    runs = [new_run_id(start + timedelta(seconds=i)) for i in range(6)]
    main, dev = "refs/heads/main", "refs/heads/dev"
    # received out of order: the newest first
    store.receive(runs[5], "Octo/Lib", main, "s5", "success", "u5")
    store.receive(runs[1], "octo/lib", main, "s1", "failure", "u1")
    store.receive(runs[2], "octo/lib", dev, "s2", "success", "u2")
    store.receive(runs[3], "OCTO/LIB", main, "s3", "success", "u3")
    store.receive(runs[4], "octo/other", main, "s4", "success", "u4")

    assert store.green_since("octo/lib", None, runs[0]) == runs[2]
    assert store.green_since("Octo/Lib", "main", runs[0]) == runs[3]
    assert store.green_since("octo/lib", "main", runs[3]) == runs[5]  # strictly after
    assert store.green_since("octo/lib", "dev", runs[2]) is None
    assert store.green_since("octo/lib", "main", runs[5]) is None
    assert store.green_since("octo/nobody", None, "") is None
    assert store.green_since("octo/other", "main", "") == runs[4]


def test_a_lease_lets_one_holder_do_a_chore_until_it_runs_out(store: StateStore) -> None:
    assert store.lease("minutely", 0.3)
    assert not store.lease("minutely", 0.3)
    assert store.lease("other", 0.3)
    time.sleep(0.4)
    assert store.lease("minutely", 0.3)


def test_recorded_builds_are_claimed_for_announcing_once_until_the_lease_ends(
    store: StateStore,
) -> None:
    assert store.claim_unannounced(4) == []  # nothing recorded yet
    for build_id in ("b1", "b2", "b3"):
        store.record(job(build_id))
        time.sleep(0.002)  # distinct creation times: claimed oldest first
    assert [c.job.id for c in store.claim_unannounced(2, lease=0.3)] == ["b1", "b2"]
    assert [c.job.id for c in store.claim_unannounced(4, lease=0.3)] == ["b3"]
    assert store.claim_unannounced(4, lease=0.3) == []  # all three are in an announcer's hands
    store.handed_over("b1")  # queued
    store.finish("b2", "none")  # no pipeline: nothing to queue
    time.sleep(0.4)  # b3's announcer died: its lease ends
    assert [c.job.id for c in store.claim_unannounced(4)] == ["b3"]
    assert store.claim_unannounced(4) == []


def test_each_claim_of_a_build_is_counted(store: StateStore) -> None:
    store.record(job("b1"))
    for tries in (1, 2, 3):
        (claim,) = store.claim_unannounced(1, lease=0.05)
        assert (claim.job.id, claim.tries) == ("b1", tries)
        time.sleep(0.1)  # its announcer died: the lease ends
    store.finish("b1", "error")
    time.sleep(0.1)
    assert store.claim_unannounced(1) == []  # ended: never offered again


def test_a_claimed_build_comes_back_whole(store: StateStore) -> None:
    recorded = job("b1", delivery="d-9")
    store.record(recorded)
    assert [c.job for c in store.claim_unannounced(1)] == [recorded]


def test_a_data_directory_of_the_previous_version_is_upgraded(tmp_path: Path) -> None:
    """Builds recorded before announcers claimed them are announced after an upgrade."""
    old = sqlite3.connect(tmp_path / "state.db")
    old.executescript(
        "create table builds (id text primary key, delivery text, repo text not null,"
        " sha text not null, job text not null, status text not null default 'queued',"
        " run_id text, worker text, heartbeat real, attempts integer not null default 0,"
        " handed integer not null default 0, created real not null, state text);"
    )
    old.execute(
        "insert into builds (id, repo, sha, job, created) values (?, ?, ?, ?, ?)",
        ("b1", "octo/app", "a" * 40, job("b1").to_json(), time.time()),
    )
    old.commit()
    old.close()
    (claim,) = SqliteState(tmp_path / "state.db").claim_unannounced(4)
    assert (claim.job, claim.tries) == (job("b1"), 1)
    upgraded = SqliteState(tmp_path / "state.db")
    assert upgraded.request_cancel("b1", "cancelled") is not None
    assert upgraded.cancel_requested("b1") == "cancelled"


def test_a_cancel_request_is_kept_for_the_worker_until_the_build_is_done(
    store: StateStore,
) -> None:
    assert store.request_cancel("unknown", "cancelled") is None
    assert store.cancel_requested("unknown") is None
    store.record(job("queued"))
    store.record(job("running"))
    store.record(job("done"))
    assert store.start("running", "w1")
    assert store.start("done", "w1")
    store.finish("done", "success")
    assert store.cancel_requested("queued") is None
    assert store.request_cancel("queued", "cancelled") == "queued"
    assert store.request_cancel("running", "cancelled: superseded") == "running"
    assert store.request_cancel("running", "cancelled") == "running"  # the first reason stays
    assert store.request_cancel("done", "cancelled") == "done"
    assert store.cancel_requested("queued") == "cancelled"
    assert store.cancel_requested("running") == "cancelled: superseded"
    assert store.cancel_requested("done") is None  # a finished build is left alone


def test_unfinished_builds_of_a_repository_oldest_first(store: StateStore) -> None:
    for build_id in ("b1", "b2", "b3"):
        store.record(job(build_id))
        time.sleep(0.002)
    store.record(job("other", repo="octo/other"))
    assert store.start("b2", "w1")
    store.start("b3", "w1")
    store.finish("b3", "success")
    assert [b.job.id for b in store.unfinished("octo/app")] == ["b1", "b2"]
    assert [b.job.id for b in store.unfinished("octo/other")] == ["other"]
    store.finish("b1", "cancelled")
    assert [b.job.id for b in store.unfinished("octo/app")] == ["b2"]


def test_builds_of_a_commit_newest_first(store: StateStore) -> None:
    store.record(job("b1"))
    time.sleep(0.002)
    store.record(job("b2"))
    store.record(replace(job("b3"), sha="b" * 40))
    store.finish("b1", "success")
    assert [b.job.id for b in store.builds_of("octo/app", "a" * 40)] == ["b2", "b1"]
    assert [b.job.id for b in store.builds_of("octo/app", "b" * 40)] == ["b3"]
    assert store.builds_of("octo/other", "a" * 40) == []


def test_sessions_live_until_dropped_or_expired(store: StateStore) -> None:
    store.put_session("k1", '{"user": 1}', 60)
    store.put_session("k2", "{}", 0.2)
    assert store.get_session("k1") == '{"user": 1}'
    assert store.get_session("nope") is None
    store.put_session("k1", '{"user": 2}', 60)  # saved again: the latest data
    assert store.get_session("k1") == '{"user": 2}'
    store.drop_session("k1")
    assert store.get_session("k1") is None
    time.sleep(0.4)
    assert store.get_session("k2") is None  # expired
    store.prune(0)
    assert store.get_session("k2") is None


def test_privacy_is_the_latest_word_in_any_case(store: StateStore) -> None:
    assert store.is_private("octo/app") is None  # unknown: the site treats it as private
    store.set_private("Octo/App", False)
    assert store.is_private("octo/app") is False
    store.set_private("octo/app", True)
    assert store.is_private("OCTO/APP") is True


# --- fork builds waiting for approval, superseded (SPEC §11) ---------------------------------


def pull_request(
    build_id: str, number: int = 7, sha: str = "c" * 40, repo: str = "octo/app"
) -> Job:
    return replace(
        job(build_id, repo=repo),
        kind=JobKind.PULL_REQUEST,
        ref=f"refs/pull/{number}/head",
        sha=sha,
        number=number,
        fork=True,
        author="mallory",
    )


def wait(store: StateStore, build: Job) -> None:
    store.record(build)
    store.finish(build.id, WAITING)
    time.sleep(0.002)  # creation times apart


def test_a_pull_request_s_waiting_builds_oldest_first_until_approved_or_ended(
    store: StateStore,
) -> None:
    for build_id, number in (("w1", 7), ("w2", 7), ("w8", 8), ("w3", 7)):
        wait(store, pull_request(build_id, number))
    wait(store, pull_request("elsewhere", 7, repo="octo/other"))
    store.record(pull_request("queued", 7))  # recorded, not waiting
    store.record(pull_request("failed", 7))
    store.finish("failed", "failure")
    found = store.waiting("octo/app", 7)
    assert [b.job.id for b in found] == ["w1", "w2", "w3"]
    assert all(b.state == WAITING and b.created is not None for b in found)
    assert [b.created for b in found] == sorted(b.created or 0.0 for b in found)
    assert [b.job.id for b in store.waiting("octo/app", 8)] == ["w8"]
    assert store.waiting("octo/app", 9) == []
    # Approved: its twin runs, it is no longer the pull request's to supersede.
    assert isinstance(store.record(approved(pull_request("w2"), "writer")), Job)
    assert [b.job.id for b in store.waiting("octo/app", 7)] == ["w1", "w3"]
    assert not store.end_waiting("w2", SUPERSEDED)
    # Ended: once, and for good; an Approve then records nothing.
    assert store.end_waiting("w1", SUPERSEDED)
    assert not store.end_waiting("w1", SUPERSEDED)
    ended = store.get("w1")
    assert ended is not None and (ended.status, ended.state) == (Phase.DONE, SUPERSEDED)
    assert store.record(approved(pull_request("w1"), "writer")) == "build w1 no longer waits"
    assert store.get(approved_id("w1")) is None
    assert [b.job.id for b in store.waiting("octo/app", 7)] == ["w3"]
    assert not store.end_waiting("queued", SUPERSEDED)  # not waiting: left alone
    assert not store.end_waiting("failed", SUPERSEDED)
    assert not store.end_waiting("unknown", SUPERSEDED)
    failed = store.get("failed")
    assert failed is not None and failed.state == "failure"
    # A second Approve of an approved build is the same approved build, not refused.
    again = store.record(approved(pull_request("w2"), "other writer"))
    assert isinstance(again, Job) and again.approved_by == "writer"


def test_waiting_builds_are_bounded_per_pull_request(store: StateStore) -> None:
    for i in range(WAITING_LIMIT + 3):
        wait(store, pull_request(f"w{i:03}", 7))
    found = store.waiting("octo/app", 7)
    assert [b.job.id for b in found] == [f"w{i:03}" for i in range(WAITING_LIMIT)]
    for build in found[:10]:
        assert store.end_waiting(build.job.id, SUPERSEDED)
    after = store.waiting("octo/app", 7)
    assert [b.job.id for b in after] == [f"w{i:03}" for i in range(10, WAITING_LIMIT + 3)]


def test_sqlite_finds_a_pull_request_s_waiting_builds_by_its_index(tmp_path: Path) -> None:
    """Many pull requests (an outsider can open them) do not make one's lookup dearer."""
    store = SqliteState(tmp_path / "state.db")
    wait(store, pull_request("w1", 7))
    db = sqlite3.connect(tmp_path / "state.db")
    plan = db.execute(
        "explain query plan select id from builds where repo = ? and number = ?"
        " and state = 'waiting' and not exists"
        " (select 1 from builds twin where twin.id = builds.id || ?) order by created limit ?",
        ("octo/app", 7, "-approved", 50),
    ).fetchall()
    db.close()
    details = " ".join(str(row[-1]) for row in plan)
    assert "builds_waiting" in details and "SCAN builds" not in details, details
    assert [b.job.id for b in store.waiting("octo/app", 7)] == ["w1"]


def test_a_waiting_build_of_the_previous_version_is_found_after_the_upgrade(
    tmp_path: Path,
) -> None:
    old = sqlite3.connect(tmp_path / "state.db")
    old.executescript(
        "create table builds (id text primary key, delivery text, repo text not null,"
        " sha text not null, job text not null, status text not null default 'queued',"
        " run_id text, worker text, heartbeat real, attempts integer not null default 0,"
        " handed integer not null default 0, created real not null, state text);"
    )
    old.execute(
        "insert into builds (id, repo, sha, job, created, status, state)"
        " values (?, ?, ?, ?, ?, 'done', 'waiting')",
        ("w1", "octo/app", "c" * 40, pull_request("w1").to_json(), time.time()),
    )
    old.commit()
    old.close()
    upgraded = SqliteState(tmp_path / "state.db")
    assert [b.job.id for b in upgraded.waiting("octo/app", 7)] == ["w1"]
    assert upgraded.end_waiting("w1", SUPERSEDED)
