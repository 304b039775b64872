"""The results site served for real in a process of its own, and its memory while it serves.

Shared by the slow memory test (tests/pages/test_memory.py) and bench/serving.py:
a store holding one run whose log and artefact are as big as asked (sparse
files, so making them costs no disk and no time), a server process (waitress,
as `dockercise serve` and `serve-results` run it, or gunicorn, as the bot's web
side may be deployed),
and downloads timed while the server's resident memory is sampled from /proc.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RUN_ID", "Measured", "Server", "big_run", "serve_store"]

RUN_ID = "20261130T090000000Z-0a0b0c0d"
PIPELINE = "big"
TAIL = "".join(f"the end of the log, line {i}\n" for i in range(20)).encode()

_APP = """
import os, sys
from pathlib import Path
sys.path.insert(0, os.environ["DOCKERCISE_SOURCE"])
from pages.local import create_local_app
from runner.store.local import LocalStore
app = create_local_app(LocalStore(Path(os.environ["DOCKERCISE_STORE"])))
"""
_BARE = """
import os
from pathlib import Path
from flask import Flask, send_file
app = Flask(__name__)
runs = Path(os.environ["DOCKERCISE_STORE"]) / "run"
@app.get("/results/local/<pipeline>/run/<run_id>/<name>")
def download(pipeline, run_id, name):
    return send_file(runs / run_id / name)
@app.get("/results/local/<pipeline>/")
@app.get("/results/local/<pipeline>/run/<run_id>")
def page(pipeline, run_id=None):
    return "ok"
"""
_WAITRESS = """
import os, sys
exec(open(sys.argv[1]).read())
from webhooks.server import Server
Server(app, "127.0.0.1", int(sys.argv[2])).serve_forever()
"""


def big_run(root: Path, size: int) -> Path:
    """A store with one run of one stage whose .log and .zip are `size` bytes (sparse)."""
    folder = root / "run" / RUN_ID
    folder.mkdir(parents=True)
    run = {
        "id": RUN_ID,
        "pipeline": PIPELINE,
        "status": "success",
        "started": "2026-11-30T09:00:00.000Z",
        "finished": "2026-11-30T09:01:00.000Z",
        "stages": [{"name": "build", "status": "success"}],
        "edges": [],
    }
    stage = {"name": "build", "status": "success", "exit_code": 0, "logs": "build.log"}
    stage["artefact"] = "build.zip"
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "build.json").write_text(json.dumps(stage))
    with (folder / "build.log").open("wb") as log:
        log.truncate(size - len(TAIL))  # a hole: zeros that take no disk
        log.seek(0, os.SEEK_END)
        log.write(TAIL)
    with (folder / "build.zip").open("wb") as artefact:
        artefact.truncate(size)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no VmRSS for {pid}")


@dataclass
class Measured:
    """One request: bytes received, seconds taken, the server's memory before and at its peak."""

    received: int
    seconds: float
    before: int
    peak: int

    @property
    def growth(self) -> int:
        return max(self.peak - self.before, 0)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def pids(self) -> list[int]:
        """The server's process and its children (gunicorn's workers)."""
        found = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            found += [int(p) for p in children.read_text().split()]
        return found

    def memory(self) -> int:
        total = 0
        for pid in self.pids:
            with suppress(OSError):
                total += rss(pid)
        return total

    def get(self, path: str) -> tuple[int, int]:
        """GET `path`, reading the body in 1 MiB pieces and dropping them: (status, bytes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            received = 0
            while piece := response.read(1 << 20):
                received += len(piece)
            return response.status, received
        finally:
            connection.close()

    def measure(self, path: str, interval: float = 0.005) -> Measured:
        """GET `path` while sampling the server's memory every `interval` seconds."""
        before = self.memory()
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, self.memory())
                time.sleep(interval)

        sampler = threading.Thread(target=sample, name="rss-sampler")
        sampler.start()
        start = time.perf_counter()
        try:
            status, received = self.get(path)
        finally:
            seconds = time.perf_counter() - start
            done.set()
            sampler.join()
        peak = max(peak, self.memory())
        if status != 200:
            raise AssertionError(f"GET {path}: {status}")
        return Measured(received, seconds, before, peak)


@contextmanager
def serve_store(
    store: Path, scratch: Path, server: str = "waitress", bare: bool = False
) -> Iterator[Server]:
    """The local site of `store` served on 127.0.0.1 by `waitress` or `gunicorn` (one worker).

    `bare` serves a bare Flask app instead, which sends the same files with
    Flask's `send_file` (Werkzeug's file wrapper) and nothing else: the floor.
    """
    app = scratch / "served_app.py"
    app.write_text(_BARE if bare else _APP)
    port = _free_port()
    env = dict(os.environ)
    env.update(
        DOCKERCISE_SOURCE=str(Path(__file__).resolve().parents[2]), DOCKERCISE_STORE=str(store)
    )
    if server == "gunicorn":
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "--chdir",
            str(scratch),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
            "served_app:app",
        ]
    else:
        command = [sys.executable, "-c", _WAITRESS, str(app), str(port)]
    log = (scratch / f"{server}.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Server(process, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if running.get(f"/results/local/{PIPELINE}/")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not start: see {scratch / f'{server}.log'}")
            time.sleep(0.1)
        # Warm up: every page once, so imports and templates are in memory before measuring.
        running.get(f"/results/local/{PIPELINE}/run/{RUN_ID}")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
