"""A stage's services on the run page (SPEC §14): a section and a link per service log,
served only when the stage's JSON lists it and keeps logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from pages.local import create_local_app
from runner.store.local import LocalStore
from tests.pages.conftest import StageFile, write_run

RUN_ID = "20261124T100000000Z-5e7c1ce5"
RUN = f"/results/local/demo/run/{RUN_ID}"


def _service(name: str, ready: float | None, code: int | None = None) -> dict[str, object]:
    return {
        "name": name,
        "image": f"{name}:1",
        "ready": ready,
        "exit_code": code,
        "logs": f"test.{name}.log",
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    root = tmp_path / "results"
    services = {"services": [_service("db", 1.5), _service("web", None, 3)]}
    quiet = {"services": [_service("db", 0.2)]}
    folder = write_run(
        root,
        RUN_ID,
        [
            StageFile("test", "error", None, "service web not ready", log="x\n", extra=services),
            StageFile("quiet", "success", 0, log=None, extra=quiet),  # noLog
        ],
    )
    (folder / "test.db.log").write_text("db <b>listening</b>\n", encoding="utf-8")
    (folder / "test.web.log").write_text("web broke\n", encoding="utf-8")
    (folder / "quiet.db.log").write_text("stray secret\n", encoding="utf-8")
    with create_local_app(LocalStore(root)).test_client() as c:
        yield c


def test_each_service_has_a_section_and_a_link_under_its_stage(client: FlaskClient) -> None:
    page = client.get(RUN).get_data(as_text=True)
    assert f'href="{RUN}/test.db.log"' in page and f'href="{RUN}/test.web.log"' in page
    logs = page[page.index('class="logs"') :]
    db = logs[logs.index('data-service="db"') :]
    assert "db:1" in db[: db.index("</details>")] and "ready after 1.5 s" in db
    assert "db &lt;b&gt;listening&lt;/b&gt;" in db and "<b>listening" not in page
    web = logs[logs.index('data-service="web"') :]
    assert "never ready" in web[: web.index("</details>")] and "exit 3" in web
    assert "web broke" in web


def test_a_service_log_is_served_as_plain_text(client: FlaskClient) -> None:
    response = client.get(f"{RUN}/test.db.log")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.get_data() == b"db <b>listening</b>\n"
    response.close()


@pytest.mark.parametrize("name", ["quiet.db.log", "test.cache.log", "nope.db.log", "test.db.zip"])
def test_service_logs_not_listed_or_of_a_nolog_stage_are_404(
    client: FlaskClient, name: str
) -> None:
    assert client.get(f"{RUN}/{name}").status_code == 404
    assert "stray secret" not in client.get(RUN).get_data(as_text=True)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[FlaskClient]:
    """A run whose `test` stage is running: its JSON names no log yet, but lists its services."""
    root = tmp_path / "results"
    running = {"logs": None, "services": [_service("db", None), _service("web", 0.0)]}
    hidden = {"logs": None, "services": [_service("db", None)]}
    folder = write_run(
        root,
        RUN_ID,
        [
            StageFile("test", "running", log="waiting\n", finished=None, extra=running),
            StageFile("quiet", "running", log=None, finished=None, extra=hidden),  # noLog
        ],
        status="running",
        finished=None,
    )
    (folder / "test.db.log").write_text("db starting\n", encoding="utf-8")
    (folder / "test.web.log").write_text("web up\n", encoding="utf-8")
    (folder / "quiet.db.log").write_text("stray secret\n", encoding="utf-8")
    with create_local_app(LocalStore(root)).test_client() as c:
        yield c


def test_a_running_stage_shows_its_services_and_their_logs(live: FlaskClient) -> None:
    page = live.get(RUN).get_data(as_text=True)
    assert f'href="{RUN}/test.db.log"' in page and f'href="{RUN}/test.web.log"' in page
    logs = page[page.index('class="logs"') :]
    db = logs[logs.index('data-service="db"') :]
    db = db[: db.index("</details>")]
    assert "not ready yet" in db and "never ready" not in db and "db starting" in db
    assert "web up" in logs
    response = live.get(f"{RUN}/test.db.log")
    assert response.status_code == 200 and response.get_data() == b"db starting\n"
    response.close()


def test_a_running_nolog_stage_s_service_logs_are_404(live: FlaskClient) -> None:
    assert live.get(f"{RUN}/quiet.db.log").status_code == 404
    assert "stray secret" not in live.get(RUN).get_data(as_text=True)
