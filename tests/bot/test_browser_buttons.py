"""The run page's Cancel and Re-run, and Approve with check runs, in a real browser
(Chromium) against the bot as users run it (`dockercise serve`), the strict fake GitHub and
the real Docker engine (SPEC §11, §12)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import docker
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.bot.fake_github import FakeGitHub
from tests.bot.running import Bot, pull_request_payload, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]

FORK_PIPELINE = """
meta: {secrets: {TOKEN: plain-secret-value}}
leak: {img: dockercise/busybox, env: [token], run: echo $TOKEN}
slow: {img: dockercise/busybox, run: sleep 120}
"""
FORK_REASON = "secrets are not available to pull requests from forks"


def _check_runs(github: FakeGitHub, sha: str, count: int, status: str) -> list[Any]:
    """The commit's `dockercise` check runs once `count` of them have `status`."""

    def found() -> list[Any] | None:
        runs = [r for r in github.check_runs_for(sha, "dockercise") if r["status"] == status]
        return runs if len(runs) >= count else None

    runs: list[Any] = wait_for(found, 90)
    return runs


def _sign_in(page: Page, github: FakeGitHub, login: str) -> None:
    github.signing_in = login
    page.get_by_text("Sign in with GitHub").first.click()
    expect(page.locator(".login")).to_have_text(login)


def test_cancel_a_running_build_then_re_run_it_from_the_run_page(
    bot: Bot,
    github: FakeGitHub,
    browser: Browser,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    github.grant_checks()
    bot.serve()
    github.grant("octo/app", "writer", "write")
    github.push("octo/app", {"README": "main\n"})
    github.push("octo/app", {".dockercise.yml": FORK_PIPELINE}, branch="from-fork")
    sha = github.open_pull_request("octo/app", 4, "from-fork")
    fork = pull_request_payload(github, "octo/app", 4, sha, "mallory/app")
    github.grant("octo/app", fork["pull_request"]["user"]["login"], "read")  # no approval
    assert bot.deliver("pull_request", fork, "pr-fork") == 202
    store = (tmp_path / "results" / "octo" / "app").as_uri()

    def sleeping() -> list[Any]:
        return docker_client.containers.list(
            filters={"label": ["dockercise.stage=slow", f"dockercise.store={store}"]}
        )

    (first,) = _check_runs(github, sha, 1, "in_progress")
    run_url = str(first["details_url"])
    assert "/results/octo/app/run/" in run_url, first
    wait_for(sleeping, 60)

    page = browser.new_page()
    try:
        page.goto(run_url)
        cancel, rerun = (page.get_by_role("button", name=n) for n in ("Cancel", "Re-run"))
        assert cancel.count() == 0 and rerun.count() == 0  # anonymous: no buttons
        _sign_in(page, github, "writer")
        expect(cancel).to_be_visible()
        assert rerun.count() == 0  # the run is running: Cancel only
        cancel.click()
        # The page shows the outcome (it reloads itself while the run changes): the stage
        # stopped is cancelled (the run is `failure`: a fork's stage failed before) ...
        slow = page.locator('tr.stage[data-stage="slow"]')
        expect(slow).to_have_attribute("data-status", "cancelled", timeout=30_000)
        expect(page.locator("#run-status")).not_to_have_text("running")
        wait_for(lambda: not sleeping(), 15)  # ... and the containers are gone
        (ended,) = _check_runs(github, sha, 1, "completed")
        assert ended["external_id"] == first["external_id"]
        assert (ended["conclusion"], ended["output"]["title"]) == (
            "cancelled",
            "0 of 2 stages passed; failed: leak; cancelled",
        )

        # Ended: Re-run, and no Cancel. A new build of the same commit, still a fork's.
        expect(rerun).to_be_visible(timeout=30_000)
        assert cancel.count() == 0
        rerun.click()
        # The new build's page, then (it refreshes itself) its run's page.
        first_run = run_url.rsplit("/", 1)[1]
        another_run = re.compile(rf"/results/octo/app/run/(?!{re.escape(first_run)})")
        expect(page).to_have_url(another_run, timeout=90_000)
        expect(page.locator("body")).to_contain_text(FORK_REASON)
        expect(page.locator("body")).to_contain_text(f"rerun_of: {first['external_id']}")
        expect(page.locator("body")).to_contain_text("sender: writer")
        runs = _check_runs(github, sha, 1, "in_progress")
        assert {r["external_id"] for r in runs}.isdisjoint({first["external_id"]})
        wait_for(sleeping, 60)
        expect(cancel).to_be_visible(timeout=30_000)  # the re-run's own page, running
        cancel.click()
        expect(slow).to_have_attribute("data-status", "cancelled", timeout=30_000)
    finally:
        page.close()
    runs = _check_runs(github, sha, 2, "completed")
    assert [r["conclusion"] for r in runs] == ["cancelled", "cancelled"]
    assert all(FORK_REASON in r["output"]["summary"] for r in runs)
    wait_for(lambda: not sleeping(), 15)
    assert github.statuses_for(sha) == []
    assert "plain-secret-value" not in bot.output()


def test_approve_with_check_runs_completes_the_waiting_check_run(
    bot: Bot, github: FakeGitHub, browser: Browser
) -> None:
    github.grant_checks()
    bot.serve()
    github.grant("octo/app", "writer", "write")
    github.push("octo/app", {"README": "main\n"})
    github.push(
        "octo/app", {".dockercise.yml": "test: {img: dockercise/busybox, run: 'true'}\n"},
        branch="from-fork",
    )  # fmt: skip
    sha = github.open_pull_request("octo/app", 5, "from-fork")
    payload = pull_request_payload(github, "octo/app", 5, sha, "mallory/app")
    payload["pull_request"]["user"]["login"] = "mallory"
    assert bot.deliver("pull_request", payload, "fork-pr") == 202
    (waiting,) = _check_runs(github, sha, 1, "queued")
    assert waiting["output"]["title"] == "waiting for approval"

    page = browser.new_page()
    try:
        page.goto(str(waiting["details_url"]))
        _sign_in(page, github, "writer")
        page.get_by_role("button", name="Approve").click()
        expect(page.locator("#run-status")).to_have_text("success", timeout=90_000)
    finally:
        page.close()
    (done,) = _check_runs(github, sha, 1, "completed")
    assert done["id"] == waiting["id"]  # the same check run, no longer queued
    assert done["conclusion"] == "success"
    assert done["external_id"] == f"{waiting['external_id']}-approved"
    assert len(github.check_runs_for(sha, "dockercise")) == 1
    assert github.statuses_for(sha) == []
