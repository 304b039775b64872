"""Services (SPEC §14): a stage with one service against the same stage alone, in one run.

    .venv/bin/python bench/services.py [--reps N]

Each sample is one `dockercise run -q -j 1` of a pipeline with two stages:
`alone` (runs `true`) and `served` (one service, busybox's httpd, with a
`ready` command; the stage fetches the service's page by its name).  From
the stages' JSON: added = served's duration - alone's - the service's own
start (its `ready` seconds: from the creation of its container until
`ready` passed).  What remains is what services cost beyond that: the
stage's network made, and the stage's container started on it (a
user-defined network costs the engine more than its default bridge).  The
services are stopped and removed off the stage's clock, as containers are.

The floor: the same Docker work done by a bare script on the docker SDK,
nothing else (no pipeline, no results): a container `true` alone, then a
network, the service's container, `ready` tried as dockercise tries it, the
stage's container on that network; the service's removal (with its kill) and
the network's off the clock, as dockercise does.  Its added time
is what any engine in Python on the SDK pays.

Prints a Markdown table and writes it to bench/latest-services.md.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from common import IMAGE, machine, publish

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.sidecars import READY_EVERY, READY_PAUSES  # noqa: E402

DOCKERCISE = Path(sys.executable).parent / "dockercise"
SERVE = "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www"
READY = "wget -q -O- http://127.0.0.1:8080/"
PIPELINE = f"""
alone:
  img: {IMAGE}
  run: "true"
served:
  img: {IMAGE}
  services:
    web:
      img: {IMAGE}
      run: {SERVE}
      ready: {READY}
  run: wget -q -O- http://web:8080/ > /dev/null
"""
GOAL = 0.3


def ours(project: Path) -> tuple[float, float, float]:
    """One run: (alone's seconds, served's seconds, the service's ready seconds)."""
    done = subprocess.run(
        [str(DOCKERCISE), "run", "-q", "-j", "1", "-C", str(project)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"dockercise run failed: {done.stdout}{done.stderr}")
    run = sorted((project / ".dockercise" / "results" / "run").iterdir())[-1]
    alone = json.loads((run / "alone.json").read_text())
    served = json.loads((run / "served.json").read_text())
    return alone["duration"], served["duration"], served["services"][0]["ready"]


def floor() -> tuple[float, float, float]:
    """The same containers through the SDK alone: (alone, served, ready) seconds."""
    import docker

    api = docker.from_env().api
    removals: list[threading.Thread] = []

    def remove_later(*containers: str, network: str | None = None) -> None:
        def remove() -> None:
            for c in containers:
                api.remove_container(c, force=True)
            if network is not None:
                api.remove_network(network)

        thread = threading.Thread(target=remove)
        thread.start()
        removals.append(thread)

    def container(command: str, network: str | None = None) -> None:
        config = api.create_host_config(network_mode=network)
        c = api.create_container(IMAGE, ["/bin/sh", "-c", command], host_config=config)["Id"]
        stream = api.attach(c, stdout=True, stderr=True, stream=True, demux=True)
        api.start(c)
        for _ in stream:
            pass
        api.wait(c)
        stream._response.close()
        remove_later(c)

    started = time.monotonic()
    container("true")
    alone = time.monotonic() - started

    started = time.monotonic()
    network = f"bench-services-{uuid.uuid4().hex[:8]}"
    api.create_network(network, driver="bridge")
    up = time.monotonic()
    networking = api.create_networking_config(
        {network: api.create_endpoint_config(aliases=["web"])}  # type: ignore[dict-item]
    )
    service = api.create_container(
        IMAGE,
        ["/bin/sh", "-c", SERVE],
        host_config=api.create_host_config(network_mode=network),
        networking_config=networking,
    )["Id"]
    api.start(service)
    tries = 0
    while True:
        ex = api.exec_create(service, ["/bin/sh", "-c", READY], stdout=False, stderr=False)
        api.exec_start(ex["Id"], detach=True)
        while (info := api.exec_inspect(ex["Id"]))["Running"] or info["ExitCode"] is None:
            time.sleep(0.01)
        if info["ExitCode"] == 0:
            break
        time.sleep(READY_PAUSES[tries] if tries < len(READY_PAUSES) else READY_EVERY)
        tries += 1
    ready = time.monotonic() - up
    container("wget -q -O- http://web:8080/ > /dev/null", network)
    remove_later(service, network=network)  # killed by the forced removal
    served = time.monotonic() - started
    for thread in removals:
        thread.join()
    return alone, served, ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    mine: list[tuple[float, float, float]] = []
    bare: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / ".dockercise.yml").write_text(PIPELINE)
        ours(project)  # warm-up: the image, the binaries, the bytecode
        floor()
        for _ in range(args.reps):  # the two take turns
            mine.append(ours(project))
            bare.append(floor())

    def added(samples: list[tuple[float, float, float]]) -> list[float]:
        return [served - alone - ready for alone, served, ready in samples]

    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} s"

    ours_added, floor_added = added(mine), added(bare)
    met = "met" if statistics.median(ours_added) <= GOAL else "**missed**"
    rows = [
        "| case | stage alone | stage with the service | service's own start (ready)"
        " | added | goal |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| (s1) a stage with one service (busybox httpd, `ready` by wget), dockercise"
        f" | {median([s[0] for s in mine])} | {median([s[1] for s in mine])}"
        f" | {median([s[2] for s in mine])} | {median(ours_added)} | ≤ {GOAL} s ({met}) |",
        f"| (s0) the floor: the same containers through the docker SDK, nothing else"
        f" | {median([s[0] for s in bare])} | {median([s[1] for s in bare])}"
        f" | {median([s[2] for s in bare])} | {median(floor_added)} | for information |",
    ]
    samples = [
        "- (s1) added, each sample: " + ", ".join(f"{a:.3f}" for a in ours_added),
        "- (s0) added, each sample: " + ", ".join(f"{a:.3f}" for a in floor_added),
    ]
    publish(
        "Services beside a stage",
        [machine(), "\n".join(rows), "\n".join(samples)],
        Path(__file__).parent / "latest-services.md",
    )


if __name__ == "__main__":
    main()
