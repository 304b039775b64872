"""Caches and kept layers (SPEC §13): a second run against the first, in fresh projects.

    .venv/bin/python bench/caches.py [--reps N]

(k1) a stage whose `cache` path it fills with 100 MB when empty (100 files of
1 MiB from /dev/urandom, after a `sleep 5` that stands for downloading them:
100 MB at 20 MB/s); the second run restores them and skips both.
(k2) a `build` stage whose Dockerfile has a slow step (`RUN sleep 8`); the
second build starts from the kept layers.  Each second build's log is checked:
a step that made a container (`Running in`) is counted beside the samples.
(k2f) the floor of (k2), in the same rounds: a Python process that only builds
the same Dockerfile through the docker SDK (the first time without cache, the
second from the first's image), timed as a whole process as dockercise is.

Each sample is a fresh project: `dockercise run -q` twice, each timed as a
whole process.  Prints a Markdown table and writes it to bench/latest-caches.md.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner import caching  # noqa: E402

DOCKERCISE = Path(sys.executable).parent / "dockercise"
IMAGE = "dockercise/busybox"
FILL = f"""
fetch:
  img: {IMAGE}
  cache:
    - path: /deps
      key: deps.lock
  run: |
    if [ ! -f /deps/done ]; then
      sleep 5
      i=0; while [ $i -lt 100 ]; do head -c 1048576 /dev/urandom > /deps/f$i; i=$((i+1)); done
      touch /deps/done
    fi
    du -sh /deps
"""
BUILD = """
image:
  build: Dockerfile
"""
DOCKERFILE = f"FROM {IMAGE}\nRUN sleep 8 && echo built > /built\n"
FLOOR = """
import sys, docker
api = docker.from_env().api
tag, cache = sys.argv[1], sys.argv[2] or None
for event in api.build(path=sys.argv[3], tag=tag, rm=True, forcerm=True, decode=True,
                       cache_from=[cache] if cache else None, nocache=cache is None):
    if "error" in event:
        raise SystemExit(event["error"])
"""


def timed(project: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [str(DOCKERCISE), "run", "-q", "-C", str(project)], capture_output=True, text=True
    )
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"dockercise run failed: {done.stdout}{done.stderr}")
    return took


def stage_json(project: Path, stage: str) -> dict[str, object]:
    runs = sorted((project / ".dockercise" / "results" / "run").iterdir())
    data: dict[str, object] = json.loads((runs[-1] / f"{stage}.json").read_text())
    return data


def floor_build(context: Path, tag: str, cache: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", FLOOR, tag, cache, str(context)], check=True)
    return time.monotonic() - started


def last_log(project: Path, stage: str) -> str:
    runs = sorted((project / ".dockercise" / "results" / "run").iterdir())
    return (runs[-1] / f"{stage}.log").read_text()


def sample(case: str, scratch: Path, n: int) -> tuple[float, float, str]:
    project = scratch / f"{case}-{n}"
    project.mkdir()
    if case == "k2f":
        (project / "Dockerfile").write_text(DOCKERFILE)
        one, two = f"bench-caches-floor:{n}-1", f"bench-caches-floor:{n}-2"
        try:
            first = floor_build(project, one, "")
            second = floor_build(project, two, one)
        finally:
            subprocess.run(["docker", "rmi", "-f", one, two], capture_output=True)
        return first, second, ""
    if case == "k1":
        (project / ".dockercise.yml").write_text(FILL)
        (project / "deps.lock").write_text("v1\n")
    else:
        (project / ".dockercise.yml").write_text(BUILD)
        (project / "Dockerfile").write_text(DOCKERFILE)
    first = timed(project)
    second = timed(project)
    note = ""
    if case == "k1":
        cache = stage_json(project, "fetch")["cache"]
        assert isinstance(cache, list)
        note = f"restore {cache[0]['seconds']} s of {cache[0]['bytes'] / 1e6:.0f} MB"
    else:
        ran = last_log(project, "image").count("Running in")
        note = f"steps of the second build that made a container: {ran}"
        kept = caching.kept_image(f"local:{project.resolve()}", "image")
        subprocess.run(["docker", "rmi", "-f", kept], capture_output=True)
    return first, second, note


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rows = []
    names = {
        "k1": "(k1) a stage filling a 100 MB cache (5 s fetch + 100 MiB written), second run",
        "k2": "(k2) a `build` stage with a slow step (`RUN sleep 8`), second build",
        "k2f": "(k2f) the floor of (k2): the same Dockerfile built twice by a bare SDK script",
    }
    goals = {"k1": "≤ 0.3", "k2": "≤ 0.2", "k2f": "for information"}
    cases = ("k1", "k2", "k2f")
    results: dict[str, tuple[list[float], list[float], list[str]]] = {
        case: ([], [], []) for case in cases
    }
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-caches-") as tmp:
        for n in range(args.reps):  # rounds: each case once a round, so load hits all alike
            for case in cases:
                first, second, note = sample(case, Path(tmp), n)
                results[case][0].append(first)
                results[case][1].append(second)
                results[case][2].append(note)
    for case in cases:
        firsts, seconds, notes = results[case]
        f, s = statistics.median(firsts), statistics.median(seconds)
        ratio = s / f
        goal = goals[case]
        if goal.startswith("≤"):
            goal += " (met)" if ratio <= float(goal[2:]) else " (**missed**)"
        rows.append(f"| {names[case]} | {s:.2f} s | {f:.2f} s | {ratio:.2f} | {goal} |")
        samples = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(firsts, seconds, strict=True))
        note = notes[0] if case == "k1" else "; ".join(sorted(set(notes)))
        rows.append(f"|   samples (first/second) | {samples} | | | {note} |")
    table = "\n".join(
        [
            "| case | second run | first run (baseline) | ratio | goal |",
            "| --- | ---: | ---: | ---: | --- |",
            *rows,
        ]
    )
    table += f"\n\nLoad average (1 min) at the start: {load:.2f}; {os.cpu_count()} CPUs."
    print(table)
    (Path(__file__).parent / "latest-caches.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
