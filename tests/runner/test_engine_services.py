"""A stage's services on the fake backend (SPEC §14): their network, readiness, logs, removal,
limits and networking modes, in milliseconds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runner import sidecars
from runner.caching import KEPT_IMAGES
from runner.limits import Limits, Resources
from runner.masking import Masker
from runner.networks import Networking, network_name, stage_network
from runner.outcome import Status
from tests.runner.conftest import FakeRun, MakeRun
from tests.runner.fake_backend import Script

PIPE = """\
test:
  img: busybox
  services:
    db:
      img: postgres:16
      env: [{POSTGRES_PASSWORD: test}]
      ready: pg_isready
    cache: {img: redis:7}
  run: pytest
"""


@pytest.fixture(autouse=True)
def short_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service that never becomes ready is given up on in 0.3 s rather than 60."""
    monkeypatch.setattr(sidecars, "READY_TIMEOUT", 0.3)


def _gone(run: FakeRun) -> None:
    """Nothing of the stage's services is left: containers removed, network removed."""
    assert all(c.removed for c in run.backend.containers), run.backend.calls
    assert run.backend.networks == {}


def test_services_start_on_the_stages_network_before_it_and_go_after_it(
    fake_run: MakeRun,
) -> None:
    run = fake_run()
    result = run.run(PIPE)
    stage = result.stages["test"]
    assert stage.status is Status.SUCCESS, stage
    network = stage_network(result.id, "test")
    (db,) = run.backend.of("test.db")
    (cache,) = run.backend.of("test.cache")
    (test,) = run.backend.of("test")
    assert (db.spec.network, db.spec.aliases) == (network, ("db",))
    assert (cache.spec.network, cache.spec.aliases) == (network, ("cache",))
    assert test.spec.network == network
    assert db.spec.env["POSTGRES_PASSWORD"] == "test"
    assert db.spec.env["DOCKERCISE_SERVICE"] == "db"
    assert (db.spec.binds, db.spec.command, db.spec.workdir) == ([], None, None)
    assert db.spec.labels["dockercise.run"] == result.id
    assert db.spec.labels["dockercise.service"] == "db"
    assert run.backend.started() == ["test.db", "test.cache", "test"]
    calls = [c for c in run.backend.calls if c[0] in ("create_network", "remove_network")]
    assert calls == [("create_network", network), ("remove_network", network)]
    assert run.backend.tries == {"test.db": 1}
    _gone(run)
    services = stage.services
    assert services is not None
    assert [(s["name"], s["image"], s["exit_code"], s["logs"]) for s in services] == [
        ("db", "postgres:16", None, "test.db.log"),
        ("cache", "redis:7", None, "test.cache.log"),
    ]
    assert all(isinstance(s["ready"], float) for s in services)
    stored = json.loads(run.store.read_bytes(result.id, "test.json") or b"{}")
    assert [s["name"] for s in stored["services"]] == ["db", "cache"]


def test_ready_is_tried_until_it_passes(fake_run: MakeRun) -> None:
    run = fake_run()
    run.backend.ready["test.db"] = [1, 1, None, 0]
    result = run.run(PIPE)
    assert result.stages["test"].status is Status.SUCCESS
    assert run.backend.tries["test.db"] == 4
    assert "service db ready after" in run.log("test")


def test_a_service_never_ready_errors_the_stage_which_never_starts(fake_run: MakeRun) -> None:
    run = fake_run()
    run.backend.ready["test.db"] = [1]
    result = run.run(PIPE)
    stage = result.stages["test"]
    assert (stage.status, stage.reason) == (Status.ERROR, "service db not ready")
    assert run.backend.of("test") == []
    assert run.backend.tries["test.db"] >= 2
    assert stage.services is not None and stage.services[0]["ready"] is None
    _gone(run)


def test_a_service_that_exits_before_ready_errors_the_stage_with_its_code(
    fake_run: MakeRun,
) -> None:
    run = fake_run({"test.db": Script(exit=3, stderr=["FATAL: bad config"])})
    result = run.run(PIPE)
    stage = result.stages["test"]
    assert (stage.status, stage.reason) == (Status.ERROR, "service db exited (code 3) before ready")
    assert stage.services is not None and stage.services[0]["exit_code"] == 3
    assert "FATAL: bad config" in run.log("test.db")
    _gone(run)


@pytest.mark.parametrize(
    "script", [Script(exit=1), Script(hang=True)], ids=["failing", "timing-out"]
)
def test_a_stage_that_fails_still_removes_its_services_and_network(
    fake_run: MakeRun, script: Script
) -> None:
    run = fake_run({"test": script})
    result = run.run(PIPE.replace("  run: pytest", "  run: pytest\n  timeout: 1s"))
    assert result.stages["test"].status is Status.FAILURE
    _gone(run)


def test_a_run_interrupted_while_services_get_ready_cancels_and_removes_them(
    fake_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sidecars, "READY_TIMEOUT", 20.0)
    run = fake_run()
    run.backend.ready["test.db"] = [1]
    run.backend.on_call = lambda count: run.interrupt.request() if count > 12 else None
    result = run.run(PIPE)
    assert result.stages["test"].status is Status.CANCELLED
    assert run.backend.of("test") == []
    _gone(run)


def test_the_stages_timeout_before_ready_is_a_timeout(fake_run: MakeRun) -> None:
    run = fake_run()
    run.backend.ready["test.db"] = [1]
    result = run.run(PIPE.replace("  run: pytest", "  run: pytest\n  timeout: 200ms"))
    stage = result.stages["test"]
    assert (stage.status, stage.reason) == (Status.FAILURE, "timeout")
    _gone(run)


def test_service_output_is_kept_masked_in_its_own_log(fake_run: MakeRun) -> None:
    run = fake_run({"test.db": Script(stdout=["password is s3cr3t-value"], hang=True)})
    text = PIPE.replace("{POSTGRES_PASSWORD: test}", "{POSTGRES_PASSWORD: s3cr3t-value}")
    result = run.run(text, masker=Masker(["s3cr3t-value"]))
    assert result.stages["test"].status is Status.SUCCESS
    assert "password is ***" in run.log("test.db"), run.log("test.db")
    assert "s3cr3t" not in run.log("test.db")


def test_a_nolog_stage_keeps_no_service_log(fake_run: MakeRun) -> None:
    run = fake_run({"test.db": Script(stdout=["hello"], hang=True)})
    result = run.run(PIPE.replace("  run: pytest", "  run: pytest\n  noLog: true"))
    assert result.stages["test"].status is Status.SUCCESS
    assert run.store.read_bytes(result.id, "test.db.log") is None


def test_decrypted_secrets_and_external_variables_reach_a_service(fake_run: MakeRun) -> None:
    run = fake_run()
    text = PIPE.replace("[{POSTGRES_PASSWORD: test}]", "[{POSTGRES_PASSWORD: x}, TOKEN]")
    run.run(
        text,
        literals={("test/db", "POSTGRES_PASSWORD"): "decrypted"},
        variables=[{"TOKEN": "tok"}],
    )
    (db,) = run.backend.of("test.db")
    assert (db.spec.env["POSTGRES_PASSWORD"], db.spec.env["TOKEN"]) == ("decrypted", "tok")


def test_services_get_the_limits_stages_get(fake_run: MakeRun) -> None:
    run = fake_run()
    limits = Limits(stage_memory=1 << 30, stage_cpus=1.0, stage_pids=64, max_log=1 << 20)
    run.run(PIPE, limits=limits)
    (db,) = run.backend.of("test.db")
    assert db.spec.resources == Resources(1 << 30, 1.0, 64, 1 << 20)


def test_in_a_bot_build_the_stage_stays_on_the_builds_network_too(fake_run: MakeRun) -> None:
    run = fake_run()
    result = run.run(PIPE, networking=Networking.OWN)
    (test,) = run.backend.of("test")
    (db,) = run.backend.of("test.db")
    own = stage_network(result.id, "test")
    assert (test.spec.network, test.spec.joins) == (network_name(result.id), (own,))
    assert test.spec.aliases == ("test",)
    assert db.spec.network == own
    assert run.backend.internal == set()


def test_without_a_network_the_services_network_is_internal(fake_run: MakeRun) -> None:
    run = fake_run()
    result = run.run(PIPE, networking=Networking.NONE)
    own = stage_network(result.id, "test")
    (test,) = run.backend.of("test")
    assert (test.spec.network, test.spec.joins) == (own, ())
    assert own in run.backend.internal


def test_a_service_image_kept_for_another_repository_is_refused(fake_run: MakeRun) -> None:
    run = fake_run()
    result = run.run(PIPE.replace("redis:7", f"{KEPT_IMAGES}other"))
    stage = result.stages["test"]
    assert stage.status is Status.FAILURE
    assert stage.reason == (
        f"service cache: image '{KEPT_IMAGES}other' is a layer cache kept for another repository"
    )
    assert run.backend.of("test.db") == []


def test_a_missing_service_image_errors_the_stage(fake_run: MakeRun) -> None:
    run = fake_run()
    run.backend.missing_images.add("redis:7")
    result = run.run(PIPE)
    stage = result.stages["test"]
    assert stage.status is Status.ERROR and "redis:7" in (stage.reason or "")
    _gone(run)


def test_each_attempt_gets_fresh_services_and_one_log(fake_run: MakeRun) -> None:
    run = fake_run(
        {"test": [Script(exit=1), Script()], "test.db": Script(stdout=["up"], hang=True)}
    )
    result = run.run(PIPE.replace("  run: pytest", "  run: pytest\n  retry: 1"))
    assert result.stages["test"].status is Status.SUCCESS
    first, second = run.backend.of("test.db")
    assert first.spec.network == stage_network(result.id, "test")
    assert second.spec.network == stage_network(result.id, "test", 2) != first.spec.network
    assert run.log("test.db").count("up") == 2
    _gone(run)


def test_a_matrix_stage_gets_its_image_variables_in_service_images(fake_run: MakeRun) -> None:
    run = fake_run()
    text = (
        "t:\n  img: busybox\n  matrix: {pg: [15, 16]}\n"
        "  services: {db: {img: 'postgres:${pg}'}}\n  run: x\n"
    )
    result = run.run(text)
    assert result.status is Status.SUCCESS
    images = sorted(c.spec.image for c in run.backend.containers if "service" in str(c.spec.labels))
    assert images == ["postgres:15", "postgres:16"]
    names = {stage_network(result.id, "t[pg=15]"), stage_network(result.id, "t[pg=16]")}
    assert len(names) == 2


def test_two_stages_with_services_at_once_each_have_their_own_network(fake_run: MakeRun) -> None:
    run = fake_run({"a": Script(seconds=0.2), "b": Script(seconds=0.2)})
    text = "".join(
        f"{n}:\n  img: busybox\n  services: {{db: {{img: pg}}}}\n  run: x\n" for n in "ab"
    )
    result = run.run(text)
    assert result.status is Status.SUCCESS
    (a,) = run.backend.of("a.db")
    (b,) = run.backend.of("b.db")
    assert a.spec.network != b.spec.network
    _gone(run)


def test_a_stage_and_its_services_count_against_the_containers_at_once(
    fake_run: MakeRun,
) -> None:
    run = fake_run({"a": Script(seconds=0.2), "b": Script(seconds=0.1), "c": Script(seconds=0.1)})
    text = (
        "a:\n  img: busybox\n  services: {db: {img: pg}, mq: {img: mq}}\n  run: x\n"
        "b: {img: busybox, run: x}\nc: {img: busybox, run: x}\n"
    )
    result = run.run(text, concurrency=8, limits=Limits(build_concurrency=3))
    assert result.status is Status.SUCCESS
    events = run.backend.events
    assert events.index(("end", "a")) < events.index(("start", "b"))
    assert events.index(("end", "a")) < events.index(("start", "c"))


def test_a_stage_with_more_services_than_slots_still_runs_alone(fake_run: MakeRun) -> None:
    run = fake_run({"a": Script(seconds=0.1), "b": Script(seconds=0.1)})
    services = ", ".join(f"s{i}: {{img: pg}}" for i in range(4))
    text = (
        f"a:\n  img: busybox\n  services: {{{services}}}\n  run: x\nb: {{img: busybox, run: x}}\n"
    )
    result = run.run(text, limits=Limits(build_concurrency=2))
    assert result.status is Status.SUCCESS
    events = run.backend.events
    assert events.index(("end", "a")) < events.index(("start", "b"))


def test_the_stage_json_lists_its_services_while_it_runs(
    fake_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once each has started, and again once ready: the run page and `dockercise logs` find
    them while the stage runs, not only once it has ended."""
    run = fake_run({"test.db": Script(stdout=["db says hello"], hang=True)})
    written: list[dict[str, Any]] = []
    write_json = run.store.write_json

    def record(run_id: str, name: str, data: dict[str, object]) -> None:
        if name == "test.json":
            written.append(json.loads(json.dumps(data)))
        write_json(run_id, name, data)

    monkeypatch.setattr(run.store, "write_json", record)
    result = run.run(PIPE)
    assert result.stages["test"].status is Status.SUCCESS
    running = [w for w in written if w["status"] == "running"]
    listed = [
        [(s["name"], s["ready"] is not None) for s in w.get("services") or []] for w in running
    ]
    assert listed == [
        [],
        [("db", False)],
        [("db", False), ("cache", True)],  # a service without `ready` is ready once started
        [("db", True), ("cache", True)],
    ]
    assert all(w["logs"] is None and w["finished"] is None for w in running)
    assert written[-1]["status"] == "success"
    # Its output is its log's, never the console's.
    assert not any("db says hello" in text for _, text in run.reporter.calls)
    assert "db says hello" in run.log("test.db")


def test_a_retry_s_services_are_listed_as_running_again(
    fake_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = fake_run({"test": Script(exit=1)})
    statuses: list[str] = []
    write_json = run.store.write_json

    def record(run_id: str, name: str, data: dict[str, object]) -> None:
        if name == "test.json":
            statuses.append(str(data["status"]))
        write_json(run_id, name, data)

    monkeypatch.setattr(run.store, "write_json", record)
    result = run.run(PIPE.replace("  run: pytest", "  run: pytest\n  retry: 1"))
    assert result.stages["test"].attempts == 2
    assert statuses == ["running"] * 7 + ["failure"]  # not the first attempt's failure


def test_a_service_not_ready_has_its_last_lines_noted_masked(fake_run: MakeRun) -> None:
    lines = [f"line {i}" for i in range(15)] + ["token s3cr3t-value", "x" * 1000]
    run = fake_run({"test.db": Script(exit=3, stdout=lines)})
    text = PIPE.replace("{POSTGRES_PASSWORD: test}", "{POSTGRES_PASSWORD: s3cr3t-value}")
    result = run.run(text, masker=Masker(["s3cr3t-value"]))
    assert result.stages["test"].reason == "service db exited (code 3) before ready"
    notes = [t for kind, t in run.reporter.calls if kind == "stage_note"]
    reason = notes.index("test: service db exited (code 3) before ready")
    tail = [f"test: db | line {i}" for i in range(7, 15)]
    assert notes[reason + 1 :] == [*tail, "test: db | token ***", f"test: db | {'x' * 300}"]
    assert "dockercise: db | token ***" in run.log("test")
    assert not any("s3cr3t" in t for _, t in run.reporter.calls)
    assert "line 0" in run.log("test.db")  # the whole of it is in its own log


def test_a_nolog_stage_notes_no_service_lines(fake_run: MakeRun) -> None:
    run = fake_run({"test.db": Script(exit=3, stdout=["private"])})
    result = run.run(PIPE.replace("  run: pytest", "  run: pytest\n  noLog: true"))
    assert result.stages["test"].status is Status.ERROR
    assert not any("private" in t for _, t in run.reporter.calls)
    assert "private" not in run.log("test")
