"""The /results routes with Flask's test client, over a store filled by hand."""

from __future__ import annotations

import http.client
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from pages import reading
from pages.app import create_results_app
from pages.links import local_run_url, run_url
from pages.local import create_local_app
from runner.errors import StoreUnavailable
from runner.store.base import ResultStore, valid_part
from runner.store.local import FileChunks, LocalStore
from tests.pages.conftest import (
    EDGES,
    ODD,
    OLDER_ID,
    RUN_ID,
    SECRET_OUTPUT,
    STAGES,
    StageFile,
    serve,
    write_run,
)

RUNS = "/results/local/demo/"
RUN = f"{RUNS}run/{RUN_ID}"


def _text(client: FlaskClient, url: str) -> str:
    with client.get(url) as response:
        assert response.status_code == 200, (url, response.status_code)
        return response.get_data(as_text=True)


def test_home_leads_to_the_pipeline_with_the_newest_run(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == RUNS


def test_run_list_shows_runs_newest_first_with_status_trigger_and_duration(
    client: FlaskClient,
) -> None:
    page = _text(client, RUNS)
    rows = re.findall(r'<tr class="run" data-run="([^"]+)" data-status="([^"]+)"', page)
    assert rows == [(RUN_ID, "failure"), (OLDER_ID, "success")]
    assert f'href="{RUN}"' in page
    assert "manual" in page and "host: builder" in page
    assert "2026-11-24 10:00:00 UTC" in page and "9.0 s" in page


def test_run_page_shows_graph_stages_and_logs(client: FlaskClient) -> None:
    page = _text(client, RUN)
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('<g class="node"') == len(STAGES)
    assert svg.count('<path class="edge"') == len(EDGES)
    assert 'data-stage="test" data-status="failure"' in svg
    rows = re.findall(r'<tr class="stage" data-stage="([^"]*)" data-status="([^"]+)"', page)
    assert rows == [(_escaped(s.name), s.status) for s in STAGES]
    assert "exit 3" in page and "needs test, which failed" in page
    assert "testing\nboom" in page
    assert "built &lt;b&gt;ok&lt;/b&gt;" in page and "<b>ok</b>" not in page
    assert "snow ☃" in page


def _escaped(name: str) -> str:
    return name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_odd_stage_names_never_become_markup(client: FlaskClient) -> None:
    page = _text(client, RUN)
    assert ODD not in page
    assert _escaped(ODD) in page
    assert f"{RUN}/{quote('☃', safe='')}.log" in page


def test_a_nolog_stage_output_is_never_shown_nor_served(client: FlaskClient) -> None:
    page = _text(client, RUN)
    assert SECRET_OUTPUT not in page
    section = page[page.index('data-stage="secret"', page.index('class="logs"')) :]
    assert section.index("output hidden (noLog)") < section.index("</details>")
    assert f"{RUN}/secret.log" not in page
    assert client.get(f"{RUN}/secret.log").status_code == 404
    state = _text(client, f"{RUN}.json")
    assert SECRET_OUTPUT not in state


def test_a_skipped_stage_says_it_has_no_output(client: FlaskClient) -> None:
    page = _text(client, RUN)
    section = page[page.index('data-stage="deploy"', page.index('class="logs"')) :]
    assert section.index("no output (skipped)") < section.index("</details>")


def test_raw_log_and_artefact_downloads(client: FlaskClient) -> None:
    log = client.get(f"{RUN}/build.log")
    assert log.status_code == 200
    assert log.mimetype == "text/plain" and log.headers["X-Content-Type-Options"] == "nosniff"
    assert log.get_data() == b"building\nbuilt <b>ok</b>\n"
    log.close()
    snow = client.get(f"{RUN}/{quote('☃.log')}")
    assert snow.get_data(as_text=True) == "snow ☃\n"
    snow.close()
    artefact = client.get(f"{RUN}/build.zip")
    assert artefact.status_code == 200 and artefact.mimetype == "application/zip"
    assert "attachment" in artefact.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(artefact.get_data())) as z:
        assert z.read("app.txt") == b"v1"
    artefact.close()
    page = _text(client, RUN)
    assert f'href="{RUN}/build.zip"' in page and f'href="{RUN}/build.log"' in page


def test_state_json_holds_run_and_stages_and_is_not_cached(client: FlaskClient) -> None:
    response = client.get(f"{RUN}.json")
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert data["run"]["id"] == RUN_ID
    assert [s["name"] for s in data["stages"]] == [s.name for s in STAGES]
    assert data["stages"][2]["exit_code"] == 3
    assert re.fullmatch(r"[0-9a-f]{16}", data["version"])


def test_a_finished_run_page_has_no_script(client: FlaskClient) -> None:
    page = _text(client, RUN)
    assert "<script" not in page and "http-equiv" not in page


def test_a_running_run_page_polls_until_it_changes(store_root: Path, client: FlaskClient) -> None:
    running_id = "20261125T000000000Z-99999999"
    stages = [StageFile("a", "running", log="half\n", finished=None), StageFile("b", "waiting")]
    folder = write_run(store_root, running_id, stages, [("a", "b")], "running", finished=None)
    (folder / "b.json").unlink()  # not started: only run.json knows it
    data = json.loads((folder / "a.json").read_text())
    data["logs"] = None  # the engine names the log only when the stage ends
    (folder / "a.json").write_text(json.dumps(data))
    page = _text(client, f"{RUNS}run/{running_id}")
    poll = f"{RUNS}run/{running_id}.json"
    before = client.get(poll).get_json()["version"]
    assert f'data-poll="{poll}"' in page and f'data-version="{before}"' in page
    assert '<meta http-equiv="refresh"' in page and "half" in page and "no output yet" in page
    assert _text(client, "/results/_static/live.js").count("setTimeout") == 1
    data.update(status="success", finished="2026-11-25T00:00:02.000Z", logs="a.log")
    (folder / "a.json").write_text(json.dumps(data))
    assert client.get(poll).get_json()["version"] != before


def test_a_long_log_shows_its_end_and_links_the_whole(
    store_root: Path, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "LOG_TAIL", 100)
    lines = "".join(f"line {i:05d}\n" for i in range(2000))
    (store_root / "run" / RUN_ID / "test.log").write_text(lines + "\x1b[31mred\x1b[0m end\n")
    page = _text(client, RUN)
    assert "last part only" in page and "red end\n" in page and "line 00000" not in page
    assert "line 01999" in page and "\x1b" not in page


def test_pages_of_runs_and_their_bounds(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "PAGE_SIZE", 1)
    first = _text(client, RUNS)
    assert RUN_ID in first and OLDER_ID not in first and "?page=1" in first
    second = _text(client, f"{RUNS}?page=1")
    assert OLDER_ID in second and RUN_ID not in second and "?page=0" in second
    assert "No runs on this page" in _text(client, f"{RUNS}?page=7")
    assert client.get(f"{RUNS}?page=-1").status_code == 404


class SpyStore(LocalStore):
    """A LocalStore that records every (run id, name) it is asked to read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.asked: list[tuple[str, str]] = []

    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        self.asked.append((run_id, name))
        return super().read_bytes(run_id, name)

    def names(self, run_id: str) -> list[str]:
        self.asked.append((run_id, ""))
        return super().names(run_id)

    def iter_log(self, run_id: str, stage: str) -> Iterator[bytes]:
        self.asked.append((run_id, f"{stage}.log"))
        return super().iter_log(run_id, stage)

    def stream(self, run_id: str, name: str, start: int = 0) -> tuple[int, FileChunks] | None:
        self.asked.append((run_id, name))
        return super().stream(run_id, name, start)


@pytest.fixture
def spy(store_root: Path) -> SpyStore:
    return SpyStore(store_root)


BAD = [
    "/results/local/nope/",  # no such pipeline
    "/results/someone/demo/",  # not a local owner
    "/results/local/demo/run/20990101T000000000Z-ffffffff",  # no such run
    "/results/local/demo/run/..",
    "/results/local/demo/run/%2e%2e",
    "/results/local/demo/run/%2E%2E.json",
    "/results/local/demo/run/..%2F..%2Fetc",
    "/results/local/demo/run/..%2f..%2fetc%2fpasswd",
    "/results/local/demo/run/%2e%2e%5crun.json",
    "/results/local/demo/run/a%5c..%5c..",
    "/results/local/demo/run/x%00y",
    "/results/local/%2e%2e/demo/",
    "/results/%2e%2e/%2e%2e/",
    "/results/local/..%2Fdemo/",
    "/results/local/demo%5c..%5c/",
    f"/results/local/demo/run/{RUN_ID}%2F..%2F{OLDER_ID}",
    f"/results/local/demo/run/{RUN_ID}/nosuch.log",
    f"/results/local/demo/run/{RUN_ID}/..%2F{OLDER_ID}%2Fbuild.log",
    f"/results/local/demo/run/{RUN_ID}/%2e%2e.log",
    f"/results/local/demo/run/{RUN_ID}/..%5cbuild.log",
    f"/results/local/demo/run/{RUN_ID}/build%00.log",
    f"/results/local/demo/run/{RUN_ID}/run.json",
    f"/results/local/demo/run/{RUN_ID}/build.json",
    f"/results/local/demo/run/{RUN_ID}/build.txt",
    f"/results/local/demo/run/{RUN_ID}/build",
    f"/results/local/demo/run/{RUN_ID}/.log",
    f"/results/local/demo/run/{RUN_ID}/secret.log",  # noLog
    f"/results/local/demo/run/{RUN_ID}/deploy.log",  # skipped: no log
    f"/results/local/demo/run/{RUN_ID}/deploy.zip",  # no artefact
    f"/results/local/demo/run/{RUN_ID}/test.zip",
    f"/results/local/demo/run/{RUN_ID}.json.json",
    f"/results/local/demo/run/{RUN_ID}/build.log/x",
    "/results/local/demo/run/",
]


@pytest.mark.parametrize("url", BAD)
def test_bad_or_climbing_urls_are_404_and_read_nothing_outside(spy: SpyStore, url: str) -> None:
    with create_local_app(spy).test_client() as client:
        response = client.get(url)
        assert response.status_code == 404, url
        response.close()
    for run_id, name in spy.asked:
        assert valid_part(run_id) and (name == "" or valid_part(name)), (url, run_id, name)


def test_the_runs_of_another_pipeline_in_the_same_store_are_apart(store_root: Path) -> None:
    other = "20261126T000000000Z-aaaaaaaa"
    write_run(store_root, other, [StageFile("x", "success", 0, log="x\n")], pipeline="other")
    with create_local_app(LocalStore(store_root)).test_client() as client:
        assert client.get("/").headers["Location"] == "/results/local/other/"
        assert other in _text(client, "/results/local/other/")
        assert other not in _text(client, RUNS)
        assert client.get(f"/results/local/other/run/{RUN_ID}").status_code == 404
        assert client.get(f"/results/local/demo/run/{other}").status_code == 404
        assert client.get(f"/results/local/other/run/{other}/x.log").status_code == 200


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    with create_local_app(LocalStore(tmp_path / "none")).test_client() as client:
        assert "No runs in" in _text(client, "/")
        assert client.get("/results/local/demo/").status_code == 404


class DownStore(LocalStore):
    def run_ids(self) -> list[str]:
        raise StoreUnavailable("cannot reach s3://bucket: connection refused")


def test_an_unreachable_store_is_a_503_that_says_why(tmp_path: Path) -> None:
    store = DownStore(tmp_path)

    def locate(owner: str, repo: str) -> ResultStore | None:
        return store

    with create_results_app(locate).test_client() as client:
        response = client.get("/results/acme/app/")
        assert response.status_code == 503
        assert "connection refused" in response.get_data(as_text=True)


def test_every_page_forbids_inline_script(client: FlaskClient) -> None:
    for url in (RUNS, RUN, f"{RUN}.json", f"{RUN}/build.log", "/results/nope/x/"):
        response = client.get(url)
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        response.close()


def test_links_are_stable_and_served(client: FlaskClient) -> None:
    assert run_url("https://ci.example/", "acme", "app", RUN_ID) == (
        f"https://ci.example/results/acme/app/run/{RUN_ID}"
    )
    assert local_run_url("http://127.0.0.1:8080", "my pipe/☃", "r1") == (
        "http://127.0.0.1:8080/results/local/my%20pipe%2F%E2%98%83/run/r1"
    )
    assert _text(client, local_run_url("", "demo", RUN_ID)).count(RUN_ID) > 1


@pytest.mark.parametrize(
    "raw",
    [
        "/results/local/demo/run/../../../../etc/passwd",
        "/results/local/demo/run/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/results/local/demo/run/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/results/local/demo/run/{RUN_ID}/..%2F..%2F..%2Frun.json",
        f"/results/local/demo/run/{RUN_ID}/..%5C..%5Cbuild.log",
        "/results/local/demo/run/%00",
        "/results/local/%2E%2E%2F%2E%2E/run/x",
    ],
)
def test_climbing_urls_sent_raw_to_a_real_server_are_404(spy: SpyStore, raw: str) -> None:
    """What a browser would normalise away, sent as-is over HTTP to the real server."""
    with serve(create_local_app(spy)) as base:
        host, port = base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", raw)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
    assert response.status == 404, raw
    assert b"root:" not in body
    assert all(valid_part(r) and (n == "" or valid_part(n)) for r, n in spy.asked), spy.asked
