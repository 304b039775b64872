"""A run's own network on the fake backend (SPEC §10): made before any stage, every stage on
it under its name when that is a DNS label, removed with the run; and the names themselves."""

from __future__ import annotations

import os
import re
import time

import pytest

from runner.errors import NetworkFailed
from runner.networks import Networking, bridge_name, dns_aliases, network_name
from runner.outcome import Status
from tests.runner.conftest import MakeRun
from tests.runner.fake_backend import Script

IMG = "img: busybox"
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@pytest.mark.parametrize(
    ("stage", "alias"),
    [
        ("build", "build"),
        ("db-1", "db-1"),
        ("A1", "A1"),
        ("x" * 63, "x" * 63),
        ("x" * 64, None),
        ("-lead", None),
        ("trail-", None),
        ("under_score", None),
        ("a.b", None),
        ("test[py=3.12]", None),
        ("été", None),
        ("", None),
        ("new\nline", None),
    ],
)
def test_only_a_dns_label_is_an_alias(stage: str, alias: str | None) -> None:
    assert dns_aliases([stage, "other"]).get(stage) == alias


def test_names_differing_only_in_case_get_no_alias() -> None:
    assert dns_aliases(["Build", "build", "test", "Other"]) == {"test": "test", "Other": "Other"}


def test_aliases_of_many_stages_in_linear_time() -> None:
    names = [f"stage-{i}" for i in range(100_000)]
    started = time.perf_counter()
    assert len(dns_aliases(names)) == len(names)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("run_id", "stage"),
    [
        ("20261130T083000123Z-0123abcd", None),
        ("../../etc/passwd", None),
        ("run id; rm -rf /", "stage name\n"),
        ("x" * 300, "y" * 300),
        ("r", "test[py=3.12]"),
    ],
)
def test_network_names_are_spelled_as_docker_allows(run_id: str, stage: str | None) -> None:
    name = network_name(run_id, stage)
    assert DOCKER_NAME.match(name), name
    assert name.startswith("dockercise-") and len(name) <= 128


def test_bridge_interfaces_have_one_prefix_and_fit_linux() -> None:
    names = {bridge_name(network_name(f"run-{i}")) for i in range(1000)}
    assert len(names) == 1000
    assert all(re.fullmatch(r"dcx-[0-9a-f]{11}", n) for n in names)


PIPELINE = f"""
server: {{{IMG}, run: x}}
client: {{{IMG}, after: server, run: x}}
"matrix[a=1]": {{{IMG}, run: x}}
"""


def test_a_run_of_its_own_network_joins_every_stage_by_name(fake_run: MakeRun) -> None:
    run = fake_run({"server": Script(seconds=0.05)})
    made: dict[str, dict[str, str]] = {}
    run.backend.on_call = lambda _: made.update(run.backend.networks)
    result = run.run(PIPELINE, networking=Networking.OWN)
    assert result.status is Status.SUCCESS
    name = network_name(result.id)
    assert ("create_network", name) in run.backend.calls
    first_create = next(i for i, c in enumerate(run.backend.calls) if c[0] == "create")
    assert run.backend.calls.index(("create_network", name)) < first_create
    specs = {c.stage: c.spec for c in run.backend.containers}
    assert {s: spec.network for s, spec in specs.items()} == dict.fromkeys(specs, name)
    assert specs["server"].aliases == ("server",)
    assert specs["client"].aliases == ("client",)
    assert specs["matrix[a=1]"].aliases == ()  # not a DNS label: reached by no name
    assert run.backend.networks == {}  # removed with the run
    assert made[name]["dockercise.run"] == result.id
    assert made[name]["dockercise.owner.pid"] == str(os.getpid())  # swept if this process dies


def test_a_failed_run_removes_its_network_too(fake_run: MakeRun) -> None:
    run = fake_run({"server": Script(exit=1)})
    result = run.run(PIPELINE, networking=Networking.OWN)
    assert result.status is Status.FAILURE
    assert ("create_network", network_name(result.id)) in run.backend.calls
    assert run.backend.networks == {}


def test_a_network_the_engine_refuses_ends_the_run_before_any_stage(fake_run: MakeRun) -> None:
    run = fake_run()
    run.backend.refuse_networks = True
    with pytest.raises(NetworkFailed, match="cannot create the network dockercise-"):
        run.run(PIPELINE, networking=Networking.OWN)
    assert run.backend.containers == []
    assert [c[0] for c in run.backend.calls] == ["create_network", "remove_run"]


def test_no_network_at_all(fake_run: MakeRun) -> None:
    run = fake_run()
    run.run(PIPELINE, networking=Networking.NONE)
    assert not any(c[0] == "create_network" for c in run.backend.calls)
    assert {c.spec.network for c in run.backend.containers} == {"none"}
    assert {c.spec.aliases for c in run.backend.containers} == {()}


@pytest.mark.parametrize("meta", ["", "meta: {network: host}\n"])
def test_local_runs_keep_meta_network_as_written(fake_run: MakeRun, meta: str) -> None:
    run = fake_run()
    run.run(meta + PIPELINE)
    assert not any(c[0] == "create_network" for c in run.backend.calls)
    assert {c.spec.network for c in run.backend.containers} == {"host" if meta else None}
