"""Caches and kept layers (SPEC §13): a second run against the first, in fresh projects.

    .venv/bin/python bench/caches.py [--reps N]

(k1) a stage whose `cache` path it fills with 100 MB when empty (100 files of
1 MiB from /dev/urandom, after a `sleep 5` that stands for downloading them:
100 MB at 20 MB/s); the second run restores them and skips both.
(k2) a `build` stage whose Dockerfile has a slow step (`RUN sleep 8`); the
second build starts from the kept layers.

Each sample is a fresh project: `dockercise run -q` twice, each timed as a
whole process.  Prints a Markdown table and writes it to bench/latest-caches.md.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
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


def sample(case: str, scratch: Path, n: int) -> tuple[float, float, str]:
    project = scratch / f"{case}-{n}"
    project.mkdir()
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
    }
    goals = {"k1": 0.3, "k2": 0.2}
    with tempfile.TemporaryDirectory(prefix="bench-caches-") as tmp:
        for case in ("k1", "k2"):
            firsts, seconds, notes = [], [], []
            for n in range(args.reps):
                first, second, note = sample(case, Path(tmp), n)
                firsts.append(first)
                seconds.append(second)
                notes.append(note)
            f, s = statistics.median(firsts), statistics.median(seconds)
            ratio = s / f
            met = "met" if ratio <= goals[case] else "**missed**"
            rows.append(
                f"| {names[case]} | {s:.2f} s | {f:.2f} s | {ratio:.2f} | ≤ {goals[case]} ({met}) |"
            )
            samples = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(firsts, seconds, strict=True))
            rows.append(f"|   samples (first/second) | {samples} | | | {notes[0]} |")
    table = "\n".join(
        [
            "| case | second run | first run (baseline) | ratio | goal |",
            "| --- | ---: | ---: | ---: | --- |",
            *rows,
        ]
    )
    print(table)
    (Path(__file__).parent / "latest-caches.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
