"""The engine's scheduling on the fake backend (SPEC §2): order, concurrency, `when`,
`if`/`unless`, failure propagation, retry, timeout, cancellation; no Docker engine at all."""

from __future__ import annotations

import json
import random
import threading

import pytest

from runner.outcome import RunResult, Status
from tests.runner.conftest import FakeRun, MakeRun
from tests.runner.fake_backend import KILLED, Script

IMG = "img: busybox"


def test_stages_start_after_their_dependencies_and_get_their_output(fake_run: MakeRun) -> None:
    run = fake_run({"version": Script(stdout=["1.2.3"], seconds=0.02)})
    result = run.run(
        f"""
        version: {{{IMG}, run: x}}
        build: {{{IMG}, env: [version], run: x}}
        lint: {{{IMG}, after: version, run: x}}
        test: {{{IMG}, after: [build, lint], run: x}}
        """
    )
    assert result.status is Status.SUCCESS
    events = run.backend.events
    for before, after in (("version", "build"), ("version", "lint"), ("build", "test")):
        assert events.index(("end", before)) < events.index(("start", after)), events
    assert events.index(("end", "lint")) < events.index(("start", "test"))
    (build,) = run.backend.of("build")
    assert build.spec.env["VERSION"] == "1.2.3"
    assert run.log("version") == "1.2.3\n"
    assert [c for c in run.backend.calls if c[0] == "remove_run"] == [("remove_run", result.id)]
    assert all(c.removed for c in run.backend.containers)


@pytest.mark.parametrize(("jobs", "meta"), [(1, None), (2, None), (3, None), (None, 2)])
def test_concurrency_limits_how_many_run_at_once(
    fake_run: MakeRun, jobs: int | None, meta: int | None
) -> None:
    run = fake_run({f"s{i}": Script(seconds=0.1) for i in range(4)})
    head = f"meta: {{name: p, concurrency: {meta}}}\n" if meta else ""
    result = run.run(
        head + "".join(f"s{i}: {{{IMG}, run: x}}\n" for i in range(4)), concurrency=jobs
    )
    assert result.status is Status.SUCCESS
    assert run.backend.max_running == (jobs or meta)


WHEN = f"""
    good: {{{IMG}, run: x}}
    bad: {{{IMG}, run: x}}
    on-success: {{{IMG}, after: bad, run: x}}
    on-failure: {{{IMG}, after: bad, when: failure, run: x}}
    always: {{{IMG}, after: bad, when: always, run: x}}
    good-on-failure: {{{IMG}, after: good, when: failure, run: x}}
    good-always: {{{IMG}, after: good, when: always, run: x}}
    """


def test_when_decides_after_a_failure(fake_run: MakeRun) -> None:
    run = fake_run({"bad": Script(exit=3)})
    result = run.run(WHEN)
    assert result.status is Status.FAILURE
    outcome = {n: (s.status, s.reason) for n, s in result.stages.items()}
    assert outcome == {
        "good": (Status.SUCCESS, None),
        "bad": (Status.FAILURE, "exit 3"),
        "on-success": (Status.SKIPPED, "dependency bad failed"),
        "on-failure": (Status.SUCCESS, None),
        "always": (Status.SUCCESS, None),
        "good-on-failure": (Status.SKIPPED, "no dependency failed (when: failure)"),
        "good-always": (Status.SUCCESS, None),
    }
    assert set(run.backend.started()) == {"good", "bad", "on-failure", "always", "good-always"}


@pytest.mark.parametrize("answer", [0, 1])
def test_if_and_unless_follow_a_check(fake_run: MakeRun, answer: int) -> None:
    run = fake_run({"check": Script(exit=answer)})
    result = run.run(
        f"""
        check: {{{IMG}, run: x}}
        when-true: {{{IMG}, if: check, run: x}}
        when-false: {{{IMG}, unless: check, run: x}}
        """
    )
    assert result.status is Status.SUCCESS  # a check's non-zero exit is an answer
    check = result.stages["check"]
    assert check.check is (answer == 0)
    assert check.reason == (None if answer == 0 else "check false (exit 1)")
    ran, skipped = ("when-true", "when-false") if answer == 0 else ("when-false", "when-true")
    assert result.stages[ran].status is Status.SUCCESS
    assert result.stages[skipped].status is Status.SKIPPED
    assert result.stages[skipped].reason == f"check check was {'true' if answer == 0 else 'false'}"
    assert skipped not in run.backend.started()


def test_a_failure_skips_its_dependents_and_independent_stages_carry_on(
    fake_run: MakeRun,
) -> None:
    run = fake_run({"broken": Script(exit=4), "independent": Script(seconds=0.05)})
    result = run.run(
        f"""
        broken: {{{IMG}, run: x}}
        after-broken: {{{IMG}, after: broken, run: x}}
        transitively: {{{IMG}, after: after-broken, run: x}}
        independent: {{{IMG}, run: x}}
        """
    )
    assert result.status is Status.FAILURE
    assert (result.stages["broken"].status, result.stages["broken"].reason) == (
        Status.FAILURE,
        "exit 4",
    )
    assert result.stages["after-broken"].reason == "dependency broken failed"
    assert result.stages["transitively"].reason == (
        "dependency after-broken was skipped (broken failed)"
    )
    assert result.stages["transitively"].status is Status.SKIPPED
    assert result.stages["independent"].status is Status.SUCCESS
    assert sorted(run.backend.started()) == ["broken", "independent"]


def test_backend_errors_are_stage_errors(fake_run: MakeRun) -> None:
    run = fake_run()
    run.backend.missing_images.add("gone")
    run.backend.refused.add("refused")
    result = run.run(
        f"""
        missing: {{img: gone, run: x}}
        refused: {{{IMG}, run: x}}
        fine: {{{IMG}, run: x}}
        """
    )
    assert result.status is Status.FAILURE
    missing, refused = result.stages["missing"], result.stages["refused"]
    assert missing.status is Status.ERROR and "cannot be pulled" in str(missing.reason)
    assert refused.status is Status.ERROR and "scripted refusal" in str(refused.reason)
    assert result.stages["fine"].status is Status.SUCCESS
    assert "dockercise: image 'gone' is not on this engine" in run.log("missing")


def test_retry_runs_again_with_a_fresh_volume(fake_run: MakeRun) -> None:
    attempts = [Script(exit=1, files=["half"]), Script(exit=2, files=["half"]), Script()]
    run = fake_run({"flaky": attempts, "never": Script(exit=1)})
    result = run.run(
        f"""
        flaky: {{{IMG}, retry: 2, run: x}}
        never: {{{IMG}, retry: 1, run: x}}
        """
    )
    flaky, never = result.stages["flaky"], result.stages["never"]
    assert (flaky.status, flaky.attempts, flaky.exit_code) == (Status.SUCCESS, 3, 0)
    assert (never.status, never.attempts, never.reason) == (Status.FAILURE, 2, "exit 1")
    assert [c.volume_at_start for c in run.backend.of("flaky")] == [[], [], []]
    assert sorted(run.pauses) == [1, 1, 2]  # after flaky's 1st and 2nd, never's 1st
    assert run.log("flaky").splitlines() == [
        "--- attempt 1 ---",
        "dockercise: exit 1; trying again in 0.0 s",
        "--- attempt 2 ---",
        "dockercise: exit 2; trying again in 0.0 s",
        "--- attempt 3 ---",
    ]


def test_timeout_kills_the_container_and_fails_the_stage(fake_run: MakeRun) -> None:
    run = fake_run({"slow": Script(hang=True)})
    result = run.run(
        f"""
        slow: {{{IMG}, timeout: 100ms, run: x}}
        after-slow: {{{IMG}, after: slow, run: x}}
        """
    )
    slow = result.stages["slow"]
    assert (slow.status, slow.reason, slow.exit_code) == (Status.FAILURE, "timeout", KILLED)
    assert slow.duration is not None and slow.duration < 2
    assert result.stages["after-slow"].reason == "dependency slow failed"
    (container,) = run.backend.of("slow")
    assert container.removed
    assert ("kill", container.id) in run.backend.calls


def test_an_interrupt_cancels_running_stages_and_removes_their_containers(
    fake_run: MakeRun,
) -> None:
    run = fake_run({"long": Script(stdout=["started"], hang=True), "other": Script(hang=True)})

    def interrupt_when_both_run() -> None:
        run.backend.wait_running(2)
        run.interrupt.request()

    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    result = run.run(
        f"""
        long: {{{IMG}, run: x}}
        other: {{{IMG}, run: x}}
        later: {{{IMG}, after: long, run: x}}
        """
    )
    assert result.status is Status.CANCELLED
    outcome = {n: (s.status, s.reason) for n, s in result.stages.items()}
    assert outcome == dict.fromkeys(
        ["long", "other", "later"], (Status.CANCELLED, "run interrupted")
    )
    assert run.log("long") == "started\n"
    containers = run.backend.containers
    assert sorted(c.stage for c in containers) == ["long", "other"]
    for container in containers:
        assert ("kill", container.id) in run.backend.calls
        assert container.removed
    assert run.backend.calls[-1] == ("remove_run", result.id)
    assert run.reporter.calls[-1] == ("run_finished", "cancelled")


MANY = f"""
    a: {{{IMG}, run: x}}
    b: {{{IMG}, run: x}}
    c: {{{IMG}, after: a, run: x}}
    d: {{{IMG}, after: [a, b], run: x}}
    e: {{{IMG}, after: c, when: always, run: x}}
    f: {{{IMG}, run: x}}
    """
SHORT = {name: Script(stdout=[name], seconds=0.003) for name in "abcdef"}


def _nothing_left_running(run: FakeRun, result: RunResult) -> None:
    """After a run, interrupted or not: every stage settled, stored, and its container gone."""
    assert result.status in (Status.CANCELLED, Status.SUCCESS)
    for name, stage in result.stages.items():
        assert stage.status not in (Status.RUNNING, Status.WAITING), (name, stage)
        stored = json.loads(run.store.read_bytes(result.id, f"{name}.json") or b"{}")
        assert stored.get("status") == stage.status.value, (name, stored)
    stored_run = json.loads(run.store.read_bytes(result.id, "run.json") or b"{}")
    assert stored_run["status"] == result.status.value
    for container in run.backend.containers:
        assert container.removed, container.stage
        assert container.ended.is_set() or not container.started, container.stage
    assert run.backend.calls[-1] == ("remove_run", result.id)
    assert not [t for t in threading.enumerate() if t.name.startswith("stage")]


def test_an_interrupt_at_each_call_to_the_engine_leaves_nothing_running(
    fake_run: MakeRun,
) -> None:
    """Ctrl-C at every moment the backend is called: before, between and after each step."""
    probe = fake_run(SHORT)
    probe.run(MANY, concurrency=3)
    calls = len(probe.backend.calls)
    for moment in range(1, calls + 1):
        run = fake_run(SHORT)

        def at(count: int, moment: int = moment, run: FakeRun = run) -> None:
            if count == moment:
                run.interrupt.request()

        run.backend.on_call = at
        _nothing_left_running(run, run.run(MANY, concurrency=3))


def test_an_interrupt_at_any_time_leaves_nothing_running(fake_run: MakeRun) -> None:
    """Ctrl-C from another thread at random moments (the signal handler's flag)."""
    rng = random.Random(13)
    for _ in range(40):
        run = fake_run(SHORT)
        delay = rng.uniform(0, 0.03)
        timer = threading.Timer(delay, run.interrupt.request)
        timer.start()
        try:
            _nothing_left_running(run, run.run(MANY, concurrency=3))
        finally:
            timer.cancel()


def test_an_interrupt_before_anything_runs_cancels_every_stage(fake_run: MakeRun) -> None:
    run = fake_run(SHORT)
    run.interrupt.request()
    result = run.run(MANY)
    assert result.status is Status.CANCELLED
    assert {s.status for s in result.stages.values()} == {Status.CANCELLED}
    assert run.backend.containers == []
