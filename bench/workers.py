"""dockercise scale-out benchmark: bot builds per minute with 1, 2 and 4 worker processes.

    .venv/bin/python bench/workers.py [--builds N] [--quick]

The bot runs as in production on one machine: a private `redis-server`, the web
side under gunicorn and K `dockercise worker` processes, fed signed push
deliveries by the bot tests' fake GitHub (tests/bot/).  The baseline is the same
pipeline run N times by a sequential `dockercise run -q` loop.  Prints a
Markdown table and writes it to bench/latest-workers.md; nothing is asserted.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
from common import IMAGE, free_port, machine, publish, wait_until

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.state.redis_store import PREFIX, RedisState  # noqa: E402
from tests.bot.fake_github import FakeGitHub  # noqa: E402
from tests.bot.running import BIN, Bot, bot_env, push_payload, start_redis  # noqa: E402

DOCKERCISE = BIN / "dockercise"
WORKERS = (1, 2, 4)
IDLE_SAMPLES = 3

PIPELINE = f"""\
prepare: {{img: {IMAGE}, run: "true"}}
lint: {{img: {IMAGE}, after: prepare, run: "true"}}
test: {{img: {IMAGE}, after: prepare, run: "true"}}
package: {{img: {IMAGE}, after: [lint, test], run: "true"}}
publish: {{img: {IMAGE}, after: package, run: "true"}}
"""
"""Five trivial stages in a small DAG: one fan-out, one join."""


@dataclass
class Case:
    name: str
    builds: int = 0
    wall: float | None = None
    waits: list[float] = field(default_factory=list)
    """Queue wait of each build of the burst: recorded -> claimed by a worker."""
    pickups: list[float] = field(default_factory=list)
    """The same for single builds sent to idle workers: the queue's own latency."""
    failures: list[str] = field(default_factory=list)

    @property
    def per_minute(self) -> float | None:
        return self.builds * 60 / self.wall if self.wall else None


# --------------------------------------------------------------------------- processes


def consumers_ready(logs: Path, count: int) -> bool:
    text = "".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    return text.count("Huey consumer started") >= count


# --------------------------------------------------------------------------- one burst


class Cluster:
    """The web side, kept for the whole benchmark, and the Redis state it shares."""

    def __init__(self, github: FakeGitHub, env: dict[str, str], web: Bot, redis_url: str) -> None:
        self.github = github
        self.env = env
        self.web = web
        self.state = RedisState(redis_url)
        self.deliveries = 0

    def deliver(self, shas: list[str]) -> None:
        for sha in shas:
            self.deliveries += 1
            payload = push_payload(self.github, "octo/app", sha)
            self.web.deliver("push", payload, f"bench-{self.deliveries}")

    def final(self, shas: list[str]) -> bool:
        return all(
            any(s["state"] != "pending" for s in self.github.statuses_for(sha)) for sha in shas
        )

    def done(self, shas: list[str]) -> bool:
        """The workers have written every build's end (just after its final status)."""
        wanted = set(shas)
        ended = [b for b in self.state.recent(1000) if b.job.sha in wanted and b.status == "done"]
        return len(ended) == len(wanted)

    def waits(self, shas: list[str], case: Case) -> list[float]:
        """Recorded -> claimed, from the state (both stamped by the Redis server's clock).

        With DOCKERCISE_STALE_AFTER=600 a build's first heartbeat after its claim comes
        200 s later, so within a short build its heartbeat is still its claim time."""
        wanted = set(shas)
        found = []
        for build in self.state.recent(1000):
            if build.job.sha not in wanted:
                continue
            created = self.state.redis.hget(f"{PREFIX}build:{build.job.id}", "created")
            if build.heartbeat is None or created is None:
                case.failures.append(f"build {build.job.id} was never claimed")
                continue
            if build.state != "success":
                case.failures.append(f"build {build.job.id} ended {build.state}")
            found.append(build.heartbeat - float(str(created)))
        return found

    def burst(self, shas: list[str], case: Case) -> None:
        start = time.perf_counter()
        self.deliver(shas)
        wait_until(lambda: self.final(shas), 600, what="the burst's final statuses")
        case.wall = time.perf_counter() - start
        case.builds = len(shas)
        wait_until(lambda: self.done(shas), 60, what="the burst's builds to end")
        case.waits = self.waits(shas, case)

    def one_by_one(self, shas: list[str], case: Case) -> None:
        for sha in shas:
            one = [sha]
            self.deliver(one)
            wait_until(lambda: self.done(one), 120, what="an idle build to end")  # noqa: B023
            case.pickups.extend(self.waits(one, case))


def case_workers(cluster: Cluster, count: int, builds: int, tmp: Path) -> Case:
    case = Case(f"bot, {count} worker process{'es' if count > 1 else ''}")
    logs = tmp / f"logs-{count}"
    logs.mkdir()
    workers = Bot(cluster.env, 0, logs)
    try:
        for _ in range(count):
            workers.start(str(DOCKERCISE), "worker")
        wait_until(lambda: consumers_ready(logs, count), 60, what="the workers to start")
        github = cluster.github

        def commits(n: int) -> list[str]:
            return [github.push("octo/app", {"n": f"{time.time()}\n"}) for _ in range(n)]

        # Warm-up: one build per worker (idle workers wait in line on Redis, so each takes
        # one), so every process has imported what a build needs before the clock starts.
        warm = commits(count)
        cluster.deliver(warm)
        wait_until(lambda: cluster.final(warm), 120, what="the warm-up builds")
        cluster.burst(commits(builds), case)
        cluster.one_by_one(commits(IDLE_SAMPLES), case)
    except TimeoutError as e:
        case.failures.append(f"timed out waiting for {e}")
    finally:
        workers.stop()
    return case


def case_cli(project: Path, results: Path, builds: int) -> Case:
    case = Case(f"{builds} x `dockercise run -q`, one after another (baseline)")
    cmd = [str(DOCKERCISE), "run", "-C", str(project), "-q", "--results", str(results)]
    subprocess.run(cmd, capture_output=True, check=False)  # warm-up
    start = time.perf_counter()
    for _ in range(builds):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            case.failures.append(f"exit {done.returncode}: {done.stdout.strip()[-200:]}")
    case.wall = time.perf_counter() - start
    case.builds = builds
    return case


# --------------------------------------------------------------------------- report


def seconds(values: list[float], how: str) -> str:
    if not values:
        return "—"
    value = statistics.median(values) if how == "median" else max(values)
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def table(cases: list[Case]) -> str:
    base = cases[0].per_minute
    rows = [
        "| case | builds | wall | builds/min | vs baseline | queue wait median | max"
        " | idle pickup |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        rate = c.per_minute
        ratio = f"{rate / base:.2f}" if rate and base else "n/a"
        wall = f"{c.wall:.1f} s" if c.wall else "failed"
        rows.append(
            f"| {c.name} | {c.builds} | {wall} | {f'{rate:.1f}' if rate else 'n/a'} | {ratio}"
            f" | {seconds(c.waits, 'median')} | {seconds(c.waits, 'max')}"
            f" | {seconds(c.pickups, 'median')} |"
        )
    return "\n".join(rows)


def details(cases: list[Case], builds: int, elapsed: float, leftovers: int) -> str:
    out = [
        f'- pipeline: 5 stages `run: "true"` on `{IMAGE}` (prepare -> lint, test -> package'
        " -> publish); each worker process runs one build at a time (DOCKERCISE_WORKERS=1)",
        f"- a burst of {builds} push deliveries sent at once; wall = first delivery to the last"
        " final commit status; queue wait = recorded -> claimed by a worker (Redis clock);"
        f" idle pickup = the same for {IDLE_SAMPLES} single builds sent to idle workers (median)",
        "- bot builds also clone the commit over HTTP from the fake GitHub and post statuses;"
        " the CLI loop runs in the project directory",
    ]
    for c in cases:
        out.extend(f"- {c.name}: FAILED {f}" for f in c.failures)
    out.append(f"- whole benchmark {elapsed:.0f} s; containers left behind: {leftovers}")
    return "\n".join(out)


def leftover_containers(tmp: Path) -> int:
    """Containers of runs whose files are under our temporary directory; removed if any."""
    client = docker.from_env()
    try:
        found = [
            c
            for c in client.containers.list(all=True, filters={"label": "dockercise.run"})
            if any(str(m.get("Source", "")).startswith(str(tmp)) for m in c.attrs["Mounts"])
        ]
        for container in found:
            container.remove(force=True)
        return len(found)
    finally:
        client.close()


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builds", type=int, help="builds per burst (default 12, 6 with --quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "latest-workers.md")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake GitHub's request log
    builds = max(1, args.builds or (6 if args.quick else 12))
    for tool in ("redis-server", "git"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (scripts/setup --test installs redis-server)")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        sys.exit(f"bench: image {IMAGE} is not on the engine (run scripts/setup)")

    started = time.perf_counter()
    header = machine()
    tmp = Path(tempfile.mkdtemp(prefix="dockercise-bench-workers-"))
    (tmp / "tmp").mkdir()
    (tmp / "logs").mkdir()
    redis_proc, redis_url = start_redis(tmp)
    cases: list[Case] = []
    try:
        project = tmp / "project"
        project.mkdir()
        (project / ".dockercise.yml").write_text(PIPELINE)
        cases.append(case_cli(project, tmp / "cli-results", builds))
        with FakeGitHub(tmp / "github") as github:
            github.push("octo/app", {".dockercise.yml": PIPELINE})
            port = free_port()
            env = bot_env(github, tmp, port) | {
                "DOCKERCISE_REDIS_URL": redis_url,
                "DOCKERCISE_WORKERS": "1",
                "DOCKERCISE_STALE_AFTER": "600",
                "TMPDIR": str(tmp / "tmp"),
            }
            web = Bot(env, port, tmp / "logs")
            cluster: Cluster | None = None
            try:
                web.start(
                    str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "bot.web:create_bot_app()"
                )
                web.wait_healthy()
                cluster = Cluster(github, web.env, web, redis_url)
                for count in WORKERS:
                    cases.append(case_workers(cluster, count, builds, tmp))
            finally:
                if cluster is not None:
                    cluster.state.close()
                web.stop()
        leftovers = leftover_containers(tmp)
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started

    publish(
        "dockercise scale-out benchmark",
        [header, table(cases), details(cases, builds, elapsed, leftovers)],
        args.output,
    )


if __name__ == "__main__":
    main()
