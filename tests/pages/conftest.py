"""Results stores filled by hand in the SPEC §7 layout, and the site over them."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from pages.local import create_local_app
from runner.store.local import LocalStore

if TYPE_CHECKING:
    pass

RUN_ID = "20261124T100000000Z-0123abcd"
OLDER_ID = "20261123T090000000Z-4567ef01"
PIPELINE = "demo"
ODD = "<img src=x onerror=alert(1)>"
"""A stage name that is HTML (no '/': stage names cannot hold one)."""
SECRET_OUTPUT = "hidden-output-42"


@dataclass
class StageFile:
    name: str
    status: str
    exit_code: int | None = None
    reason: str | None = None
    log: str | None = None
    """The log's text; None: no log file (a noLog stage, or one that never ran)."""
    artefact: Mapping[str, str] | None = None
    started: str | None = "2026-11-24T10:00:01.000Z"
    finished: str | None = "2026-11-24T10:00:03.500Z"
    extra: dict[str, Any] = field(default_factory=dict)


def write_run(
    root: Path,
    run_id: str,
    stages: Sequence[StageFile],
    edges: Sequence[tuple[str, str]] = (),
    status: str = "failure",
    pipeline: str = PIPELINE,
    finished: str | None = "2026-11-24T10:00:09.000Z",
) -> Path:
    """Write run.json, <stage>.json, <stage>.log and <stage>.zip as the engine does."""
    folder = root / "run" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    run = {
        "id": run_id,
        "pipeline": pipeline,
        "status": status,
        "trigger": {"kind": "manual", "host": "builder"},
        "started": "2026-11-24T10:00:00.000Z",
        "finished": finished,
        "stages": [{"name": s.name, "status": s.status} for s in stages],
        "edges": [list(e) for e in edges],
    }
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    for s in stages:
        data = {
            "name": s.name,
            "status": s.status,
            "exit_code": s.exit_code,
            "reason": s.reason,
            "started": s.started,
            "finished": s.finished,
            "image": "dockercise/busybox",
            "logs": f"{s.name}.log" if s.log is not None else None,
            "artefact": f"{s.name}.zip" if s.artefact is not None else None,
            "attempts": 1,
            **s.extra,
        }
        (folder / f"{s.name}.json").write_text(json.dumps(data), encoding="utf-8")
        if s.log is not None:
            (folder / f"{s.name}.log").write_text(s.log, encoding="utf-8")
        if s.artefact is not None:
            with zipfile.ZipFile(folder / f"{s.name}.zip", "w") as z:
                for member, text in s.artefact.items():
                    z.writestr(member, text)
    return folder


STAGES = [
    StageFile("build", "success", 0, log="building\nbuilt <b>ok</b>\n", artefact={"app.txt": "v1"}),
    StageFile("secret", "success", 0, log=None),  # noLog: logs null, no file
    StageFile("test", "failure", 3, "exit 3", log="testing\nboom\n"),
    StageFile("deploy", "skipped", None, "needs test, which failed", log=None),
    StageFile("☃", "success", 0, log="snow ☃\n"),
    StageFile(ODD, "error", None, "no such image", log="dockercise: no such image\n"),
]
EDGES = [("build", "test"), ("test", "deploy"), ("secret", "deploy"), ("build", "☃"), ("☃", ODD)]


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    """A store with two runs of `demo`; the newest is RUN_ID (STAGES, EDGES)."""
    root = tmp_path / "results"
    write_run(root, RUN_ID, STAGES, EDGES)
    write_run(root, OLDER_ID, [StageFile("build", "success", 0, log="ok\n")], status="success")
    # The secret stage printed SECRET_OUTPUT; a noLog stage has no log, but make
    # sure nothing would show it even if a stray file were there with logs null.
    (root / "run" / RUN_ID / "secret.log").write_text(SECRET_OUTPUT, encoding="utf-8")
    return root


@pytest.fixture
def app(store_root: Path) -> Flask:
    return create_local_app(LocalStore(store_root))


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` for real on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(  # a short poll interval: shutdown() returns quickly
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="results-site"
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
