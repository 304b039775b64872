"""SPEC §10 crash containment, end to end: a crash in each step of a build's life (announce,
checkout, load, run, report) ends that build with one `error` status, one line, masked,
without the worker's paths, within a minute, never announced again; and the bot builds
the next push. Crashes are injected by tests/bot/crash_hook.py; GitHub is the strict fake."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from bot.reasons import Step
from bot.settings import load_settings
from bot.state import open_state
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import WEBHOOK_SECRET, Bot, final_status, push_payload, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PASSING = "test: {img: dockercise/busybox, run: echo all good}\n"
ROOT = Path(__file__).resolve().parents[2]


def _serve_with_crashes(bot: Bot, text: str, kind: str) -> None:
    bot.env |= {
        "PYTHONPATH": str(ROOT),
        "DOCKERCISE_TEST_CRASH_TEXT": text,
        "DOCKERCISE_TEST_CRASH_KIND": kind,
        "DOCKERCISE_TEST_LEASE": "3",
    }
    bot.start(sys.executable, "-m", "tests.bot.crash_hook", "serve", "--port", str(bot.port))
    bot.wait_healthy()


def _hostile_text(bot: Bot, github: FakeGitHub) -> tuple[str, list[str]]:
    """A crash's message holding what must never reach a commit; and those values."""
    data = bot.env["DOCKERCISE_DATA_DIR"]
    key_line = github.private_key.splitlines()[5]
    secrets = [WEBHOOK_SECRET, key_line]
    text = (
        f"open {data}/checkouts/abc/.dockercise.yml: {WEBHOOK_SECRET} {key_line}"
        f" {tempfile.gettempdir()}/dockercise-0123-x/out\nTraceback (most recent call last):"
    )
    return text, secrets


def _clean(status: dict[str, Any], bot: Bot, leaked: list[str], tokens: list[str]) -> None:
    description = status["description"]
    assert status["state"] == "error" and description.startswith("build error: ")
    assert "\n" not in description and "Traceback" not in description
    assert bot.env["DOCKERCISE_DATA_DIR"] not in description
    assert f"{tempfile.gettempdir()}/dockercise-" not in description
    assert not any(value in description for value in leaked + tokens), description
    assert "target_url" not in status["sent"]  # no URL: no field, not an empty one


@pytest.mark.parametrize("kind", ["bug", "dockercise"])
def test_a_crash_in_each_step_ends_its_build_as_one_error_and_the_bot_goes_on(
    bot: Bot, github: FakeGitHub, kind: str
) -> None:
    text, leaked = _hostile_text(bot, github)
    _serve_with_crashes(bot, text, kind)
    steps = [Step.ANNOUNCE, Step.CHECKOUT, Step.LOAD, Step.RUN, Step.REPORT]
    shas: dict[Step, str] = {}
    started = time.monotonic()
    for step in steps:
        repo = f"mallory/hostile-{step.name.lower()}"
        # The pipeline names the step too: the hook crashes announce and load on its text.
        pipeline = f"# hostile-{step.name.lower()}\n{PASSING}"
        shas[step] = github.push(repo, {".dockercise.yml": pipeline})
        payload = push_payload(github, repo, shas[step])
        assert bot.deliver("push", payload, f"hostile-{step.name.lower()}") == 202

    good = github.push("octo/app", {".dockercise.yml": PASSING})
    assert bot.deliver("push", push_payload(github, "octo/app", good), "good-1") == 202
    assert final_status(github, good)["state"] == "success", bot.output()

    for step in steps:
        sha = shas[step]
        if kind == "dockercise" and step is Step.ANNOUNCE:
            # What the bot's own errors say is the worker's to settle, with the checkout.
            assert final_status(github, sha)["state"] == "success", bot.output()
            continue
        status = final_status(github, sha, 60 - (time.monotonic() - started))
        _clean(status, bot, leaked, list(github.tokens))
        if kind == "bug":
            assert status["description"] == (
                f"build error: internal error while {step.value} (RuntimeError)"
            )
        else:  # the bot's own errors are shown, redacted
            assert "<data>" in status["description"] or "<checkout>" in status["description"]
    time.sleep(3.5)  # longer than the announcers' lease: nothing is announced or built again
    for step in steps:
        if kind == "dockercise" and step is Step.ANNOUNCE:
            continue
        posted = github.statuses_for(shas[step])
        assert [s["state"] for s in posted].count("error") == 1, posted
        assert posted[-1]["state"] == "error"
        # `build queued` once announced; `build running` once loaded; then the error
        expected = {Step.ANNOUNCE: 1, Step.CHECKOUT: 2, Step.LOAD: 2}.get(step, 3)
        assert len(posted) == expected, posted
    assert bot.procs[0].poll() is None  # the bot is still up


def test_a_build_whose_announcers_keep_dying_is_ended(bot: Bot, github: FakeGitHub) -> None:
    """Announcers that die on a commit (here: claims nobody finishes) leave it to the next
    one after the lease; the fourth claim ends it as `error` without reading it again."""
    sha = github.push("mallory/deadly", {".dockercise.yml": PASSING})
    web = bot.start(  # the web side alone: the delivery is recorded, nobody announces it
        str(Path(sys.executable).parent / "gunicorn"),
        "--bind",
        f"127.0.0.1:{bot.port}",
        "bot.web:create_bot_app()",
    )
    bot.wait_healthy()
    assert bot.deliver("push", push_payload(github, "mallory/deadly", sha), "deadly-1") == 202
    web.terminate()
    web.wait(timeout=20)
    state = open_state(load_settings(bot.env))
    try:
        for tries in (1, 2, 3):  # three announcers take it and die before they queue it
            (claim,) = wait_for(lambda: state.claim_unannounced(1, 0.5), 10)
            assert (claim.job.sha, claim.tries) == (sha, tries)
    finally:
        state.close()
    time.sleep(0.6)
    bot.serve()
    status = final_status(github, sha, 30)
    assert status["description"] == "build error: could not be announced (3 tries)"
    assert [s["state"] for s in github.statuses_for(sha)] == ["error"]
    assert "target_url" not in status["sent"]
    assert not any("/mallory/deadly/git/trees/" in path for _, path in github.calls)
