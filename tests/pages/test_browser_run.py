"""The site in a real browser, over a real run stored by `dockercise run` (Docker + Chromium).

Screenshots go to a temp dir; with DOCKERCISE_SCREENSHOTS=DIR (as for the
README: DOCKERCISE_SCREENSHOTS=docs/screenshots) they are kept there.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from pages.local import create_local_app
from runner.store.local import LocalStore

# The integration tier's fixtures: a project dir, the CLI in-process, and its leak check.
from tests.integration.conftest import IMAGE, Outcome, dockercise, no_leaks, project  # noqa: F401
from tests.pages.conftest import serve

pytestmark = [pytest.mark.docker, pytest.mark.browser]

Run = Callable[..., Outcome]
Project = Callable[..., Path]

HIDDEN = "hidden-output-42"
PIPELINE = f"""
    meta: {{name: webdemo}}
    build:
      img: {IMAGE}
      run: echo "compiling app"; echo "app 1.0" > $OUT/app.txt
    secret:
      img: {IMAGE}
      noLog: true
      run: echo {HIDDEN}
    test:
      img: {IMAGE}
      after: build
      run: echo "running 3 tests"; echo "test_login failed" >&2; exit 3
    deploy:
      img: {IMAGE}
      after: [test, secret]
      run: echo deploying
    "☃":
      img: {IMAGE}
      after: build
      run: echo "snow ☃"
    """
STATUSES = {
    "build": "success",
    "secret": "success",
    "test": "failure",
    "deploy": "skipped",
    "☃": "success",
}


@pytest.fixture
def stored(project: Project, dockercise: Run) -> tuple[Path, str]:  # noqa: F811
    """Two real runs of `webdemo`: `build` alone (success), then everything (failure)."""
    root = project(PIPELINE)
    assert dockercise(root, "run", "build").code == 0
    result = dockercise(root, "run")
    assert result.code == 1, result.out
    runs = root / ".dockercise" / "results"
    return runs, max(p.name for p in (runs / "run").iterdir())


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("DOCKERCISE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)
    assert (folder / name).stat().st_size > 10_000


def test_the_run_list_of_a_real_store(
    stored: tuple[Path, str], browser: Browser, tmp_path: Path
) -> None:
    root, run_id = stored
    with (
        serve(create_local_app(LocalStore(root))) as base,
        browser.new_context(viewport={"width": 1100, "height": 420}) as context,
    ):
        page = context.new_page()
        page.goto(base)  # / leads to the pipeline's run list
        assert page.url == f"{base}/results/local/webdemo/"
        rows = page.locator("tr.run")
        expect(rows).to_have_count(2)
        assert [rows.nth(i).get_attribute("data-status") for i in range(2)] == [
            "failure",
            "success",
        ]
        assert rows.first.get_attribute("data-run") == run_id
        expect(rows.first).to_contain_text("manual")
        _screenshot(page, tmp_path, "runs.png")
        rows.first.locator("a").click()
        expect(page).to_have_url(f"{base}/results/local/webdemo/run/{run_id}")


def test_the_run_page_of_a_real_run(
    stored: tuple[Path, str], browser: Browser, tmp_path: Path
) -> None:
    root, run_id = stored
    run = json.loads((root / "run" / run_id / "run.json").read_text())
    with (
        serve(create_local_app(LocalStore(root))) as base,
        browser.new_context(viewport={"width": 1100, "height": 900}) as context,
    ):
        page = context.new_page()
        page.goto(f"{base}/results/local/webdemo/run/{run_id}")
        expect(page.locator("#run-status")).to_have_text("failure")

        nodes = page.locator("svg.dag g.node")
        expect(nodes).to_have_count(len(STATUSES))
        expect(page.locator("svg.dag path.edge")).to_have_count(len(run["edges"]))
        assert len(run["edges"]) == 4
        drawn = {
            nodes.nth(i).get_attribute("data-stage"): nodes.nth(i).get_attribute("data-status")
            for i in range(len(STATUSES))
        }
        assert drawn == STATUSES
        failed = page.locator('svg.dag g.node[data-stage="test"] rect')
        assert failed.evaluate("r => getComputedStyle(r).fill") == "rgb(207, 34, 46)"
        assert page.locator("svg.dag").bounding_box()["width"] > 300  # type: ignore[index]

        rows = page.locator("tr.stage")
        assert {
            rows.nth(i).get_attribute("data-stage"): rows.nth(i).get_attribute("data-status")
            for i in range(rows.count())
        } == STATUSES
        expect(page.locator('tr.stage[data-stage="test"]')).to_contain_text("exit 3")

        test_log = page.locator('details[data-stage="test"] pre')
        expect(test_log).to_be_visible()  # a failed stage's log is open
        expect(test_log).to_contain_text("running 3 tests")
        expect(test_log).to_contain_text("test_login failed")
        expect(page.locator('details[data-stage="☃"] pre')).to_contain_text("snow ☃")
        expect(page.locator('details[data-stage="secret"]')).to_contain_text(
            "output hidden (noLog)"
        )
        assert HIDDEN not in page.content()

        raw = page.request.get(f"{base}/results/local/webdemo/run/{run_id}/test.log")
        assert raw.ok and "test_login failed" in raw.text()
        link = page.locator('tr.stage[data-stage="build"] a.artefact-link')
        artefact = page.request.get(f"{base}{link.get_attribute('href')}")
        with zipfile.ZipFile(io.BytesIO(artefact.body())) as z:
            assert z.read("app.txt") == b"app 1.0\n"
        assert (
            page.request.get(f"{base}/results/local/webdemo/run/{run_id}/secret.log").status == 404
        )
        _screenshot(page, tmp_path, "run.png")

        page.locator('svg.dag g.node[data-stage="☃"] a').click()  # a node leads to its log
        names = [s["name"] for s in run["stages"]]
        assert page.url.endswith(f"#stage-{names.index('☃')}")

    with browser.new_context(java_script_enabled=False) as context:  # no JS: same page
        page = context.new_page()
        with serve(create_local_app(LocalStore(root))) as base:
            page.goto(f"{base}/results/local/webdemo/run/{run_id}")
            expect(page.locator("svg.dag g.node")).to_have_count(len(STATUSES))
            expect(page.locator('details[data-stage="test"] pre')).to_contain_text("test_login")
