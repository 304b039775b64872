"""What the benchmark scripts share: paired samples, the machine line, polling, the report.

bench/run.py, bench/webhooks.py and bench/workers.py import it as `common` (a script's
own folder is the first entry of sys.path; bench/profile.py puts bench/ there too).
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

IMAGE = "dockercise/busybox"


@dataclass
class Paired:
    """One case measured on both sides: dockercise's samples and its baseline's.

    The scripts subclass it with what they need besides (a target's kind, a unit) and
    say when the target is met."""

    name: str
    target: str
    ours: list[float] = field(default_factory=list, kw_only=True)
    base: list[float] = field(default_factory=list, kw_only=True)
    failures: list[str] = field(default_factory=list, kw_only=True)
    notes: list[str] = field(default_factory=list, kw_only=True)

    @property
    def ours_median(self) -> float | None:
        return statistics.median(self.ours) if self.ours else None

    @property
    def base_median(self) -> float | None:
        return statistics.median(self.base) if self.base else None

    @property
    def ratio(self) -> float | None:
        o, b = self.ours_median, self.base_median
        return o / b if o is not None and b else None

    @property
    def met(self) -> bool | None:
        """True or False once the target can be judged; None when it cannot."""
        return None

    def fmt(self, value: float | None) -> str:
        return "failed" if value is None else f"{value:.3f} s"


INFORMATION = "for information"
"""The target of a case that only puts the others in perspective (a floor, say)."""


def table(cases: Sequence[Paired]) -> str:
    rows = [
        "| case | dockercise | baseline | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        ratio = "n/a" if c.ratio is None else f"{c.ratio:.2f}"
        rows.append(
            f"| {c.name} | {c.fmt(c.ours_median)} | {c.fmt(c.base_median)} | {ratio} | {c.target} |"
        )
    return "\n".join(rows)


def case_details(
    case: Paired, baseline: str, sample: Callable[[float], str] = "{:.3f}".format
) -> list[str]:
    """The lines under the table for one case: verdict, raw samples, failures, notes."""
    verdict = {True: "met", False: "missed", None: "not measured"}[case.met]
    if case.target == INFORMATION:
        head = f"- {case.name}: for information (no target); baseline: {baseline}"
    else:
        head = f"- {case.name}: target {case.target} **{verdict}**; baseline: {baseline}"
    return [
        head,
        f"  - dockercise samples: {', '.join(sample(s) for s in case.ours) or '—'}",
        f"  - baseline samples: {', '.join(sample(s) for s in case.base) or '—'}",
        *(f"  - FAILED {failure}" for failure in case.failures),
        *(f"  - {note}" for note in case.notes),
    ]


def machine(*extras: str) -> str:
    """The report's header line; `extras` (other tools' versions) go after Docker's."""
    try:
        server = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        server = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return ", ".join(
        [
            f"{platform.system()} {platform.machine()}",
            f"{os.cpu_count()} CPU(s)",
            f"Python {platform.python_version()}",
            f"Docker {server}",
            *extras,
            f"load average {load:.2f} at start",
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], Any], seconds: float, *, step: float = 0.05, what: str | None = None
) -> Any:
    """Call `check` every `step` seconds until it returns something true, and return that.

    An OSError counts as "not yet" (a server still starting).  After `seconds`: None, or
    TimeoutError(what) when `what` is given."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            if what is not None:
                raise TimeoutError(what)
            return None
        time.sleep(step)


def publish(title: str, sections: list[str], output: Path) -> None:
    """Print the report, headed by `title` and the time, and write it to `output`."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n\n".join([f"# {title} ({stamp})", *sections])
    print(report)
    output.write_text(report + "\n", encoding="utf-8")
    print(f"\nwritten to {output}", file=sys.stderr)
