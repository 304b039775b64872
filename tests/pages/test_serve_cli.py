"""`dockercise serve-results`: the local store's site, on the host and port asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cli.main import main
from tests.pages.conftest import RUN_ID


def test_serve_results_serves_the_local_store(
    store_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[tuple[Flask, dict[str, Any]]] = []
    monkeypatch.setattr(Flask, "run", lambda app, **kw: served.append((app, kw)))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve-results", "--results", str(store_root), "--port", "9123"])
    assert exit_info.value.code == 0
    assert f"{store_root.as_uri()} at http://127.0.0.1:9123/" in capsys.readouterr().out
    ((app, options),) = served
    assert options == {"host": "127.0.0.1", "port": 9123}
    with app.test_client() as client:
        with client.get("/") as home:
            assert home.headers["Location"] == "/results/local/demo/"
        with client.get(f"/results/local/demo/run/{RUN_ID}") as page:
            assert page.status_code == 200


def test_serve_results_reads_the_project_store_by_default(
    store_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = store_root.parent / "project"
    (project / ".dockercise").mkdir(parents=True)
    store_root.rename(project / ".dockercise" / "results")
    served: list[Flask] = []
    monkeypatch.setattr(Flask, "run", lambda app, **kw: served.append(app))
    with pytest.raises(SystemExit):
        main(["serve-results", "-C", str(project), "--host", "0.0.0.0", "--port", "0"])
    assert "http://0.0.0.0:0/" in capsys.readouterr().out
    with served[0].test_client() as client, client.get("/results/local/demo/") as runs:
        assert RUN_ID in runs.get_data(as_text=True)


def test_serve_results_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve-results", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "70000" in capsys.readouterr().err
