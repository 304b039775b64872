"""runner/outcome.py: stage and run results and their JSON (SPEC §7)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from runner.outcome import RunResult, StageResult, Status, new_run_id, now

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
RUN_ID = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{8}$")


def test_now_is_utc() -> None:
    moment = now()
    assert moment.utcoffset() == timedelta(0)
    assert abs(moment - datetime.now(UTC)) < timedelta(seconds=5)


def test_run_id_shape() -> None:
    run_id = new_run_id(T0)
    assert RUN_ID.match(run_id), run_id
    assert run_id.startswith("20260102T030405678Z-")


@pytest.mark.parametrize(
    "step",
    [
        timedelta(milliseconds=1),
        timedelta(seconds=1),
        timedelta(minutes=7),
        timedelta(days=40),
        timedelta(days=400),
    ],
)
def test_run_ids_sort_by_time(step: timedelta) -> None:
    moments = [T0 + i * step for i in range(30)]
    ids = [new_run_id(m) for m in moments]
    assert sorted(ids) == ids
    assert sorted(reversed(ids)) == ids


def test_run_ids_are_unique_even_in_the_same_millisecond() -> None:
    same = {new_run_id(T0) for _ in range(1000)}
    assert len(same) == 1000
    assert len({i.split("-")[0] for i in same}) == 1


def test_run_ids_made_one_after_another() -> None:
    ids = [new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    prefixes = [i.split("-")[0] for i in ids]
    assert sorted(prefixes) == prefixes
    assert all(RUN_ID.match(i) for i in ids)


def test_status_bad() -> None:
    assert {s for s in Status if s.bad} == {Status.FAILURE, Status.ERROR}
    assert {s.value for s in Status} >= {"success", "failure", "skipped", "error", "cancelled"}


STAGE_FIELDS = {"name", "status", "exit_code", "reason", "started", "finished", "image", "logs",
                "artefact"}  # fmt: skip
RUN_FIELDS = {"id", "pipeline", "status", "trigger", "started", "finished", "stages", "edges"}


def test_stage_json() -> None:
    result = StageResult(
        name="☃",
        status=Status.FAILURE,
        reason="exit code 3",
        exit_code=3,
        started=T0,
        finished=T0 + timedelta(seconds=2, milliseconds=500),
        image="alpine:3",
        logs="☃.log",
        artefact="☃.zip",
        attempts=2,
    )
    data = result.to_json()
    assert set(data) >= STAGE_FIELDS
    assert data["name"] == "☃"
    assert data["status"] == "failure"
    assert data["exit_code"] == 3
    assert data["reason"] == "exit code 3"
    assert data["started"] == "2026-01-02T03:04:05.678Z"
    assert data["finished"] == "2026-01-02T03:04:08.178Z"
    assert data["image"] == "alpine:3"
    assert data["logs"] == "☃.log"
    assert data["artefact"] == "☃.zip"
    assert data["attempts"] == 2
    assert data["duration"] == 2.5
    assert "check" not in data
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


def test_stage_json_when_waiting() -> None:
    data = StageResult("a", Status.RUNNING).to_json()
    assert set(data) >= STAGE_FIELDS
    assert data["status"] == "running"
    assert data["started"] is None
    assert data["finished"] is None
    assert data["duration"] is None
    assert data["exit_code"] is None


@pytest.mark.parametrize(("check", "exit_code"), [(True, 0), (False, 1)])
def test_check_stage_json(check: bool, exit_code: int) -> None:
    data = StageResult("is-main", Status.SUCCESS, exit_code=exit_code, check=check).to_json()
    assert data["check"] is check
    assert data["status"] == "success"
    assert data["exit_code"] == exit_code


def test_run_json() -> None:
    run = RunResult(
        id=new_run_id(T0),
        pipeline="hello",
        status=Status.FAILURE,
        started=T0,
        trigger={"kind": "push", "ref": "refs/heads/main"},
        finished=T0 + timedelta(minutes=1),
        stages={
            "build": StageResult("build", Status.SUCCESS),
            "test": StageResult("test", Status.FAILURE),
        },
        edges=[("build", "test")],
    )
    data = run.to_json()
    assert set(data) == RUN_FIELDS
    assert data["id"] == run.id
    assert data["pipeline"] == "hello"
    assert data["status"] == "failure"
    assert data["trigger"] == {"kind": "push", "ref": "refs/heads/main"}
    assert data["started"] == "2026-01-02T03:04:05.678Z"
    assert data["finished"] == "2026-01-02T03:05:05.678Z"
    assert data["stages"] == [
        {"name": "build", "status": "success"},
        {"name": "test", "status": "failure"},
    ]
    assert data["edges"] == [["build", "test"]]
    assert json.loads(json.dumps(data)) == data


def test_run_json_while_running() -> None:
    data = RunResult(id="x", pipeline="p", status=Status.RUNNING, started=T0).to_json()
    assert data["status"] == "running"
    assert data["finished"] is None
    assert data["trigger"]["kind"] == "manual"
    assert ISO_Z.match(data["started"])


@pytest.mark.parametrize(
    "moment",
    [T0, datetime(2026, 1, 1, tzinfo=UTC), now()],
)
def test_times_are_iso8601_utc_with_z(moment: datetime) -> None:
    data = StageResult("a", Status.SUCCESS, started=moment, finished=moment).to_json()
    for key in ("started", "finished"):
        assert ISO_Z.match(data[key]), data[key]
        assert datetime.fromisoformat(data[key]) == moment.replace(
            microsecond=moment.microsecond // 1000 * 1000
        )
