"""dockercise bot benchmark: webhook ingestion under gunicorn, and delivery -> first container.

    .venv/bin/python bench/webhooks.py [--quick] [--idle SECONDS]

Prints a Markdown table and writes it (with the raw samples and a breakdown of
where a build's first second goes) to bench/latest-webhooks.md.  Nothing is
asserted.  Needs Debian's `wrk`, a running Docker engine and the image
dockercise/busybox.  See bench/README.md for what each case measures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from common import (
    IMAGE,
    INFORMATION,
    Paired,
    case_details,
    free_port,
    machine,
    publish,
    table,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bot.running import WEBHOOK_SECRET  # noqa: E402 - after the path is set
from tests.bot.running import bot_env as settings_for  # noqa: E402
from tests.bot.running import push_payload as delivery  # noqa: E402

BIN = Path(sys.executable).parent
REPO = "octo/bench"
WRK_THREADS = 2
WRK_CONNECTIONS = 8
GUNICORN_WORKERS = 2

Call = tuple[float, float, str, str]
"""One request to the fake GitHub: started, answered (time.time()), path, method."""

BARE_APP = '''\
"""The baseline: a bare Flask endpoint, served by gunicorn exactly as the bot is."""
from flask import Flask

app = Flask(__name__)


@app.post("/hook")
def hook():
    return "", 202
'''

FLOOR_APP = '''\
"""The floor: what no receiver can skip (read the body, check its signature, parse it)."""
import hashlib
import hmac
import json
import os

from flask import Flask, request

app = Flask(__name__)
SECRET = os.environb[b"BENCH_WEBHOOK_SECRET"]


@app.post("/hook")
def hook():
    body = request.get_data()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return "", 401
    json.loads(body)
    return "", 202
'''

# wrk's Lua: the body and its signature stay the same (the signature covers only the
# body); every request gets its own X-GitHub-Delivery (tag-thread-counter), or the bot
# would answer the second one as a redelivery.  done() prints one JSON line.
WRK_LUA = r"""
local threads = {}
local counter = 0
id = 0
statuses = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-GitHub-Event"] = "push"
  wrk.headers["X-Hub-Signature-256"] = args[2]
  tag = args[3]
  statuses = {}
end

function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = string.format("%s-%d-%d", tag, id, counter)
  return wrk.format()
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      parts[code] = (parts[code] or 0) + n
    end
  end
  local codes = {}
  for code, n in pairs(parts) do
    table.insert(codes, string.format('"%d": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(codes, ", ")))
end
"""


@dataclass
class Case(Paired):
    unit: str  # "rps" | "ms" | "s"
    met_if: Callable[[float, float | None], bool] | None = None

    @property
    def met(self) -> bool | None:
        o = self.ours_median
        if o is None or self.met_if is None:
            return None
        return self.met_if(o, self.ratio)

    def fmt(self, value: float | None) -> str:
        if value is None:
            return "failed"
        if self.unit == "rps":
            return f"{value:,.0f} req/s"
        if self.unit == "ms":
            return f"{value * 1000:.1f} ms"
        return f"{value:.3f} s"


# --------------------------------------------------------------------------- processes


class Processes:
    """Every process this benchmark starts, stopped (by its own pid) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)

    def log(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])


def http(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 5
) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def gunicorn(
    procs: Processes, name: str, port: int, app: str, env: dict[str, str], *extra: str
) -> subprocess.Popen[bytes]:
    argv = [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(GUNICORN_WORKERS),
        *extra,
        app,
    ]
    return procs.start(name, argv, env)


# --------------------------------------------------------------------------- payloads


def bot_env(github: Any, where: Path, port: int) -> dict[str, str]:
    """The bot's settings, as the bot's tests set them (the README's names)."""
    return settings_for(github, where, port)


def push_payload(github: Any, sha: str) -> dict[str, Any]:
    """GitHub's example push delivery, pointed at our repository and commit."""
    return delivery(github, REPO, sha)


# --------------------------------------------------------------------------- (1) ingestion


def run_wrk(
    url: str, script: Path, body: Path, signature: str, tag: str, seconds: int
) -> dict[str, Any]:
    argv = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        str(body),
        signature,
        tag,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            result: dict[str, Any] = json.loads(line[6:])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk exit {proc.returncode}: {(proc.stdout + proc.stderr)[-600:]}")


def ingestion(
    tmp: Path, procs: Processes, github: Any, rounds: int, seconds: int
) -> tuple[Case, Case, Case, list[str]]:
    from webhooks.verify import sign

    rps = Case(
        f"(1) signed pushes accepted per second (gunicorn, {GUNICORN_WORKERS} sync workers, "
        f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS})",
        "ratio ≥ 0.80",
        "rps",
        met_if=lambda o, r: r is not None and r >= 0.8,
    )
    floor = Case(
        "(1a) the floor: a bare endpoint that only reads, verifies and parses the body",
        INFORMATION,
        "rps",
    )
    p99 = Case(
        "(2) p99 answer time under that load",
        "< 50 ms",
        "ms",
        met_if=lambda o, r: o < 0.050,
    )
    notes: list[str] = []

    where = tmp / "ingest"
    where.mkdir()
    bot_port, bare_port, floor_port = free_port(), free_port(), free_port()
    env = bot_env(github, where, bot_port)
    data_dir = Path(env["DOCKERCISE_DATA_DIR"])
    (tmp / "bare_app.py").write_text(BARE_APP)
    (tmp / "floor_app.py").write_text(FLOOR_APP)
    gunicorn(procs, "gunicorn-bot", bot_port, "bot.web:create_bot_app()", env)
    gunicorn(procs, "gunicorn-bare", bare_port, "bare_app:app", {}, "--pythonpath", str(tmp))
    secret = {"BENCH_WEBHOOK_SECRET": WEBHOOK_SECRET}
    gunicorn(procs, "gunicorn-floor", floor_port, "floor_app:app", secret, "--pythonpath", str(tmp))

    payload = push_payload(github, secrets.token_hex(20))
    body = json.dumps(payload).encode()
    body_file = tmp / "push.json"
    body_file.write_bytes(body)
    signature = sign(body, WEBHOOK_SECRET)
    script = tmp / "signed-push.lua"
    script.write_text(WRK_LUA)
    bot_url = f"http://127.0.0.1:{bot_port}/webhooks/github"
    bare_url = f"http://127.0.0.1:{bare_port}/hook"
    floor_url = f"http://127.0.0.1:{floor_port}/hook"

    def answers(url: str) -> bool:
        return http(url, b"{}", {"Content-Type": "application/json"}) in (202, 401)

    for name, url in (
        ("gunicorn-bot", bot_url),
        ("gunicorn-bare", bare_url),
        ("gunicorn-floor", floor_url),
    ):
        if not wait_until(partial(answers, url), 30):
            rps.failures.append(f"{name} did not start: {procs.log(name)}")
    if rps.failures:
        return rps, floor, p99, notes

    # Warm-up: the apps' workers import, open their databases, compile their routes.
    for url in (bare_url, floor_url, bot_url):
        run_wrk(url, script, body_file, signature, "warm", 2)
    sent_202 = 0
    # bare, floor, bot, then bot, floor, bare, ...: drift in the machine's load hits all alike.
    for i in range(rounds):
        order = [("bare", bare_url), ("floor", floor_url), ("bot", bot_url)]
        if i % 2:
            order.reverse()
        for who, url in order:
            try:
                result = run_wrk(url, script, body_file, signature, f"r{i}", seconds)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                rps.failures.append(f"{who}: {e}")
                continue
            codes = result["statuses"]
            errors = {k: v for k, v in result["errors"].items() if v}
            notes.append(
                f"round {i + 1} {who}: {result['requests']:,} requests in "
                f"{result['duration_us'] / 1e6:.1f} s = {result['rps']:,.0f}/s; "
                f"p50 {result['p50_us'] / 1000:.1f} ms, p90 {result['p90_us'] / 1000:.1f} ms, "
                f"p99 {result['p99_us'] / 1000:.1f} ms, max {result['max_us'] / 1000:.1f} ms; "
                f"statuses {codes}" + (f"; socket errors {errors}" if errors else "")
            )
            ok = codes.get("202", 0)
            if who == "bot":
                sent_202 += ok
            if ok != result["requests"]:
                (rps.failures if who == "bot" else notes).append(
                    f"{who}: {result['requests'] - ok} answer(s) were not 202: {codes}"
                )
            if who == "floor":
                floor.ours.append(result["rps"])
                continue
            (rps.ours if who == "bot" else rps.base).append(result["rps"])
            (p99.ours if who == "bot" else p99.base).append(result["p99_us"] / 1e6)
            if who == "bare":
                floor.base.append(result["rps"])
    # Each accepted delivery must really be recorded and queued, not just answered.
    try:
        db = sqlite3.connect(data_dir / "state.db")
        recorded = db.execute("select count(*) from builds where delivery like 'r%'").fetchone()[0]
        db.close()
        notes.append(
            f"builds recorded by the bot in the measured rounds: {recorded:,} "
            f"(202 answers: {sent_202:,}); no worker ran, so they all stayed queued"
        )
    except sqlite3.Error as e:
        notes.append(f"could not count the recorded builds: {e}")
    notes.append(f"request body: {len(body):,} bytes (GitHub's example push, signed)")
    return rps, floor, p99, notes


# --------------------------------------------------------------------------- (2) latency


class DockerEvents:
    """Container create/start events, timed by the engine, collected from before we send."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env()
        self.events: list[tuple[str, dict[str, str], float]] = []
        self._lock = threading.Lock()
        self._stream = self.client.events(
            decode=True, filters={"type": "container", "event": ["create", "start"]}
        )
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for ev in self._stream:
                action = ev.get("Action") or ev.get("status") or ""
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                when = ev["timeNano"] / 1e9 if "timeNano" in ev else float(ev.get("time", 0))
                with self._lock:
                    self.events.append((action, attrs, when))
        except Exception:  # the stream is closed at the end
            return

    def first(self, action: str, label: str, value: str, after: float) -> float | None:
        with self._lock:
            for act, attrs, when in self.events:
                if act == action and attrs.get(label) == value and when >= after:
                    return when
        return None

    def close(self) -> None:
        self._stream.close()
        self.client.close()


@dataclass
class Timeline:
    sent: float
    answered: float | None = None
    first_call: float | None = None
    git_first: float | None = None
    git_done: float | None = None
    pending: float | None = None
    created: float | None = None
    started: float | None = None


STEPS = [
    ("answered", "webhook answered (202)"),
    ("first_call", "first call to the fake GitHub (an announcer claimed the build)"),
    ("pending", "`pending` posted (the commit's pipeline read through the API)"),
    ("git_first", "checkout: first git request (a consumer took the build off the queue)"),
    ("git_done", "checkout: last git request answered"),
    ("created", "stage container created (engine's event)"),
    ("started", "stage container started (engine's event)"),
]


def latency(
    tmp: Path, procs: Processes, github: Any, calls: list[Call], samples: int, idle: float
) -> tuple[Case, list[Timeline], list[str]]:
    from webhooks.verify import sign

    case = Case(
        f"(3) delivery → first stage container started (`dockercise serve`, idle {idle:g} s)",
        "< 1 s",
        "s",
        met_if=lambda o, r: o < 1.0,
    )
    notes = case.notes
    where = tmp / "latency"
    where.mkdir()
    port = free_port()
    env = bot_env(github, where, port)
    tag = secrets.token_hex(4)
    stage = f"latency_{tag}"
    ours = [stage, tag]
    pipeline = f'{stage}:\n  img: {IMAGE}\n  run: "true"\n'
    events = DockerEvents()
    server = procs.start("serve", [str(BIN / "dockercise"), "serve", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    timelines: list[Timeline] = []
    try:
        if not wait_until(lambda: http(f"{url}/healthz") == 200, 30):
            case.failures.append(f"dockercise serve did not start: {procs.log('serve')}")
            return case, timelines, ours

        def final(sha: str) -> bool:
            return any(s["state"] != "pending" for s in github.statuses_for(sha))

        def deliver(sha: str, delivery: str) -> tuple[float, float, int]:
            body = json.dumps(push_payload(github, sha)).encode()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET),
            }
            sent = time.time()
            code = http(f"{url}/webhooks/github", body, headers, timeout=10)
            return sent, time.time(), code

        def baseline() -> float | None:
            sent = time.time()
            done = subprocess.run(
                ["docker", "run", "--rm", "--label", f"dockercise.bench={tag}", IMAGE, "true"],
                capture_output=True,
            )
            started = wait_until(
                lambda: events.first("start", "dockercise.bench", tag, sent), 5, step=0.01
            )
            if done.returncode != 0 or started is None:
                case.failures.append(f"baseline: exit {done.returncode} {done.stderr[-200:]!r}")
                return None
            return float(started) - sent

        # Warm-up (not measured): the first build fetches the installation token, which
        # the bot then keeps for its hour; the engine's first `docker run` pays its caches.
        baseline()
        sha = github.push(REPO, {".dockercise.yml": pipeline})
        sent, _, code = deliver(sha, f"{tag}-warm")
        if code != 202 or not wait_until(lambda: final(sha), 60):
            case.failures.append(f"warm-up build: answer {code}; {procs.log('serve')}")
            return case, timelines, ours
        warm = events.first("start", "dockercise.stage", stage, sent)
        if warm is not None:
            notes.append(f"warm-up build (not counted): {warm - sent:.3f} s")
        last_done = time.time()

        for i in range(samples):
            if i % 2 and (took := baseline()) is not None:  # alternate which goes first
                case.base.append(took)
            sha = github.push(REPO, {".dockercise.yml": pipeline, "n": f"{i}\n"})
            time.sleep(max(0.0, last_done + idle - time.time()))
            sent, answered, code = deliver(sha, f"{tag}-{i}")
            line = Timeline(sent, answered if code == 202 else None)
            if code != 202:
                case.failures.append(f"sample {i}: answered {code}")
                continue
            started = wait_until(
                partial(events.first, "start", "dockercise.stage", stage, sent), 30
            )
            if not wait_until(partial(final, sha), 60):
                case.failures.append(f"sample {i}: no final status within 60 s")
            last_done = time.time()
            line.started = started
            line.created = events.first("create", "dockercise.stage", stage, sent)
            mine = [c for c in list(calls) if c[0] >= sent]
            git = [c for c in mine if c[2].startswith("/git/")]
            status = [c for c in mine if "/statuses/" in c[2] and sha in c[2]]
            line.first_call = mine[0][0] if mine else None
            line.git_first = git[0][0] if git else None
            line.git_done = git[-1][1] if git else None
            line.pending = status[0][0] if status else None
            timelines.append(line)
            if started is None:
                case.failures.append(f"sample {i}: no start event for {stage}")
            else:
                case.ours.append(started - sent)
            if i % 2 == 0 and (took := baseline()) is not None:
                case.base.append(took)
    finally:
        procs.stop(server)
        events.close()
        try:
            db = sqlite3.connect(Path(env["DOCKERCISE_DATA_DIR"]) / "state.db")
            run_ids = [r[0] for r in db.execute("select run_id from builds where run_id <> ''")]
            db.close()
        except sqlite3.Error:
            run_ids = []
        ours.extend(run_ids)
        notes.append(f"runs made by the bot: {len(run_ids)}")
    return case, timelines, ours


# --------------------------------------------------------------------------- report


def breakdown(timelines: list[Timeline]) -> str:
    if not timelines:
        return "(no build was timed)"
    rows = [
        "| step (ms after the delivery was sent) | median | samples |",
        "| --- | ---: | --- |",
    ]
    for attr, label in STEPS:
        values = [
            (getattr(t, attr) - t.sent) * 1000 for t in timelines if getattr(t, attr) is not None
        ]
        med = f"{statistics.median(values):.0f}" if values else "—"
        rows.append(f"| {label} | {med} | {', '.join(f'{v:.0f}' for v in values)} |")
    return "\n".join(rows)


def details(cases: list[Case], baselines: list[str], header: str) -> str:
    out = []
    for c, base in zip(cases, baselines, strict=True):
        out.extend(case_details(c, base, c.fmt))
    out.append(f"- {header}")
    return "\n".join(out)


def wrk_version() -> str:
    """wrk's version line without its copyright, for the header line."""
    try:
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (wrk.splitlines() or ["wrk ?"])[0].split(" Copyright")[0].strip()


# --------------------------------------------------------------------------- containers


def leftovers(stage: str, tag: str, run_ids: list[str]) -> list[str]:
    """Containers this benchmark (or the bot it ran) made that still exist; removed here."""
    filters = [f"label=dockercise.stage={stage}", f"label=dockercise.bench={tag}"]
    filters += [f"label=dockercise.run={r}" for r in run_ids]
    found: set[str] = set()
    for f in filters:
        proc = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", "--filter", f], capture_output=True, text=True
        )
        found.update(proc.stdout.split())
    if found:
        subprocess.run(["docker", "rm", "-f", *sorted(found)], capture_output=True)
    return sorted(found)


@contextmanager
def fake_github(root: Path) -> Iterator[tuple[Any, list[Call]]]:
    """The tests' fake GitHub, with each request's start and end time recorded."""
    from flask import g, request

    from tests.bot.fake_github import FakeGitHub

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    calls: list[Call] = []
    fake = FakeGitHub(root)

    @fake.app.before_request
    def started() -> None:
        g.bench_started = time.time()

    @fake.app.after_request
    def ended(response: Any) -> Any:
        now = time.time()
        calls.append((getattr(g, "bench_started", now), now, request.path, request.method))
        return response

    with fake:
        yield fake, calls


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short wrk runs, fewer builds")
    parser.add_argument(
        "--idle",
        type=float,
        default=2.0,
        help="seconds the bot idles before "
        "each timed delivery (default 2; the queue polls less often when idle)",
    )
    parser.add_argument(
        "--tmpdir",
        type=Path,
        help="where the bot's data directory goes (default: the system's temporary directory)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "latest-webhooks.md")
    args = parser.parse_args()
    rounds, seconds, samples = (1, 3, 3) if args.quick else (2, 10, 5)

    if shutil.which("wrk") is None:
        sys.exit("bench: wrk not found; install it with `apt-get install -y wrk` (Debian)")
    for tool in ("gunicorn", "dockercise"):
        if not (BIN / tool).exists():
            sys.exit(f"bench: {BIN / tool} not found (install the project into the venv)")
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if probe.returncode != 0:
        sys.exit(f"bench: image {IMAGE} is not on the engine (build images/busybox first)")

    started = time.perf_counter()
    header = machine(wrk_version())
    fs = subprocess.run(
        ["df", "--output=fstype", str(args.tmpdir or tempfile.gettempdir())],
        capture_output=True,
        text=True,
    ).stdout.split()[-1:]
    header += f", bot data directory on {fs[0] if fs else '?'}"
    tmp = Path(tempfile.mkdtemp(prefix="dockercise-bench-webhooks-", dir=args.tmpdir))
    (tmp / "logs").mkdir()
    procs = Processes(tmp / "logs")
    left: list[str] = []
    timelines: list[Timeline] = []
    try:
        with fake_github(tmp / "github") as (github, calls):
            rps, floor, p99, ingest_notes = ingestion(tmp, procs, github, rounds, seconds)
            procs.stop_all()  # the gunicorns: nothing of part one runs during part two
            rps.notes.extend(ingest_notes)
            lat, timelines, ours = latency(tmp, procs, github, calls, samples, args.idle)
            tokens = sum(1 for c in calls if c[2].endswith("/access_tokens"))
            lat.notes.append(f"installation tokens requested from the fake GitHub: {tokens}")
            left = leftovers(ours[0], ours[1], ours[2:])
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started

    cases = [rps, floor, p99, lat]
    baselines = [
        f"bare Flask `@app.post('/hook')` answering 202, same gunicorn, same wrk "
        f"(ratio = bot / bare, higher is better; {rounds} round(s) of {seconds} s each, "
        "alternating, after a 2 s warm-up of each). The bot verifies, parses, records the "
        "delivery durably (SQLite, deduplicated by delivery id) and answers; the consumers' "
        "announcers do the rest, and none runs here",
        "the same bare endpoint, in the same rounds. The floor reads the body, checks "
        "`X-Hub-Signature-256` (hmac, sha256) and parses it (json), then answers 202: "
        "the steps no receiver may skip, and an upper bound for case (1)'s ratio",
        "the bare endpoint's p99 in the same rounds (target absolute; ratio for information)",
        f"`docker run --rm {IMAGE} true`: command issued → the engine's start event "
        f"({samples} builds, each a new commit, after one warm-up build)",
    ]
    publish(
        "dockercise bot benchmark",
        [
            header,
            table(cases),
            details(
                cases,
                baselines,
                f"whole benchmark {elapsed:.0f} s{' (--quick)' if args.quick else ''}; "
                f"containers left behind: {len(left) if left else 'none'}"
                + (f" (removed: {', '.join(c[:12] for c in left)})" if left else ""),
            ),
            "## Where a build's first second goes (case 3, medians)",
            breakdown(timelines),
        ],
        args.output,
    )


if __name__ == "__main__":
    main()
