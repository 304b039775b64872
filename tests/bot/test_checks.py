"""Check run payloads (`bot.checks`), superseding and `[skip ci]` (`bot.supersede`): pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import checks
from bot.checks import Annotation, CheckStatus, Conclusion, LogScan
from bot.jobs import Job, JobKind
from bot.state.base import Build, Phase
from bot.supersede import SUPERSEDED, skip_ci, superseded
from runner.model import Supersede
from runner.outcome import RunResult, StageResult, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://ci.example.com/results/octo/app/run/R1"


def stage(
    name: str, status: Status, reason: str | None = None, seconds: float = 2.5
) -> StageResult:
    return StageResult(
        name, status, reason, started=T0, finished=T0 + timedelta(seconds=seconds),
        logs=f"{name}.log",
    )  # fmt: skip


def run_of(*stages: StageResult, status: Status = Status.SUCCESS) -> RunResult:
    return RunResult("R1", "octo/app", status, T0, stages={s.name: s for s in stages})


def test_a_failed_build_has_its_title_summary_text_and_annotations() -> None:
    run = run_of(
        stage("build", Status.SUCCESS),
        stage("test", Status.FAILURE, "exit 1"),
        stage("lint", Status.SUCCESS),
        stage("deploy", Status.SKIPPED, "'test' failed"),
        status=Status.FAILURE,
    )
    files = {"src/app.py", "README"}
    log = [f"line {i}" for i in range(80)] + [
        "src/app.py:12: AssertionError: 1 != 2",
        "./src/app.py:3:7: E501 line too long",
        "/etc/passwd:1: root",
        "../outside.py:1: nope",
        "missing.py:4: not a file of the checkout",
        "\x1b[31mREADME:2: in red\x1b[0m",
        "the end",
    ]
    scan = checks.scan_log(log, files.__contains__)
    check = checks.completed("b1", run, URL, {"test": scan})
    assert check.status is CheckStatus.COMPLETED
    assert check.conclusion is Conclusion.FAILURE
    assert check.title == "2 of 4 stages passed; failed: test"
    assert check.external_id == "b1" and check.details_url == URL
    assert "| [test](" + URL + "/test.log) | failure: exit 1 | 2.5 s |" in check.summary
    assert "| [deploy](" + URL + "/deploy.log) | skipped: 'test' failed |" in check.summary
    assert check.text.startswith("### test: failure\n")
    assert "the end" in check.text and "line 37" in check.text and "line 36\n" not in check.text
    assert check.annotations == (
        Annotation("src/app.py", 12, "AssertionError: 1 != 2"),
        Annotation("src/app.py", 3, "E501 line too long", 7),
        Annotation("README", 2, "in red"),
    )
    output = check.output()
    assert output is not None
    assert output["annotations"][1] == {
        "path": "src/app.py", "start_line": 3, "end_line": 3, "annotation_level": "failure",
        "message": "E501 line too long", "start_column": 7, "end_column": 7,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("statuses", "cancelled", "conclusion"),
    [
        ([Status.SUCCESS, Status.SKIPPED], None, Conclusion.SUCCESS),
        ([Status.SUCCESS, Status.FAILURE], None, Conclusion.FAILURE),
        ([Status.ERROR], None, Conclusion.FAILURE),
        ([Status.SKIPPED, Status.SKIPPED], None, Conclusion.NEUTRAL),
        ([], None, Conclusion.NEUTRAL),
        ([Status.SUCCESS, Status.CANCELLED], None, Conclusion.CANCELLED),
        ([Status.FAILURE, Status.CANCELLED], "cancelled", Conclusion.CANCELLED),
        ([Status.CANCELLED], SUPERSEDED, Conclusion.CANCELLED),
    ],
)
def test_conclusions(statuses: list[Status], cancelled: str | None, conclusion: Conclusion) -> None:
    run = run_of(*(stage(f"s{i}", s) for i, s in enumerate(statuses)))
    check = checks.completed("b1", run, URL, {}, cancelled)
    assert check.conclusion is conclusion
    if cancelled:
        assert check.title.endswith(f"; {cancelled}")


def test_the_build_time_limit_is_timed_out() -> None:
    run = run_of(stage("slow", Status.CANCELLED, "build time limit"), status=Status.CANCELLED)
    run.reason = "build time limit"
    assert checks.completed("b1", run, URL, {}).conclusion is Conclusion.TIMED_OUT


def test_annotations_stop_at_fifty_and_the_text_within_github_s_limit() -> None:
    lines = [f"a.py:{i}: " + "x" * 3000 for i in range(1, 200)]
    scans = {
        name: checks.scan_log(lines, lambda path: path == "a.py", room)
        for name, room in (("one", 50), ("two", 0))
    }
    run = run_of(*(stage(n, Status.FAILURE) for n in ("one", "two", "three")))
    scans["three"] = LogScan(["y" * 70000])
    check = checks.completed("b1", run, URL, scans)
    assert len(check.annotations) == checks.MAX_ANNOTATIONS
    assert all(len(a.message) <= 1000 for a in check.annotations)
    assert len(check.text) <= checks.MAX_TEXT
    for name in ("one", "two", "three"):  # each failed stage gets its share
        assert f"### {name}: failure" in check.text
    assert "a.py:199: xxx" in check.text  # the last line of the log is always there
    assert check.text.endswith("y" * 100 + "\n````\n")
    assert len(check.summary) <= checks.MAX_TEXT


def test_hostile_lines_cannot_break_the_markdown_or_escape_the_fence() -> None:
    run = run_of(stage("t|x", Status.FAILURE, "exit 1\n| forged | row |"))
    scan = checks.scan_log(["````", "[click](http://evil)"], lambda path: False)
    check = checks.completed("b1", run, URL, {"t|x": scan})
    assert "\n| forged" not in check.summary
    assert check.text.count("````") == 2  # only the bot's own fence


def test_queued_in_progress_and_stage_check_runs() -> None:
    queued = checks.queued("b1", "https://ci/results/octo/app/")
    assert (queued.status, queued.output(), queued.name) == (CheckStatus.QUEUED, None, "dockercise")
    assert checks.in_progress("b1", URL).status is CheckStatus.IN_PROGRESS
    one = checks.for_stage("b1", stage("lint", Status.SKIPPED, "no changed file"), URL)
    assert (one.name, one.conclusion, one.title) == (
        "dockercise/lint",
        Conclusion.SKIPPED,
        "skipped: no changed file",
    )
    assert checks.errored("b1", "cannot fetch", None).conclusion is Conclusion.FAILURE


def _job(
    build_id: str,
    sha: str,
    kind: JobKind = JobKind.PULL_REQUEST,
    number: int = 3,
    branch: str = "topic",
) -> Job:
    return Job(
        id=build_id, kind=kind, repo="octo/app", clone_url="http://127.0.0.1:1/x.git",
        ref="refs/pull/3/head", sha=sha, branch=branch, fork=False,
        number=number if kind is JobKind.PULL_REQUEST else None,
    )  # fmt: skip


def _builds(*jobs: Job) -> list[Build]:
    return [Build(j, Phase.QUEUED, None, None, None, 0, None) for j in jobs]


def test_a_newer_commit_supersedes_the_older_builds_of_its_pull_request() -> None:
    old, same, other_pr, newer = (
        _job("old", "a" * 40),
        _job("same", "b" * 40),
        _job("pr4", "c" * 40, number=4),
        _job("newer", "d" * 40),
    )
    new = _job("new", "b" * 40)
    push = _job("push", "e" * 40, JobKind.PUSH)
    line = _builds(old, same, other_pr, push, new, newer)
    assert superseded(new, Supersede.PULL_REQUESTS, line) == ["old"]  # not its own commit
    assert superseded(new, Supersede.NONE, line) == []
    newer_push = _job("push2", "f" * 40, JobKind.PUSH)
    both = _builds(push, _job("push-main", "9" * 40, JobKind.PUSH, branch="main"), newer_push)
    assert superseded(newer_push, Supersede.PULL_REQUESTS, both) == []
    assert superseded(newer_push, Supersede.ALL, both) == ["push"]


@pytest.mark.parametrize(
    ("message", "skip"),
    [
        ("fix typo [skip ci]", True),
        ("[CI SKIP] docs\n\nmore", True),
        ("body\n\n[skip ci]", True),
        ("skip ci", False),
        ("[skip-ci]", False),
        (None, False),
    ],
)
def test_skip_ci(message: str | None, skip: bool) -> None:
    assert skip_ci(message) is skip
