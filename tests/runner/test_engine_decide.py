"""runner/engine.py `decide`: whether a stage whose dependencies finished runs (SPEC §2)."""

from __future__ import annotations

import pytest

from runner.engine import decide
from runner.model import Stage, When
from runner.outcome import StageResult, Status


def _stage(when: When = When.SUCCESS, if_: str | None = None, unless: str | None = None) -> Stage:
    return Stage("x", ".dockercise.yml", 1, img="i", run="true", when=when, if_=if_, unless=unless)


def _deps(**statuses: Status) -> dict[str, StageResult]:
    return {name: StageResult(name, status) for name, status in statuses.items()}


S, F, E, K, C = Status.SUCCESS, Status.FAILURE, Status.ERROR, Status.SKIPPED, Status.CANCELLED


@pytest.mark.parametrize(
    ("when", "dep", "reason"),
    [
        (When.SUCCESS, S, None),
        (When.SUCCESS, F, "dependency dep failed"),
        (When.SUCCESS, E, "dependency dep errored"),
        (When.SUCCESS, K, "dependency dep was skipped"),
        (When.SUCCESS, C, "dependency dep was cancelled"),
        (When.FAILURE, S, "no dependency failed (when: failure)"),
        (When.FAILURE, F, None),
        (When.FAILURE, E, None),
        (When.FAILURE, K, "no dependency failed (when: failure)"),
        (When.FAILURE, C, None),
        (When.ALWAYS, S, None),
        (When.ALWAYS, F, None),
        (When.ALWAYS, E, None),
        (When.ALWAYS, K, None),
        (When.ALWAYS, C, None),
    ],
)
def test_when_by_dependency_outcome(when: When, dep: Status, reason: str | None) -> None:
    assert decide(_stage(when), _deps(dep=dep)) == reason


@pytest.mark.parametrize("when", list(When))
def test_no_dependencies(when: When) -> None:
    expected = "no dependency failed (when: failure)" if when is When.FAILURE else None
    assert decide(_stage(when), {}) == expected


@pytest.mark.parametrize(
    ("deps", "reason"),
    [
        (_deps(a=S, b=S, c=S), None),
        (_deps(a=S, b=F, c=S), "dependency b failed"),
        (_deps(c=F, b=E, a=S), "dependency b errored"),
        (_deps(a=K, b=F), "dependency b failed"),  # a failure is named before a skip
        (_deps(a=S, z=K, b=K), "dependency b was skipped"),
    ],
)
def test_success_names_the_dependency_that_stops_it(
    deps: dict[str, StageResult], reason: str | None
) -> None:
    assert decide(_stage(), deps) == reason


@pytest.mark.parametrize(
    ("deps", "runs"),
    [(_deps(a=S, b=F), True), (_deps(a=K, b=E), True), (_deps(a=S, b=S), False)],
)
def test_failure_runs_when_some_dependency_failed(deps: dict[str, StageResult], runs: bool) -> None:
    assert (decide(_stage(When.FAILURE), deps) is None) is runs


def _check(value: bool | None, status: Status = S) -> dict[str, StageResult]:
    return {"chk": StageResult("chk", status, exit_code=None if value is None else int(not value),
                               check=value)}  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("if", True, None),
        ("if", False, "check chk was false"),
        ("unless", False, None),
        ("unless", True, "check chk was true"),
    ],
)
@pytest.mark.parametrize("when", [When.SUCCESS, When.ALWAYS])
def test_if_and_unless(key: str, value: bool, reason: str | None, when: When) -> None:
    stage = _stage(
        when, if_="chk" if key == "if" else None, unless="chk" if key == "unless" else None
    )
    assert decide(stage, _check(value)) == reason


def test_a_check_that_did_not_run_is_not_true() -> None:
    assert decide(_stage(When.ALWAYS, if_="chk"), _check(None, K)) is not None
    assert decide(_stage(When.SUCCESS, if_="chk"), _check(None, K)) == "dependency chk was skipped"


def test_a_false_check_is_not_a_failed_dependency() -> None:
    stage = _stage(unless="chk")
    deps = {**_check(False), "build": StageResult("build", S)}
    assert decide(stage, deps) is None


def test_if_and_unless_together() -> None:
    stage = _stage(if_="a", unless="b")
    yes = StageResult("a", S, exit_code=0, check=True)
    no = StageResult("b", S, exit_code=1, check=False)
    assert decide(stage, {"a": yes, "b": no}) is None
    assert decide(stage, {"a": no, "b": no}) == "check a was false"
    assert decide(stage, {"a": yes, "b": yes}) == "check b was true"


@pytest.mark.parametrize(("key", "value"), [("if", False), ("unless", True)])
def test_when_failure_still_honours_its_condition(key: str, value: bool) -> None:
    stage = _stage(
        When.FAILURE, if_="chk" if key == "if" else None, unless="chk" if key == "unless" else None
    )
    deps = {**_check(value), "build": StageResult("build", F)}
    assert decide(stage, deps) is not None


def test_a_failure_further_up_is_named_and_counts_for_when_failure() -> None:
    skipped = StageResult("mid", K, "dependency top failed", failed_upstream="top")
    assert decide(_stage(), {"mid": skipped}) == "dependency mid was skipped (top failed)"
    assert decide(_stage(When.FAILURE), {"mid": skipped}) is None
