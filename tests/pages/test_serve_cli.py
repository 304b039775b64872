"""`dockercise serve-results`: the local store's site, on the host and port asked for."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest
from flask import Flask

from cli.main import main
from tests.pages.conftest import RUN_ID
from tests.siege import IDLE, answer_time, siege, threads_of


class _Served:
    """Stands in for webhooks.server.Server: records what would be served."""

    made: ClassVar[list[_Served]] = []

    def __init__(self, app: Flask, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self.url = f"http://{host}:{port}"
        self.closed = False
        _Served.made.append(self)

    def serve_forever(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[_Served]:
    _Served.made = []
    monkeypatch.setattr("webhooks.server.Server", _Served)
    return _Served.made


def test_serve_results_serves_the_local_store(
    store_root: Path, served: list[_Served], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve-results", "--results", str(store_root), "--port", "9123"])
    assert exit_info.value.code == 0
    assert f"{store_root.as_uri()} at http://127.0.0.1:9123/" in capsys.readouterr().out
    (server,) = served
    assert (server.host, server.port, server.closed) == ("127.0.0.1", 9123, True)
    with server.app.test_client() as client:
        with client.get("/") as home:
            assert home.headers["Location"] == "/results/local/demo/"
        with client.get(f"/results/local/demo/run/{RUN_ID}") as page:
            assert page.status_code == 200


def test_serve_results_reads_the_project_store_by_default(
    store_root: Path, served: list[_Served], capsys: pytest.CaptureFixture[str]
) -> None:
    project = store_root.parent / "project"
    (project / ".dockercise").mkdir(parents=True)
    store_root.rename(project / ".dockercise" / "results")
    with pytest.raises(SystemExit):
        main(["serve-results", "-C", str(project), "--host", "0.0.0.0", "--port", "0"])
    assert "http://0.0.0.0:0/" in capsys.readouterr().out
    with served[0].app.test_client() as client, client.get("/results/local/demo/") as runs:
        assert RUN_ID in runs.get_data(as_text=True)


def test_serve_results_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve-results", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "70000" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_idle_and_slow_clients_do_not_stop_serve_results(store_root: Path) -> None:
    """A production server: 300 idle connections and slowloris ones hold no thread."""
    port = _free_port()
    dockercise = str(Path(sys.executable).parent / "dockercise")
    proc = subprocess.Popen(
        [dockercise, "serve-results", "--results", str(store_root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/results/local/demo/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve-results never answered"
                time.sleep(0.1)
        threads = threads_of(proc.pid)
        with siege(port):
            assert answer_time(url) < 2
            assert threads_of(proc.pid) < threads + IDLE // 10
        with urllib.request.urlopen(url, timeout=5) as page:
            assert page.headers["X-Content-Type-Options"] == "nosniff"
        # A body far over the limit is refused by the server itself, with the same headers.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.putrequest("POST", "/webhooks/github")
        connection.putheader("Content-Length", str(100 * 1024 * 1024))
        connection.endheaders()
        refused = connection.getresponse()
        assert refused.status == 413
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        assert (
            refused.headers["Content-Security-Policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        connection.close()
    finally:
        proc.terminate()
        proc.wait(10)
