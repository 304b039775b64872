"""dockercise speed benchmark: each case against its baseline, measured in the same run.

    .venv/bin/python bench/run.py [--quick]

Prints a Markdown table and writes it (with the raw samples) to bench/latest.md.
Nothing is asserted: speed is measured and reported, never a test failure.
See bench/README.md for what each case measures.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import IMAGE, INFORMATION, Paired, case_details, machine, publish, table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCKERCISE = Path(sys.executable).parent / "dockercise"
CHAIN = 20  # case (a)
WIDE = 20  # case (b)
JOBS = 4  # case (b)
BIG = 10_000  # case (c)
BASELINE_CMD = f"docker run --rm {IMAGE} true"


@dataclass
class Case(Paired):
    absolute: float | None = None  # a target in seconds for dockercise itself, else a ratio

    @property
    def met(self) -> bool | None:
        if self.failures or self.target == INFORMATION:
            return None
        if self.absolute is not None:
            o = self.ours_median
            return None if o is None else o < self.absolute
        r = self.ratio
        return None if r is None else r <= 1.0


# --------------------------------------------------------------------------- helpers


def stage(name: str, after: str | None = None, run: str = "true") -> str:
    lines = [f"{name}:", f"  img: {IMAGE}"]
    if after is not None:
        lines.append(f"  after: {after}")
    lines.append(f'  run: "{run}"')
    return "\n".join(lines) + "\n"


def write_pipeline(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".dockercise.yml").write_text(text, encoding="utf-8")
    return folder


def timed_command(cmd: list[str], case: Case, who: str, cwd: Path | None = None) -> float | None:
    """Wall time of one command, or None (and a note) when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-5:]
        case.failures.append(f"{who}: exit {proc.returncode}: " + " | ".join(tail))
        return None
    return took


Timed = tuple[list[float], Callable[[], float | None]]
"""Where a command's samples go, and the command (None when it failed)."""


def sample_round(runs: list[Timed], i: int) -> None:
    """One sample of each; in round i the (i mod n)th goes first, so drift in the machine's
    load hits all alike."""
    first = i % len(runs)
    for samples, run in runs[first:] + runs[:first]:
        took = run()
        if took is not None:
            samples.append(took)


def sample_pair(
    case: Case, ours: Callable[[], float | None], base: Callable[[], float | None], i: int
) -> None:
    """One sample of each, dockercise and its baseline taking turns to go first."""
    sample_round([(case.ours, ours), (case.base, base)], i)


def dockercise_cmd(project: Path, results: Path, *extra: str) -> list[str]:
    return [str(DOCKERCISE), "run", "-C", str(project), "-q", "--results", str(results), *extra]


# --------------------------------------------------------------------------- cases


def case_chain(tmp: Path, reps: int) -> Case:
    case = Case(f"(a) chain of {CHAIN} stages, `run -q`", "≤ 1.0")
    text = "".join(stage(f"s{i}", f"s{i - 1}" if i else None) for i in range(CHAIN))
    project = write_pipeline(tmp / "chain", text)
    script = tmp / "chain.sh"
    script.write_text("set -e\n" + f"{BASELINE_CMD}\n" * CHAIN)
    results = tmp / "results"
    for i in range(reps):
        sample_pair(
            case,
            lambda: timed_command(dockercise_cmd(project, results), case, "dockercise"),
            lambda: timed_command(["sh", str(script)], case, "baseline"),
            i,
        )
    return case


FLOOR_SCRIPT = f'''\
"""The floor of case (b): what any engine in Python on the docker SDK pays, and nothing more."""
from concurrent.futures import ThreadPoolExecutor

import docker

api = docker.from_env().api


def stage(_):
    cid = api.create_container("{IMAGE}", command=["true"])["Id"]
    output = api.attach(cid, stdout=True, stderr=True, stream=True, demux=True)
    api.start(cid)
    for _chunk in output:
        pass
    api.wait(cid)
    output._response.close()
    api.remove_container(cid, v=True)


with ThreadPoolExecutor({JOBS}) as pool:
    list(pool.map(stage, range({WIDE})))
'''


def case_wide(tmp: Path, reps: int) -> tuple[Case, Case]:
    """Case (b), and its floor measured in the same rounds against the same `make` runs."""
    case = Case(f"(b) {WIDE} independent stages, `run -q -j {JOBS}`", "≤ 1.0")
    floor = Case(
        f"(b0) the floor of (b): a Python script that only runs the same {WIDE} containers "
        f"through the docker SDK, {JOBS} at a time",
        INFORMATION,
    )
    text = "".join(stage(f"s{i}") for i in range(WIDE))
    project = write_pipeline(tmp / "wide", text)
    makefile = tmp / "Makefile"
    targets = [f"t{i}" for i in range(WIDE)]
    makefile.write_text(
        f".PHONY: all {' '.join(targets)}\nall: {' '.join(targets)}\n"
        + "".join(f"{t}:\n\t@{BASELINE_CMD}\n" for t in targets)
    )
    script = tmp / "floor.py"
    script.write_text(FLOOR_SCRIPT)
    results = tmp / "results"
    runs: list[Timed] = [
        (
            case.ours,
            lambda: timed_command(
                dockercise_cmd(project, results, "-j", str(JOBS)), case, "dockercise"
            ),
        ),
        (
            case.base,
            lambda: timed_command(["make", f"-j{JOBS}", "-s", "-f", str(makefile)], case, "make"),
        ),
        (floor.ours, lambda: timed_command([sys.executable, str(script)], floor, "floor")),
    ]
    for i in range(reps):
        sample_round(runs, i)
    floor.base = case.base
    return case, floor


def big_pipeline(n: int, seed: int = 1, per_file: int = 2_000) -> dict[str, str]:
    """n stages, each with img, a run reading out/<previous>, one env item and `after`
    the previous stage or a random earlier one; `per_file` stages a file, so that each
    stays under the loader's 256 KiB (and all of them under its 1 MiB)."""
    rnd = random.Random(seed)
    files: dict[str, str] = {}
    parts = []
    for i in range(n):
        lines = [f"s{i}:", "  img: busybox"]
        if i:
            after = i - 1 if rnd.random() < 0.5 else rnd.randrange(i)
            lines.append(f"  after: s{after}")
            lines.append(f'  run: "cat /out/s{i - 1} && echo s{i}"')
        else:
            lines.append('  run: "echo s0"')
        lines.append(f'  env: [{{LEVEL: "{i}"}}]')
        parts.append("\n".join(lines) + "\n")
        if len(parts) == per_file or i == n - 1:
            files[f"part-{len(files):02d}.dockercise.yml"] = "".join(parts)
            parts = []
    return files


def write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def case_big(tmp: Path, reps: int) -> Case:
    import yaml

    from runner import pipeline, rules
    from runner.engine import RunOptions, prepare

    case = Case(f"(c) load + validate + plan, {BIG:,} stages (in-process)", "< 1 s", absolute=1.0)
    files = big_pipeline(BIG)
    project = write_files(tmp / "big", files)
    size = sum(len(text.encode()) for text in files.values())
    case.notes.append(f"files: {len(files)}, {size / 1e6:.2f} MB in all, {BIG:,} stages")

    def ours() -> float | None:
        # Each sample pays what one CLI invocation pays (apart from imports): the schema
        # is compiled again, and the heap starts as clean as the baseline's.
        for cached in (pipeline.schema, rules._expect):
            cached.cache_clear()
        gc.collect()
        start = time.perf_counter()
        loaded = pipeline.load(project)
        plan = prepare(loaded, RunOptions()) if loaded is not None else None
        took = time.perf_counter() - start
        if plan is None or len(plan.order) != BIG:
            case.failures.append(
                f"dockercise: planned {0 if plan is None else len(plan.order)} stages"
            )
            return None
        return took

    def base() -> float | None:
        gc.collect()
        start = time.perf_counter()
        count = 0
        for name in files:
            with (project / name).open(encoding="utf-8") as f:
                count += len(yaml.load(f.read(), Loader=yaml.CSafeLoader))
        took = time.perf_counter() - start
        return took if count == BIG else None

    for i in range(reps):
        sample_pair(case, ours, base, i)
    return case


# --------------------------------------------------------------------------- report


def baseline_names() -> dict[str, str]:
    return {
        "a": f"`sh` script of {CHAIN} sequential `{BASELINE_CMD}`",
        "b": f"`make -j{JOBS}` of {WIDE} targets, each `{BASELINE_CMD}`",
        "b0": f"the same `make -j{JOBS}` runs as (b)'s, in the same rounds. The script "
        "imports the SDK and creates, attaches to, starts, waits for and removes each "
        "container, as dockercise does, and does nothing else (no pipeline, no results): "
        "no engine written in Python on the SDK can be faster, so this ratio is the most "
        "case (b) can reach",
        "c": "`yaml.load(..., Loader=yaml.CSafeLoader)` of the same files",
    }


def details(cases: list[Case], reps: int, quick: bool, elapsed: float, leftovers: str) -> str:
    out = []
    names = baseline_names()
    for key, c in zip(("a", "b", "b0", "c"), cases, strict=True):
        out.extend(case_details(c, names[key]))
    out.append(
        f"- {reps} sample(s) each after a warm-up, median shown, dockercise and baseline "
        f"alternating{' (--quick)' if quick else ''}; whole benchmark {elapsed:.0f} s"
    )
    out.append(f"- containers left behind: {leftovers}")
    return "\n".join(out)


# --------------------------------------------------------------------------- containers


def container_ids() -> set[str]:
    proc = subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True, text=True)
    return set(proc.stdout.split())


def our_leftovers(before: set[str], results: Path) -> list[str]:
    """Containers this benchmark made that still exist: dockercise's carry the run's label,
    the baselines' are unlabelled `true` containers of the image created since we started
    (other jobs may be using the same engine, so `docker ps -a` alone would not tell)."""
    run_ids = {p.name for p in (results / "run").glob("*")} if (results / "run").is_dir() else set()
    proc = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Labels}}",
        ],
        capture_output=True,
        text=True,
    )
    left = []
    for line in proc.stdout.splitlines():
        cid, image, command, labels = ([*line.split("\t"), "", "", "", ""])[:4]
        if cid in before:
            continue
        label_run = dict(kv.split("=", 1) for kv in labels.split(",") if "=" in kv).get(
            "dockercise.run"
        )
        mine = (
            label_run in run_ids
            if label_run
            else (image.startswith(IMAGE) and command.strip('"') == "true")
        )
        if mine:
            left.append(line)
    return left


# --------------------------------------------------------------------------- main


def warm_up(tmp: Path) -> None:
    """Image and binaries into the page cache, bytecode compiled, engine awake."""
    subprocess.run(["docker", "run", "--rm", IMAGE, "true"], check=False, capture_output=True)
    project = write_pipeline(tmp / "warm", stage("w0") + stage("w1", "w0"))
    subprocess.run(dockercise_cmd(project, tmp / "warm-results"), check=False, capture_output=True)
    shutil.rmtree(tmp / "warm-results", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one sample per case instead of five")
    parser.add_argument("--reps", type=int, help="samples per case (default 5, or 1 with --quick)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "latest.md")
    args = parser.parse_args()
    reps = max(1, args.reps or (1 if args.quick else 5))

    if not DOCKERCISE.exists():
        sys.exit(f"bench: {DOCKERCISE} not found (install the project into the venv)")
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if probe.returncode != 0:
        sys.exit(f"bench: image {IMAGE} is not on the engine (build images/busybox first)")

    started = time.perf_counter()
    header = machine()
    before = container_ids()
    tmp = Path(tempfile.mkdtemp(prefix="dockercise-bench-"))
    try:
        warm_up(tmp)
        cases = [case_chain(tmp, reps), *case_wide(tmp, reps), case_big(tmp, reps)]
        left = our_leftovers(before, tmp / "results")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    leftovers = "none" if not left else f"{len(left)}: " + "; ".join(left)
    elapsed = time.perf_counter() - started

    publish(
        "dockercise benchmark",
        [header, table(cases), details(cases, reps, args.quick, elapsed, leftovers)],
        args.output,
    )


if __name__ == "__main__":
    main()
