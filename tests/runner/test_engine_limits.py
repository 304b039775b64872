"""The operator's limits on the fake backend (SPEC §10): capped timeouts, the build time
limit, the log and /out caps, the disk limit, stages per build, containers at once, and
what every container and image build is given."""

from __future__ import annotations

import pytest

from runner import supervisor
from runner.errors import PipelineInvalid
from runner.limits import Limits, Resources
from runner.networks import Networking, network_name
from runner.outcome import Status
from tests.runner.conftest import MakeRun
from tests.runner.fake_backend import Script

IMG = "img: busybox"


def test_a_timeout_past_the_maximum_is_cut_to_it_with_a_note(fake_run: MakeRun) -> None:
    run = fake_run({"slow": Script(hang=True)})
    result = run.run(
        f"slow: {{{IMG}, timeout: 2h, run: x}}\nquick: {{{IMG}, run: x}}\n",
        limits=Limits(max_timeout=0.3),
    )
    assert (result.stages["slow"].status, result.stages["slow"].reason) == (
        Status.FAILURE,
        "timeout",
    )
    assert "timeout cut from 2 h 00 min to 0.3 s" in run.log("slow")
    assert "DOCKERCISE_MAX_TIMEOUT" in run.log("slow")
    # the default hour is cut too: no stage waits longer than the maximum
    assert "timeout cut from 1 h 00 min to 0.3 s" in run.log("quick")


def test_a_timeout_under_the_maximum_is_left_alone(fake_run: MakeRun) -> None:
    run = fake_run({"a": Script(seconds=0.05)})
    result = run.run(f"a: {{{IMG}, timeout: 10s, run: x}}\n", limits=Limits(max_timeout=3600))
    assert result.stages["a"].status is Status.SUCCESS
    assert "timeout cut" not in run.log("a")


def test_past_the_build_time_limit_the_build_is_cancelled(fake_run: MakeRun) -> None:
    run = fake_run({"long": Script(hang=True)})
    result = run.run(
        f"""
        long: {{{IMG}, run: x}}
        after-it: {{{IMG}, after: long, run: x}}
        cleanup: {{{IMG}, after: long, when: always, run: x}}
        """,
        limits=Limits(max_build_time=0.4),
    )
    outcome = {n: (s.status, s.reason) for n, s in result.stages.items()}
    assert outcome == {
        "long": (Status.CANCELLED, "build time limit"),
        "after-it": (Status.CANCELLED, "build time limit"),
        "cleanup": (Status.CANCELLED, "build time limit"),
    }
    assert result.status is Status.CANCELLED
    assert result.reason == "build time limit"
    assert result.to_json()["reason"] == "build time limit"
    (long,) = run.backend.of("long")
    assert long.killed.is_set() and long.removed


def test_a_failure_before_the_build_time_limit_still_fails_the_run(fake_run: MakeRun) -> None:
    run = fake_run({"bad": Script(exit=1), "long": Script(hang=True)})
    result = run.run(
        f"bad: {{{IMG}, run: x}}\nlong: {{{IMG}, run: x}}\n", limits=Limits(max_build_time=0.4)
    )
    assert result.status is Status.FAILURE
    assert result.stages["long"].reason == "build time limit"


def test_the_log_is_cut_at_the_cap_with_a_note_and_the_stage_goes_on(fake_run: MakeRun) -> None:
    lines = [f"line {i:03d} " + "x" * 20 for i in range(200)]
    run = fake_run({"chatty": Script(stdout=lines, stderr=["late"])})
    result = run.run(
        f"chatty: {{{IMG}, run: x}}\nnext: {{{IMG}, env: [chatty], run: x}}\n",
        limits=Limits(max_log=1000),
    )
    assert result.status is Status.SUCCESS
    log = run.log("chatty")
    kept, note = log.rsplit("\n", 2)[0], log.rsplit("\n", 2)[1]
    assert len(kept.encode()) + 1 <= 1000
    assert note.startswith("dockercise: the log is cut here, at 1000 B (DOCKERCISE_MAX_LOG)")
    assert "line 000" in log and "line 199" not in log and "late" not in log
    # /out is capped the same: what `env` items and later stages read
    assert len(result.outputs["chatty"].encode()) <= 1000
    (following,) = run.backend.of("next")
    assert following.spec.env["CHATTY"].startswith("line 000")
    notes = [t for what, t in run.reporter.calls if what == "stage_note"]
    assert any("the log is cut here" in t for t in notes)
    shown = [t for what, t in run.reporter.calls if what == "stage_output"]
    assert "chatty: line 199 " + "x" * 20 not in shown


def test_one_line_longer_than_the_cap_is_kept_up_to_it(fake_run: MakeRun) -> None:
    run = fake_run({"a": Script(stdout=["y" * 5000])})
    run.run(f"a: {{{IMG}, run: x}}\n", limits=Limits(max_log=100))
    first, note, _ = run.log("a").split("\n")
    assert first == "y" * 99
    assert "the log is cut here" in note


def test_without_a_cap_nothing_is_cut(fake_run: MakeRun) -> None:
    run = fake_run({"a": Script(stdout=["z" * 5000] * 3)})
    run.run(f"a: {{{IMG}, run: x}}\n")
    assert run.log("a") == ("z" * 5000 + "\n") * 3


def test_more_stages_than_allowed_is_a_pipeline_error(fake_run: MakeRun) -> None:
    run = fake_run()
    text = "".join(f"s{i}: {{{IMG}, run: x}}\n" for i in range(4))
    with pytest.raises(PipelineInvalid) as caught:
        run.run(text, limits=Limits(max_stages=3))
    (problem,) = caught.value.problems
    assert str(problem) == (
        ".dockercise.yml: the build has 4 stages, more than DOCKERCISE_MAX_STAGES allows (3)"
    )
    assert run.backend.calls == []  # nothing started
    # the stages a build runs count: a target and what it needs
    assert run.run(text, limits=Limits(max_stages=3), targets=["s1"]).status is Status.SUCCESS


def test_the_build_concurrency_caps_containers_at_once(fake_run: MakeRun) -> None:
    run = fake_run({f"s{i}": Script(seconds=0.1) for i in range(5)})
    head = "meta: {name: p, concurrency: 8}\n"
    result = run.run(
        head + "".join(f"s{i}: {{{IMG}, run: x}}\n" for i in range(5)),
        concurrency=6,
        limits=Limits(build_concurrency=2),
    )
    assert result.status is Status.SUCCESS
    assert run.backend.max_running == 2


def test_every_container_and_image_build_gets_the_limits(fake_run: MakeRun) -> None:
    run = fake_run()
    limits = Limits(stage_memory=2 << 30, stage_cpus=1.5, stage_pids=64, max_log=1 << 20)
    run.write({"Dockerfile": "FROM scratch\n"})
    result = run.run(
        "image: {build: ., timeout: 30s}\nuse: {img: image, run: x}\n",
        limits=limits,
        build_network="none",
    )
    assert result.status is Status.SUCCESS, result.stages
    (use,) = run.backend.of("use")
    assert use.spec.resources == Resources(2 << 30, 1.5, 64, 1 << 20)
    (build,) = run.backend.builds
    assert build["resources"] == Resources(2 << 30, 1.5, 64, 1 << 20)
    assert build["network"] == "none"
    assert isinstance(build["timeout"], float) and 0 < build["timeout"] <= 30


def test_local_runs_without_limits_give_containers_none(fake_run: MakeRun) -> None:
    run = fake_run()
    run.run(f"a: {{{IMG}, run: x}}\n")
    (a,) = run.backend.of("a")
    assert a.spec.resources == Resources()
    assert not a.spec.resources


def test_a_volume_past_the_disk_limit_fails_the_stage_and_is_not_kept(fake_run: MakeRun) -> None:
    run = fake_run({"big": Script(fill=64 * 1024), "small": Script(files=["a.txt"])})
    result = run.run(
        f"big: {{{IMG}, run: x}}\nsmall: {{{IMG}, run: x}}\n",
        limits=Limits(stage_disk=32 * 1024),
    )
    big, small = result.stages["big"], result.stages["small"]
    assert (big.status, big.reason, big.artefact) == (Status.FAILURE, "disk limit", None)
    assert "the stage wrote more than 32 KiB (DOCKERCISE_STAGE_DISK)" in run.log("big")
    assert (small.status, small.artefact) == (Status.SUCCESS, "small.zip")


def test_a_running_stage_past_the_disk_limit_is_stopped(
    fake_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "GUARD_EVERY", 0.05)
    run = fake_run({"big": Script(fill=64 * 1024, hang=True)})
    result = run.run(f"big: {{{IMG}, run: x}}\n", limits=Limits(stage_disk=32 * 1024))
    assert (result.stages["big"].status, result.stages["big"].reason) == (
        Status.FAILURE,
        "disk limit",
    )
    (big,) = run.backend.of("big")
    assert big.killed.is_set()


def test_what_a_stage_writes_outside_its_volume_counts_too(
    fake_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "GUARD_EVERY", 0.05)
    run = fake_run({"tmp": Script(layer=40 * 1024, fill=8 * 1024, hang=True)})
    result = run.run(f"tmp: {{{IMG}, run: x}}\n", limits=Limits(stage_disk=32 * 1024))
    assert (result.stages["tmp"].status, result.stages["tmp"].reason) == (
        Status.FAILURE,
        "disk limit",
    )
    assert ("disk_usage", run.backend.of("tmp")[0].id) in run.backend.calls


def test_without_a_disk_limit_nothing_is_measured(fake_run: MakeRun) -> None:
    run = fake_run({"a": Script(fill=64 * 1024, seconds=0.1)})
    result = run.run(f"a: {{{IMG}, run: x}}\n", limits=Limits(max_log=1 << 20))
    assert result.stages["a"].artefact == "a.zip"
    assert not any(call == "disk_usage" for call, _ in run.backend.calls)


def test_an_image_build_ends_soon_after_the_build_time_limit(fake_run: MakeRun) -> None:
    run = fake_run()
    run.write({"Dockerfile": "FROM scratch\n"})
    run.run("image: {build: ., timeout: 1h}\n", limits=Limits(max_build_time=5.0))
    (build,) = run.backend.builds
    assert isinstance(build["timeout"], float) and build["timeout"] <= 6.0


def test_a_builds_image_builds_join_its_own_network(fake_run: MakeRun) -> None:
    """SPEC §10: no network beyond the build's own -- which they do get, as its stages do."""
    run = fake_run()
    run.write({"Dockerfile": "FROM scratch\n"})
    result = run.run(
        "image: {build: .}\nuse: {img: image, run: x}\n",
        networking=Networking.OWN,
        build_network="none",
    )
    assert result.status is Status.SUCCESS, result.stages
    (build,) = run.backend.builds
    assert build["network"] == network_name(result.id)
    (use,) = run.backend.of("use")
    assert use.spec.network == network_name(result.id)
