"""meta.on filters and schedules (pure), and the scheduler with time advanced by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.jobs import Job, JobKind
from bot.schedules import Scheduler
from bot.state.sqlite_store import SqliteState
from bot.triggers import due, unwanted
from runner.model import Triggers


def _job(kind: str, branch: str = "main") -> Job:
    how = JobKind(kind)
    return Job(
        id="b",
        kind=how,
        repo="o/r",
        clone_url="http://x",
        ref="r",
        sha="s",
        branch=branch,
        fork=False,
    )


@pytest.mark.parametrize(
    ("on", "job", "why"),
    [
        (Triggers(), _job("push", "anything"), None),
        (Triggers(push=False), _job("push"), "meta.on.push is false"),
        (Triggers(branches=("main", "release/*")), _job("push", "release/1.2"), None),
        (
            Triggers(branches=("main", "release/*")),
            _job("push", "release/1/hotfix"),
            "branch release/1/hotfix is not in meta.on.push.branches",
        ),
        (Triggers(branches=("feature/**",)), _job("push", "feature/a/b"), None),
        (Triggers(pull_request=False), _job("pull_request"), "meta.on.pull_request is false"),
        (Triggers(push=False, pull_request=False), _job("upstream"), None),
    ],
)
def test_meta_on_filters(on: Triggers, job: Job, why: str | None) -> None:
    assert unwanted(on, job) == why


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("cron", "last", "now", "fires"),
    [
        ("0 3 * * *", "2026-11-23T03:00:00", "2026-11-24T03:00:30", True),
        ("0 3 * * *", "2026-11-24T03:00:00", "2026-11-24T03:00:30", False),
        ("0 3 * * *", "2026-11-23T03:00:00", "2026-11-24T02:59:00", False),
        ("*/5 * * * *", None, "2026-11-24T10:05:10", True),
        ("*/5 * * * *", None, "2026-11-24T10:07:10", False),
    ],
)
def test_due(cron: str, last: str | None, now: str, fires: bool) -> None:
    assert due(cron, _at(last) if last else None, _at(now)) is fires


def test_the_scheduler_fires_once_per_slot_and_remembers_it(tmp_path: Path) -> None:
    state = SqliteState(tmp_path / "state.db")
    state.remember("o/nightly", "http://x/n.git", 1, (), "0 3 * * *", None)
    state.remember("o/watched", "http://x/w.git", 1, (), "0 3 * * *", "version")
    state.remember("o/plain", "http://x/p.git", 1, (), None, None)
    queued: list[Job] = []
    scheduler = Scheduler(state, queued.append)
    assert scheduler.tick(_at("2026-11-24T02:59:30")) == []
    fired = scheduler.tick(_at("2026-11-24T03:00:20"))
    assert {(j.repo, j.kind, j.targets) for j in fired} == {
        ("o/nightly", "schedule", ()),
        ("o/watched", "watch", ("version",)),
    }
    assert scheduler.tick(_at("2026-11-24T03:00:50")) == []  # same slot: not again
    again = Scheduler(SqliteState(tmp_path / "state.db"), queued.append)  # after a restart
    assert again.tick(_at("2026-11-24T03:00:55")) == []
    assert len(again.tick(_at("2026-11-25T03:00:05"))) == 2
