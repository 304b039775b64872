"""Signing in and approving in a real browser (Chromium), against the bot as users run it
(`dockercise serve`), the fake GitHub's OAuth pages and the real Docker engine (SPEC §11)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.bot.fake_github import FakeGitHub
from tests.bot.running import Bot, final_status, pull_request_payload, push_payload, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]

PIPELINE = "test: {img: dockercise/busybox, run: echo private-output-77}\n"
REPO = "octo/secret"


def test_sign_in_to_see_a_private_run(bot: Bot, github: FakeGitHub, browser: Browser) -> None:
    bot.serve()
    github.private.add(REPO)
    github.grant(REPO, "reader", "read")
    sha = github.push(REPO, {".dockercise.yml": PIPELINE})
    payload = push_payload(github, REPO, sha)
    payload["repository"]["private"] = True
    assert bot.deliver("push", payload, "private-push") == 202
    run_url = final_status(github, sha)["target_url"]
    assert run_url.startswith(bot.url)

    page = browser.new_page()
    try:
        answer = page.goto(run_url)
        assert answer is not None and answer.status == 404  # nobody signed in: as if absent
        page.goto(f"{bot.url}/")
        github.signing_in = "reader"
        page.get_by_text("Sign in with GitHub").first.click()
        expect(page.locator(".login")).to_have_text("reader")
        expect(page.locator(f'tr[data-repo="{REPO}"]')).to_contain_text("success")
        page.locator(f'tr[data-repo="{REPO}"] a[href*="/run/"]').click()
        expect(page.locator("body")).to_contain_text("private-output-77")
        cookie = next(c for c in page.context.cookies() if c["name"] == "dockercise_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("Sign in with GitHub").first).to_be_visible()
        answer = page.goto(run_url)
        assert answer is not None and answer.status == 404
    finally:
        page.close()


def test_approve_a_waiting_fork_build_and_see_it_run(
    bot: Bot,
    github: FakeGitHub,
    browser: Browser,
) -> None:
    bot.serve()
    github.grant("octo/app", "writer", "write")
    github.push("octo/app", {"README": "main\n"})
    github.push("octo/app", {".dockercise.yml": PIPELINE}, branch="from-fork")
    sha = github.open_pull_request("octo/app", 5, "from-fork")
    payload = pull_request_payload(github, "octo/app", 5, sha, "mallory/app")
    payload["pull_request"]["user"]["login"] = "mallory"
    assert bot.deliver("pull_request", payload, "fork-pr") == 202

    def waiting() -> dict[str, object] | None:
        found = [s for s in github.statuses_for(sha) if s["description"] == "waiting for approval"]
        return found[0] if found else None

    status = wait_for(waiting, 60)
    assert status["state"] == "pending"
    build_page = str(status["target_url"])
    assert "/results/octo/app/build/" in build_page
    assert len(github.statuses_for(sha)) == 1  # nothing ran

    page = browser.new_page()
    try:
        page.goto(build_page)
        expect(page.locator(".build-status")).to_have_text("waiting for approval")
        assert page.get_by_role("button", name="Approve").count() == 0  # anonymous
        github.signing_in = "writer"
        page.get_by_text("Sign in with GitHub").first.click()
        expect(page.locator(".login")).to_have_text("writer")
        page.get_by_role("button", name="Approve").click()
        # The approved build's page refreshes itself until its run exists, then shows it.
        expect(page.locator("body")).to_contain_text("private-output-77", timeout=90_000)
    finally:
        page.close()
    final = final_status(github, sha, 90)
    assert final["state"] == "success", bot.output()
