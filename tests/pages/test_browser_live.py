"""The page of a running run updates itself in a real browser (no Docker needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from pages.local import create_local_app
from runner.store.local import LocalStore
from tests.pages.conftest import StageFile, serve, write_run

pytestmark = pytest.mark.browser

RUNNING_ID = "20261125T080000000Z-1234abcd"


def test_a_running_run_page_updates_itself_when_the_run_ends(
    tmp_path: Path, browser: Browser
) -> None:
    root = tmp_path / "results"
    stages = [
        StageFile("compile", "running", log="compiling\n", finished=None),
        StageFile("package", "waiting"),
    ]
    folder = write_run(
        root, RUNNING_ID, stages, [("compile", "package")], status="running", finished=None
    )
    (folder / "package.json").unlink()
    with serve(create_local_app(LocalStore(root))) as base, browser.new_context() as context:
        page = context.new_page()
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if r.url.endswith(".json") else None)
        page.goto(f"{base}/results/local/demo/run/{RUNNING_ID}")
        expect(page.locator("#run-status")).to_have_text("running")
        assert page.locator('svg.dag g.node[data-status="running"]').count() == 1
        expect(page.locator('details[data-stage="compile"] pre')).to_contain_text("compiling")

        def write(name: str, **changes: object) -> None:
            data = json.loads((folder / name).read_text())
            data.update(changes)
            (folder / name).write_text(json.dumps(data))

        started = time.monotonic()
        write("compile.json", status="success", finished="2026-11-25T08:00:03.000Z")
        write("run.json", status="success", finished="2026-11-25T08:00:04.000Z")
        expect(page.locator("#run-status")).to_have_text("success", timeout=6000)
        assert time.monotonic() - started < 5
        assert polls, "the page never polled its JSON"
        assert (
            page.locator('svg.dag g.node[data-stage="compile"]').get_attribute("data-status")
            == "success"
        )
        assert page.locator("script[data-poll]").count() == 0  # finished: polling stops
