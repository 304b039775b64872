"""dockercise bot benchmark: delivery -> first container, check runs against statuses only.

Two `dockercise serve` processes against one fake GitHub whose installation
grants `checks: write`: one reports with check runs (`DOCKERCISE_REPORT=checks`,
the default), the other with commit statuses only (`DOCKERCISE_REPORT=statuses`).
Each sample is a new commit and one signed push to one of them, timed from
sending it to the engine's `start` event of the stage's container; the two
take turns ABBA, so the machine's load hits both alike. The goal (issue #15):
check runs cost at most 1.05x statuses. Asserts nothing; the report goes to
bench/latest-checks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from common import IMAGE, Paired, case_details, free_port, machine, publish, table, wait_until

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _bench_webhooks() -> Any:
    """bench/webhooks.py (its processes, events, fake GitHub), under a name of its own: the
    project's `webhooks` package is on the path too."""
    spec = importlib.util.spec_from_file_location("bench_webhooks", ROOT / "bench/webhooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_webhooks"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hooks = _bench_webhooks()
BIN, REPO, DockerEvents, Processes = hooks.BIN, hooks.REPO, hooks.DockerEvents, hooks.Processes
bot_env, fake_github, http, leftovers = (
    hooks.bot_env,
    hooks.fake_github,
    hooks.http,
    hooks.leftovers,
)
push_payload = hooks.push_payload

from tests.bot.running import WEBHOOK_SECRET  # noqa: E402 - after the path is set
from webhooks.verify import sign  # noqa: E402


@dataclass
class Case(Paired):
    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= 1.05


@dataclass
class Side:
    name: str
    url: str
    env: dict[str, str]


def _sign(body: bytes) -> str:
    return str(sign(body, WEBHOOK_SECRET))


def run(samples: int, idle: float, output: Path) -> None:
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if probe.returncode != 0:
        sys.exit(f"bench: image {IMAGE} is not on the engine (build images/busybox first)")
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="dockercise-bench-checks-"))
    (tmp / "logs").mkdir()
    procs = Processes(tmp / "logs")
    case = Case(
        "(4) delivery → first stage container started, check runs vs statuses only",
        "ratio ≤ 1.05",
    )
    tag = secrets.token_hex(4)
    stage = f"checks_{tag}"
    pipeline = f'{stage}:\n  img: {IMAGE}\n  run: "true"\n'
    left: list[str] = []
    events = DockerEvents()
    try:
        with fake_github(tmp / "github") as (github, _calls):
            github.grant_checks()
            sides = []
            for name, report in (("checks", "checks"), ("statuses", "statuses")):
                port = free_port()
                env = bot_env(github, tmp / name, port) | {"DOCKERCISE_REPORT": report}
                procs.start(name, [str(BIN / "dockercise"), "serve", "--port", str(port)], env)
                sides.append(Side(name, f"http://127.0.0.1:{port}", env))
            for side in sides:
                wait_until(lambda s=side: http(f"{s.url}/healthz") == 200, 30, what=side.name)

            def done(sha: str) -> bool:
                statuses = any(s["state"] != "pending" for s in github.statuses_for(sha))
                runs = [r for r in github.check_runs_for(sha) if r["status"] == "completed"]
                return statuses or bool(runs)

            def sample(side: Side, n: str) -> float | None:
                sha = github.push(REPO, {".dockercise.yml": pipeline, "n": f"{n}\n"})
                body = json.dumps(push_payload(github, sha)).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": f"{tag}-{side.name}-{n}",
                    "X-Hub-Signature-256": _sign(body),
                }
                sent = time.time()
                code = http(f"{side.url}/webhooks/github", body, headers, timeout=10)
                if code != 202:
                    case.failures.append(f"{side.name} {n}: answered {code}")
                    return None
                first = wait_until(
                    partial(events.first, "start", "dockercise.stage", stage, sent), 30
                )
                if not wait_until(partial(done, sha), 60):
                    case.failures.append(f"{side.name} {n}: no final report within 60 s")
                time.sleep(idle)
                return None if first is None else float(first) - sent

            for side in sides:  # warm-up: the token, the caches (not counted)
                sample(side, "warm")
            order = [0, 1, 1, 0]
            for i in range(samples * 2):
                side = sides[order[i % 4]]
                took = sample(side, str(i))
                if took is not None:
                    (case.ours if side.name == "checks" else case.base).append(took)
            case.notes.append(
                "check runs made: "
                f"{len(github.check_runs)}; statuses posted: {len(github.statuses)}"
            )
            left = leftovers(stage, tag, [])
    finally:
        procs.stop_all()
        events.close()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    publish(
        "dockercise check runs benchmark",
        [
            machine(),
            table([case]),
            "\n".join(
                [
                    *case_details(
                        case,
                        "the same bot with DOCKERCISE_REPORT=statuses (commit statuses only), "
                        f"ABBA turns, {samples} builds a side after one warm-up each",
                    ),
                    f"- whole benchmark {elapsed:.0f} s; containers left behind: "
                    + (", ".join(c[:12] for c in left) if left else "none"),
                ]
            ),
        ],
        output,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--samples", type=int, default=8, help="builds per side (default 8)")
    parser.add_argument("--idle", type=float, default=1.0, help="seconds between builds")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "latest-checks.md")
    args = parser.parse_args()
    run(args.samples, args.idle, args.output)


if __name__ == "__main__":
    main()
