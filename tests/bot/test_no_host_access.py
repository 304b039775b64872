"""No host access (SPEC §10), through the bot, the fake GitHub and the real engine: a network of
each build's own, `meta.network`, host paths and build contexts resolved, the start-up check.

No test sends anything to 169.254.169.254 or to any address but containers it made: every
name a stage looks up exists on its network when it looks it up (the engine's DNS forwards
unknown names to the host's resolver), and the start-up check is pointed at a test container.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.jobs import Job
from bot.settings import Settings
from runner.networks import bridge_name
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import BIN, Bot, build_now, push_job, wait_for

pytestmark = pytest.mark.docker

IMG = "dockercise/busybox"


def _build(settings: Settings, job: Job) -> None:
    build_now(settings, job).close()


def _final(github: FakeGitHub, sha: str) -> dict[str, Any]:
    done = [s for s in github.statuses_for(sha) if s["state"] != "pending"]
    assert done, github.statuses_for(sha)
    return done[-1]


def _stages(settings: Settings, repo: str, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stored JSON of each stage of the run a final status links to."""
    run = Path(settings.results) / repo / "run" / str(status["target_url"]).rsplit("/", 1)[1]
    names = [s["name"] for s in json.loads((run / "run.json").read_text())["stages"]]
    return {n: json.loads((run / f"{n}.json").read_text()) for n in names}


def _log(settings: Settings, repo: str, status: dict[str, Any], stage: str) -> str:
    run = Path(settings.results) / repo / "run" / str(status["target_url"]).rsplit("/", 1)[1]
    return (run / f"{stage}.log").read_text(errors="replace")


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[list[Any]]:
    """Containers and networks a test makes itself, removed at its end."""
    made: list[Any] = []
    yield made
    for thing in reversed(made):
        with contextlib.suppress(docker.errors.NotFound):
            thing.remove(force=True) if hasattr(thing, "exec_run") else thing.remove()


def _networks_of(docker_client: docker.DockerClient, run_id: str) -> list[Any]:
    found: list[Any] = docker_client.networks.list(filters={"label": f"dockercise.run={run_id}"})
    return found


# --- a network of each build's own -------------------------------------------------------

# Waits (at most 30 s) for the test to say stop: meanwhile its name `np-svc` is live.
HOLDING = f"""
np-svc:
  img: {IMG}
  run: |
    mkdir -p /tmp
    i=0
    while [ ! -f /tmp/stop ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
"""

# `client` looks `np-svc` up only once `np-svc` runs (it touched /sig/up): a name that
# does not exist yet would be forwarded to the host's resolver.
TALKING = f"""
np-svc:
  img: {IMG}
  vol: ["{{signals}}:/sig:rw"]
  run: |
    echo from-b | timeout 30 nc -l -p 8080 &
    touch /sig/up
    wait
client:
  img: {IMG}
  vol: ["{{signals}}:/sig"]
  run: |
    mkdir -p /tmp
    i=0
    while [ ! -f /sig/up ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    nslookup np-svc
    for i in $(seq 50); do
      timeout 3 nc -w 2 np-svc 8080 </dev/null > /tmp/got && grep -q from- /tmp/got && break
      sleep 0.2
    done
    echo "got: $(cat /tmp/got)"
"""


def test_each_build_has_a_network_of_its_own_reached_by_stage_name(
    settings: Settings, github: FakeGitHub, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    signals.chmod(0o777)
    settings = replace(settings, allowed_host_paths=(str(signals),))
    holding_sha = github.push("octo/a", {".dockercise.yml": HOLDING})
    holding = threading.Thread(
        target=_build, args=(settings, push_job(github, "octo/a", holding_sha))
    )
    holding.start()
    try:

        def held() -> Any:
            running = docker_client.containers.list(
                filters={"label": "dockercise.stage=np-svc", "status": "running"}
            )
            return running[0] if running else None

        svc_a = wait_for(held, 60)
        run_a = svc_a.labels["dockercise.run"]
        networks = svc_a.attrs["NetworkSettings"]["Networks"]
        assert list(networks) == [f"dockercise-{run_a}"]  # only its own, not `bridge` or `host`
        (own,) = networks.values()
        assert "np-svc" in own["Aliases"]
        address_a = own["IPAddress"]
        (network_a,) = _networks_of(docker_client, run_a)
        assert network_a.name == f"dockercise-{run_a}"
        bridge = network_a.attrs["Options"]["com.docker.network.bridge.name"]
        assert bridge == bridge_name(network_a.name)  # `dcx-...`: what the egress policy matches

        talking_sha = github.push("octo/b", {".dockercise.yml": TALKING.format(signals=signals)})
        _build(settings, push_job(github, "octo/b", talking_sha))
        status = _final(github, talking_sha)
        assert status["state"] == "success", status
        log = _log(settings, "octo/b", status, "client")
        assert "got: from-b" in log  # its own build's `np-svc`, by name
        resolved = set(re.findall(r"Address: ([0-9.]+)$", log, re.MULTILINE))
        assert resolved and address_a not in resolved  # never the other build's `np-svc`
        svc_a.exec_run(["touch", "/tmp/stop"])
    finally:
        holding.join(60)
    assert _final(github, holding_sha)["state"] == "success"
    assert _networks_of(docker_client, run_a) == []  # removed with the run
    run_b = _final(github, talking_sha)["target_url"].rsplit("/", 1)[1]
    assert _networks_of(docker_client, run_b) == []


@pytest.mark.parametrize("network", ["host", "bridge", "container:abc"])
def test_meta_network_other_than_none_ends_the_build_error_before_anything_runs(
    settings: Settings, github: FakeGitHub, network: str
) -> None:
    pipeline = f"meta: {{network: '{network}'}}\nx: {{img: {IMG}, run: echo ran}}\n"
    sha = github.push("octo/net", {".dockercise.yml": pipeline})
    _build(settings, push_job(github, "octo/net", sha))
    (status,) = github.statuses_for(sha)  # not even `build running`
    assert status["state"] == "error"
    assert status["description"].startswith(f"build error: meta.network '{network}' is not")
    assert "\n" not in status["description"]
    assert not (Path(settings.results) / "octo/net").exists()  # no run at all


def test_meta_network_none_gives_no_network_at_all(settings: Settings, github: FakeGitHub) -> None:
    pipeline = f"meta: {{network: none}}\nx: {{img: {IMG}, run: ls /sys/class/net}}\n"
    sha = github.push("octo/none", {".dockercise.yml": pipeline})
    _build(settings, push_job(github, "octo/none", sha))
    status = _final(github, sha)
    assert status["state"] == "success"
    assert _log(settings, "octo/none", status, "x").split() == ["lo"]


# --- host paths ----------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """An allowed folder with a link out of it, and the secret the link leads to."""
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    (allowed / "data" / "file").write_text("allowed data\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    (allowed / "link").symlink_to(outside)
    allowed.chmod(0o777)
    return allowed


HOST_PATHS = f"""
plain:
  img: {IMG}
  vol: ["{{allowed}}/data:/data"]
  run: cat /data/file
linked:
  img: {IMG}
  vol: ["{{allowed}}/link:/x"]
  run: cat /x/secret
through:
  img: {IMG}
  vol: ["{{allowed}}/link/secret:/x"]
  run: cat /x
plant:
  img: {IMG}
  vol: ["{{allowed}}:/shared:rw"]
  run: ln -s /etc /shared/planted
victim:
  img: {IMG}
  after: plant
  vol: ["{{allowed}}/planted:/x"]
  run: cat /x/hostname /x/passwd
"""


def test_host_paths_through_links_are_refused_even_planted_by_a_stage(
    settings: Settings, github: FakeGitHub, host: Path
) -> None:
    settings = replace(settings, allowed_host_paths=(str(host),))
    sha = github.push("octo/paths", {".dockercise.yml": HOST_PATHS.format(allowed=host)})
    _build(settings, push_job(github, "octo/paths", sha))
    status = _final(github, sha)
    assert status["state"] == "failure"
    stages = _stages(settings, "octo/paths", status)
    assert {n: s["status"] for n, s in stages.items()} == {
        "plain": "success",
        "linked": "failure",
        "through": "failure",
        "plant": "success",
        "victim": "failure",
    }
    assert stages["linked"]["reason"] == (
        f"host volume {host}/link is or passes through a symbolic link (to"
        f" {host.parent}/outside): not allowed in bot builds"
    )
    assert "passes through a symbolic link" in stages["through"]["reason"]
    assert stages["victim"]["reason"] == (
        f"host volume {host}/planted is or passes through a symbolic link (to /etc):"
        " not allowed in bot builds"
    )
    assert (host / "planted").is_symlink()  # planted indeed, and never mounted
    assert "allowed data" in _log(settings, "octo/paths", status, "plain")
    stored = "".join(
        p.read_text(errors="replace")
        for p in (Path(settings.results) / "octo/paths").rglob("*")
        if p.is_file()
    )
    assert "host secret" not in stored and "root:x:0:0" not in stored


def test_a_trusted_repository_mounts_host_paths_as_written(
    settings: Settings, github: FakeGitHub, host: Path
) -> None:
    pipeline = f'linked: {{img: {IMG}, vol: ["{host}/link:/x"], run: cat /x/secret}}\n'
    sha = github.push("octo/trusted", {".dockercise.yml": pipeline})
    _build(
        replace(settings, trusted_repos=frozenset({"octo/trusted"})),
        push_job(github, "octo/trusted", sha),
    )
    status = _final(github, sha)
    assert status["state"] == "success"
    assert "host secret" in _log(settings, "octo/trusted", status, "linked")


# --- build contexts ------------------------------------------------------------------------

DOCKERFILE = f"FROM {IMG}\nCOPY . /ctx\n"


def test_symlinked_build_contexts_dockerfiles_and_dockerignores_are_refused(
    settings: Settings, github: FakeGitHub, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-context"
    outside.mkdir()
    (outside / "Dockerfile").write_text(DOCKERFILE)
    (outside / "secret").write_text("host secret\n")
    pipeline = """
plain: {build: plain}
context: {build: context}
inner: {build: inner}
dockerfile: {build: df}
dockerignore: {build: ignore}
passwd: {img: plain, run: "[ -L /ctx/passwd ] && echo a link; ls -l /ctx/passwd"}
"""
    sha = github.push(
        "octo/contexts",
        {
            ".dockercise.yml": pipeline,
            "plain/Dockerfile": DOCKERFILE,
            "df/real": DOCKERFILE,
            "ignore/Dockerfile": DOCKERFILE,
        },
        links={
            "plain/passwd": "/etc/passwd",  # inside a context: archived as a link
            "context": str(outside),
            "inner": "plain",  # even a link that stays in the checkout
            "df/Dockerfile": "real",
            "ignore/.dockerignore": "/etc/passwd",
        },
    )
    _build(settings, push_job(github, "octo/contexts", sha))
    status = _final(github, sha)
    assert status["state"] == "failure"
    stages = _stages(settings, "octo/contexts", status)
    reasons = {n: s.get("reason") for n, s in stages.items() if s["status"] != "success"}
    assert reasons == {
        "context": "build context 'context' passes through a symbolic link ('context'):"
        " not allowed in bot builds",
        "inner": "build context 'inner' passes through a symbolic link ('inner'):"
        " not allowed in bot builds",
        "dockerfile": "Dockerfile 'df/Dockerfile' passes through a symbolic link"
        " ('df/Dockerfile'): not allowed in bot builds",
        "dockerignore": ".dockerignore 'ignore/.dockerignore' passes through a symbolic link"
        " ('ignore/.dockerignore'): not allowed in bot builds",
    }
    log = _log(settings, "octo/contexts", status, "passwd")
    assert "a link" in log and "/ctx/passwd -> /etc/passwd" in log
    assert "root:x:0:0" not in log


# --- the start-up check --------------------------------------------------------------------


def test_a_worker_warns_at_start_up_when_a_build_reaches_the_metadata_address(
    bot: Bot, docker_client: docker.DockerClient, containers: list[Any]
) -> None:
    network = docker_client.networks.create("dockercise-test-metadata", driver="bridge")
    containers.append(network)
    svc = docker_client.containers.run(
        IMG,
        ["sh", "-c", "mkdir -p /w && echo meta > /w/index.html && httpd -f -p 8080 -h /w"],
        detach=True,
        network="dockercise-test-metadata",
        labels={"dockercise.test": "metadata"},
    )
    containers.append(svc)
    svc.reload()
    address = svc.attrs["NetworkSettings"]["Networks"]["dockercise-test-metadata"]["IPAddress"]
    bot.env |= {"DOCKERCISE_METADATA_PROBE": f"{address}:8080", "DOCKERCISE_PROBE_IMAGE": IMG}
    bot.start(str(BIN / "dockercise"), "worker")
    wait_for(lambda: "can reach the metadata address" in bot.output(), 60)
    assert f"{address}:8080" in bot.output()
    bot.stop()

    bot.env["DOCKERCISE_METADATA_PROBE"] = f"{address}:8081"  # a closed port: nothing answers
    bot.start(str(BIN / "dockercise"), "worker")
    wait_for(lambda: f"builds cannot reach the metadata address {address}:8081" in bot.output())
    assert bot.output().count("can reach the metadata address") == 1
    probes = docker_client.containers.list(
        all=True, filters={"label": "dockercise.stage=metadata-probe"}
    )
    assert probes == []
