"""The results site's memory while it serves a 400 MB log and a 400 MB artefact (SPEC §10).

    .venv/bin/python bench/serving.py            # 3 samples per case, about 60 s
    .venv/bin/python bench/serving.py --quick    # 1 sample, about 20 s
    .venv/bin/python bench/serving.py --size 1000  # MB per file

The site runs in a process of its own, under waitress (as `dockercise serve`
and `serve-results` run it: webhooks/server.py) and under gunicorn with one
sync worker (as the bot's web side may be deployed), over a local store
holding one run whose log and zip are sparse files of `--size` MB.  Each
sample downloads one file (or loads the run page, which shows the log's
tail) while the server's resident memory
(VmRSS of the server and its workers, from /proc) is sampled every 5 ms; the
number is the peak growth over its memory just before the request, the
largest of a case's samples (the first request of a fresh server grows its
buffers; later ones reuse them).  The
baseline is a bare Flask app under the same server sending the same file with
`send_file` (Werkzeug's file wrapper): the floor of any Python server.
Nothing is asserted; it writes bench/latest-serving.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import common

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pages.serving import PIPELINE, RUN_ID, big_run, serve_store

MIB = 1 << 20
GOAL = 100
RUN = f"/results/local/{PIPELINE}/run/{RUN_ID}"


@dataclass
class Memory(common.Paired):
    """Peak growth of the server's memory in MiB; `seconds` are the download times."""

    seconds: list[float] | None = None
    base_seconds: list[float] | None = None

    @property
    def met(self) -> bool | None:
        if self.target == common.INFORMATION or not self.ours:
            return None
        return max(self.ours) < GOAL

    def fmt(self, value: float | None) -> str:
        return "—" if value is None else f"+{value:.1f} MiB"


def _median(values: list[float] | None) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.2f} s"


def table(cases: list[Memory]) -> str:
    """The largest memory growth of each side's samples (the target), and, for information,
    the median seconds a request took."""
    rows = [
        "| case | dockercise | baseline | dockercise time | baseline time | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        rows.append(
            f"| {c.name} | {c.fmt(max(c.ours, default=None))} | {c.fmt(max(c.base, default=None))} "
            f"| {_median(c.seconds)} | {_median(c.base_seconds)} | {c.target} |"
        )
    return "\n".join(rows)


def measure(case: Memory, server: str, path: str, reps: int, scratch: Path, store: Path) -> None:
    for bare in (False, True):
        if bare and path == RUN:
            continue  # the bare app has no run page
        with serve_store(store, scratch, server, bare=bare) as running:
            for _ in range(reps):
                try:
                    measured = running.measure(path)
                except (OSError, AssertionError) as e:
                    case.failures.append(f"{'baseline' if bare else 'dockercise'}: {e}")
                    continue
                (case.base if bare else case.ours).append(measured.growth / MIB)
                times = case.base_seconds if bare else case.seconds
                assert times is not None
                times.append(measured.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one sample per case")
    parser.add_argument("--reps", type=int, default=3, help="samples per case and side")
    parser.add_argument("--size", type=int, default=400, help="MB per file (default 400)")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    size = args.size * 1000 * 1000
    target = f"growth < {GOAL} MiB"
    cases: list[tuple[Memory, str, str]] = []
    for server in ("waitress", "gunicorn"):
        label = (
            "waitress (serve, serve-results)" if server == "waitress" else "gunicorn, 1 sync worker"
        )
        cases += [
            (
                Memory(
                    f"{args.size} MB log download, {label}", target, seconds=[], base_seconds=[]
                ),
                server,
                f"{RUN}/build.log",
            ),
            (
                Memory(
                    f"{args.size} MB zip download, {label}", target, seconds=[], base_seconds=[]
                ),
                server,
                f"{RUN}/build.zip",
            ),
            (
                Memory(
                    f"run page showing that log's tail, {label}",
                    target,
                    seconds=[],
                    base_seconds=[],
                ),
                server,
                RUN,
            ),
        ]
    with tempfile.TemporaryDirectory(prefix="dockercise-bench-serving-") as folder:
        scratch = Path(folder)
        store = big_run(scratch / "results", size)
        for case, server, path in cases:
            print(f"measuring: {case.name}", file=sys.stderr)
            measure(case, server, path, reps, scratch, store)
    report = table([c for c, _, _ in cases])
    details = []
    for case, _, _ in cases:
        details += common.case_details(
            case, "a bare Flask app sending the file with send_file", "+{:.1f} MiB".format
        )
        seconds = ", ".join(f"{s:.2f}" for s in case.seconds or []) or "—"
        base = ", ".join(f"{s:.2f}" for s in case.base_seconds or []) or "—"
        details.append(f"  - seconds per request: dockercise {seconds}; baseline {base}")
    common.publish(
        "Results site: server memory while serving big files",
        [common.machine(), report, "\n".join(details)],
        Path(__file__).with_name("latest-serving.md"),
    )


if __name__ == "__main__":
    main()
