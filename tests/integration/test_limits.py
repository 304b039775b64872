"""`dockercise run` under the limits its environment sets (SPEC §10), on the real engine:
the disk limit stops a stage, the log is cut and the stage goes on, containers and image
builds get memory, CPU and process limits, a bad value is a one-line error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import Outcome

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]


def test_a_stage_writing_past_the_disk_limit_is_stopped(
    project: Callable[..., Path], dockercise: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERCISE_STAGE_DISK", "1m")
    root = project(
        """
        filler:
          img: dockercise/busybox
          run: |
            i=0
            while true; do
              dd if=/dev/zero of=$OUT/part$i bs=65536 count=4 2>/dev/null
              i=$((i+1)); sleep 0.1
            done
        small: {img: dockercise/busybox, run: echo tiny > $OUT/ok.txt}
        """
    )
    started = time.monotonic()
    out = dockercise(root, "run")
    assert out.code == 1, out.err
    assert time.monotonic() - started < 30  # stopped, not at its timeout
    filler = out.stage("filler")
    assert (filler["status"], filler["reason"], filler["artefact"]) == (
        "failure",
        "disk limit",
        None,
    )
    assert "the stage wrote more than 1 MiB (DOCKERCISE_STAGE_DISK)" in out.log("filler")
    assert out.stage("small")["status"] == "success"
    assert (out.run_dir / "small.zip").is_file() and not (out.run_dir / "filler.zip").exists()


def test_a_stage_writing_past_the_disk_limit_outside_its_volume_is_stopped(
    project: Callable[..., Path], dockercise: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERCISE_STAGE_DISK", "1m")
    root = project(
        """
        filler:
          img: dockercise/busybox
          run: |
            mkdir -p /tmp/fill; i=0
            while true; do
              dd if=/dev/zero of=/tmp/fill/part$i bs=65536 count=4 2>/dev/null
              i=$((i+1)); sleep 0.1
            done
        """
    )
    started = time.monotonic()
    out = dockercise(root, "run")
    assert out.code == 1, out.err
    assert time.monotonic() - started < 30
    assert (out.stage("filler")["status"], out.stage("filler")["reason"]) == (
        "failure",
        "disk limit",
    )


def test_a_stage_printing_past_the_log_cap_is_cut_and_goes_on(
    project: Callable[..., Path], dockercise: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERCISE_MAX_LOG", "64k")
    root = project(
        """
        chatty:
          img: dockercise/busybox
          run: |
            i=0
            while [ $i -lt 20000 ]; do echo "line $i of a long story"; i=$((i+1)); done
            echo "the end" >&2
            echo done > $OUT/still-ran
        size:
          img: dockercise/busybox
          after: chatty
          run: wc -c < /out/chatty
        """
    )
    out = dockercise(root, "run", "-q")
    assert out.code == 0, out.err
    assert out.stage("chatty")["status"] == "success"
    log = (out.run_dir / "chatty.log").read_bytes()
    kept, note = log.rstrip(b"\n").rsplit(b"\n", 1)
    assert len(kept) < 64 * 1024
    assert note == (
        b"dockercise: the log is cut here, at 64 KiB (DOCKERCISE_MAX_LOG);"
        b" the stage goes on, its further output is not kept"
    )
    assert log.startswith(b"line 0 of a long story\n") and b"line 19999" not in log
    assert b"the end" not in log
    assert int(out.log("size").strip()) == 64 * 1024  # /out holds the first 64 KiB of stdout
    assert (out.run_dir / "chatty.zip").is_file()  # the stage went on to the end


def test_containers_and_image_builds_get_the_limits(
    project: Callable[..., Path],
    dockercise: Run,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    for name, value in {
        "DOCKERCISE_STAGE_MEMORY": "256m",
        "DOCKERCISE_STAGE_CPUS": "0.5",
        "DOCKERCISE_STAGE_PIDS": "64",
        "DOCKERCISE_MAX_LOG": "1m",
    }.items():
        monkeypatch.setenv(name, value)
    marker = f"limits-{tmp_path.name}"
    root = project(
        f"""
        image: {{build: ci/Dockerfile}}
        {marker}:
          img: image
          run: |
            cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max
            sleep 4
        """
    )
    (root / "ci").mkdir()
    (root / "ci" / "Dockerfile").write_text(
        "FROM dockercise/busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes\n"
    )
    seen: dict[str, object] = {}

    def inspect() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            for c in docker_client.api.containers(filters={"label": f"dockercise.stage={marker}"}):
                seen.update(docker_client.api.inspect_container(c["Id"])["HostConfig"])
            time.sleep(0.1)

    watcher = threading.Thread(target=inspect)
    watcher.start()
    out = dockercise(root, "run", "-q")
    watcher.join()
    assert out.code == 0, out.err + out.out
    assert seen, "the stage's container was never seen running"
    assert (seen["Memory"], seen["MemorySwap"]) == (256 << 20, 256 << 20)
    assert (seen["NanoCpus"], seen["PidsLimit"]) == (500_000_000, 64)
    assert seen["LogConfig"] == {"Type": "none", "Config": {}}
    assert out.log(marker).split() == [str(256 << 20), "64"]
    assert str(256 << 20) in out.log("image")  # the image build's RUN had the same memory


def test_without_the_variables_a_local_run_has_no_limits(
    project: Callable[..., Path],
    dockercise: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DOCKERCISE_STAGE_MEMORY", "DOCKERCISE_STAGE_PIDS", "DOCKERCISE_MAX_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    root = project(
        """
        probe:
          img: dockercise/busybox
          timeout: 2h
          run: cat /sys/fs/cgroup/pids/pids.max
        """
    )
    out = dockercise(root, "run", "-q")
    assert out.code == 0, out.err
    assert out.log("probe").strip() == "max"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DOCKERCISE_STAGE_MEMORY", "a lot", "DOCKERCISE_STAGE_MEMORY must be a size like 2g"),
        ("DOCKERCISE_MAX_TIMEOUT", "forever", "DOCKERCISE_MAX_TIMEOUT must be a duration"),
    ],
)
def test_a_bad_value_is_a_one_line_error_and_nothing_runs(
    project: Callable[..., Path],
    dockercise: Run,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(name, value)
    root = project("a: {img: dockercise/busybox, run: echo hi}\n")
    out = dockercise(root, "run")
    assert out.code == 2
    assert message in out.err and len(out.err.strip().splitlines()) == 1
    assert not (root / ".dockercise" / "results").exists()


def test_too_many_stages_is_a_pipeline_error(
    project: Callable[..., Path], dockercise: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERCISE_MAX_STAGES", "2")
    root = project("".join(f"s{i}: {{img: dockercise/busybox, run: 'true'}}\n" for i in range(3)))
    out = dockercise(root, "run")
    assert out.code == 2
    first, *_ = out.err.splitlines()
    assert first == (
        ".dockercise.yml: the build has 3 stages, more than DOCKERCISE_MAX_STAGES allows (2)"
    )
    assert not (root / ".dockercise" / "results").exists()


def test_an_image_build_past_the_stage_timeout_is_stopped(
    project: Callable[..., Path], dockercise: Run, docker_client: docker.DockerClient
) -> None:
    root = project("image: {build: ci/Dockerfile, timeout: 3s}\n")
    (root / "ci").mkdir()
    marker = f"stuck-{root.parent.name}"
    (root / "ci" / "Dockerfile").write_text(f"FROM dockercise/busybox\nRUN sleep 40 # {marker}\n")
    started = time.monotonic()
    out = dockercise(root, "run")
    assert time.monotonic() - started < 20
    assert out.code == 1, out.err
    assert (out.stage("image")["status"], out.stage("image")["reason"]) == ("failure", "timeout")

    def building() -> list[str]:
        found = docker_client.api.containers(all=True)
        return [c["Id"] for c in found if marker in str(c.get("Command", ""))]

    deadline = time.monotonic() + 10
    while building() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not building(), "the engine went on building"
