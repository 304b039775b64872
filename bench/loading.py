"""The loader against the worst inputs of at most 1 MiB (SPEC §10, issue #11).

    .venv/bin/python bench/loading.py [--reps N]

Each case is a set of pipeline files (each at most 256 KiB, all together at
most 1 MiB) built to cost the loader as much as it can.  `dockercise validate`
runs on them as a whole process (start-up included) and is timed with its
peak memory (the child's own ru_maxrss, from wait4); the baseline is a Python
process that only runs `yaml.safe_load` on the same files.  Goals: every
verdict within 2 s and 200 MiB.  Nothing is asserted; the table goes to
bench/latest-loading.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import Paired, machine, publish

ROOT = Path(__file__).resolve().parent.parent
DOCKERCISE = Path(sys.executable).parent / "dockercise"
BASELINE = "import sys, yaml\nfor f in sys.argv[1:]:\n    yaml.safe_load(open(f, encoding='utf-8'))"
FILE = 256 * 1024
SECONDS, MIB = 2.0, 200


@dataclass
class Case(Paired):
    ours_rss: list[float] = field(default_factory=list, kw_only=True)
    base_rss: list[float] = field(default_factory=list, kw_only=True)
    verdict: str = field(default="", kw_only=True)

    @property
    def met(self) -> bool | None:
        if self.failures or not self.ours:
            return None
        return max(self.ours) <= SECONDS and max(self.ours_rss) <= MIB


def _fill(head: str, item: Callable[[int], str], tail: str = "", limit: int = FILE) -> str:
    """head + as many items as fit in `limit` bytes + tail."""
    parts, size, i = [head], len(head.encode()) + len(tail.encode()), 0
    while True:
        piece = item(i)
        if size + len(piece.encode()) > limit:
            break
        parts.append(piece)
        size += len(piece.encode())
        i += 1
    return "".join(parts) + tail


def _files(text_of: Callable[[int], str], count: int = 4) -> dict[str, str]:
    return {f"part-{n}.dockercise.yml": text_of(n) for n in range(count)}


def _laughs(n: int) -> str:
    text = "a: &a [" + ",".join(["lol"] * 9) + "]\n"
    for i in range(1, 12):
        text += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n"
    return text


def _under_ten_fold(n: int) -> str:
    items = ",".join(["w"] * 30_000)
    head = f"s{n}: {{img: x, run: &l [{items}]}}\n"
    return head + "".join(f"s{n}_{i}: {{img: x, run: *l}}\n" for i in range(8))


def _small(n: int) -> str:
    return _fill("", lambda i: f"s{n}_{i}: {{img: x}}\n", limit=1000)


CASES: dict[str, tuple[str, Callable[[], dict[str, str]]]] = {
    "wide": (
        "(l1) 1 MiB of one-letter list items (the most nodes a byte can buy), valid",
        lambda: _files(lambda n: _fill(f"s{n}: {{img: x, run: [x", lambda i: ",x", "]}\n")),
    ),
    "laughs": ("(l2) billion laughs (9 levels of 9 aliases)", lambda: _files(_laughs, 1)),
    "aliases": (
        "(l3) one list aliased to just under 10x the file's size, valid",
        lambda: _files(_under_ten_fold),
    ),
    "long-string": (
        "(l4) a 250 KiB string aliased thousands of times",
        lambda: _files(
            lambda n: _fill(f'x{n}: &s "{"A" * 200_000}"\nl{n}: [*s', lambda i: ",*s", "]\n"), 1
        ),
    ),
    "deep": (
        "(l5) values nested 64 deep in every stage, as many stages as fit",
        lambda: _files(
            lambda n: _fill("", lambda i: f"s{n}_{i}: {{img: x, run: {'[' * 62}x{']' * 62}}}\n")
        ),
    ),
    "bad-20k": (
        "(l6) 20,000 bad stages (each names an unknown stage)",
        lambda: _files(
            lambda n: "".join(f"s{i}: {{img: x, after: s{i}x}}\n" for i in range(n, 20_000, 5)),
            5,
        ),
    ),
    "bad-values": (
        "(l7) stages with every kind of bad value, as many as fit",
        lambda: _files(
            lambda n: _fill(
                "",
                lambda i: (
                    f"s{n}_{i}: {{retry: 1.0, timeout: 0s, dir: r, vol: '/h:/', "
                    "env: [{A=B: 1}]}\n"
                ),
            )
        ),
    ),
    "long-names": (
        "(l8) unknown references of 250 KiB each",
        lambda: _files(lambda n: f"a{n}: {{img: x, after: {'q' * 250_000}}}\n"),
    ),
    "most-stages": (
        "(l10) as many stages as 1 MiB can name (`? sN`, about 100,000), valid",
        lambda: _files(lambda n: _fill("", lambda i: f"? s{n}_{i}\n")),
    ),
    "many-files": (
        "(l9) 1,000 files of 1 KiB",
        lambda: {f"d{n}/p.dockercise.yml": _small(n) for n in range(1000)},
    ),
}


def _write(folder: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _measure(cmd: list[str], case: Case, who: str) -> tuple[float, float, str] | None:
    """Wall seconds, peak RSS (MiB) and stderr's last line of one process, or None."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest yet
        took = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        said = out.read()
    tail = said.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if code not in (0, 2) or b"Traceback" in said:
        case.failures.append(f"{who}: exit {code}: {tail[0][:200]}")
        return None
    return took, usage.ru_maxrss / 1024, tail[0]


def run_case(key: str, tmp: Path, reps: int) -> Case:
    name, make = CASES[key]
    files = make()
    size = sum(len(t.encode()) for t in files.values())
    biggest = max(len(t.encode()) for t in files.values())
    case = Case(name, f"≤ {SECONDS:g} s and ≤ {MIB} MiB")
    case.notes.append(
        f"{len(files)} file(s), {size / 1024:.0f} KiB in all, largest {biggest / 1024:.0f} KiB"
    )
    folder = tmp / key
    paths = _write(folder, files)
    ours = [str(DOCKERCISE), "validate", "-C", str(folder)]
    base = [sys.executable, "-c", BASELINE, *map(str, paths)]
    for i in range(reps):
        order = [
            (ours, case.ours, case.ours_rss, "dockercise"),
            (base, case.base, case.base_rss, "baseline"),
        ]
        for cmd, times, peaks, who in order if i % 2 == 0 else reversed(order):
            got = _measure(cmd, case, who)
            if got is not None:
                times.append(got[0])
                peaks.append(got[1])
                if who == "dockercise":
                    case.verdict = got[2]
    shutil.rmtree(folder, ignore_errors=True)
    return case


def table(cases: list[Case]) -> str:
    rows = [
        "| case | dockercise `validate` | peak | baseline `yaml.safe_load` | peak | ratio | goal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        ratio = "n/a" if c.ratio is None else f"{c.ratio:.2f}"
        peak = f"{max(c.ours_rss):.0f} MiB" if c.ours_rss else "—"
        base_peak = f"{max(c.base_rss):.0f} MiB" if c.base_rss else "—"
        verdict = {True: "met", False: "**missed**", None: "not measured"}[c.met]
        rows.append(
            f"| {c.name} | {c.fmt(c.ours_median)} | {peak} | {c.fmt(c.base_median)}"
            f" | {base_peak} | {ratio} | {verdict} |"
        )
    return "\n".join(rows)


def details(cases: list[Case]) -> str:
    out = []
    for c in cases:
        out.append(f"- {c.name}: verdict `{c.verdict[:160]}`")
        out.append(
            f"  - dockercise: {', '.join(f'{s:.3f} s' for s in c.ours)}; "
            f"peaks {', '.join(f'{m:.0f}' for m in c.ours_rss)} MiB"
        )
        out.append(
            f"  - baseline: {', '.join(f'{s:.3f} s' for s in c.base)}; "
            f"peaks {', '.join(f'{m:.0f}' for m in c.base_rss)} MiB"
        )
        out.extend(f"  - FAILED {f}" for f in c.failures)
        out.extend(f"  - {n}" for n in c.notes)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="samples per side (default 3)")
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"among {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    args.cases = args.cases or list(CASES)
    header = machine()
    tmp = Path(tempfile.mkdtemp(prefix="dockercise-bench-loading-"))
    try:
        subprocess.run([str(DOCKERCISE), "--help"], capture_output=True, check=False)  # warm-up
        cases = [run_case(key, tmp, args.reps) for key in args.cases]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    publish(
        "dockercise loading benchmark",
        [
            header,
            table(cases),
            details(cases) + f"\n- {args.reps} sample(s) a side, alternating; the median is shown,"
            " the goal is judged on the slowest sample and the highest peak",
        ],
        ROOT / "bench" / "latest-loading.md",
    )


if __name__ == "__main__":
    main()
