"""The bot's results site over hand-written runs of a public and a private repository, and
users of the fake GitHub signing in to it (SPEC §11): shared by the access tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bot.settings import Settings, load_settings
from bot.state import StateStore, open_state
from bot.web import create_bot_app
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import bot_env
from tests.pages.conftest import RUN_ID, StageFile, write_run

PUBLIC = "octo/public"
PRIVATE = "octo/secret"
STAGES = [StageFile("build", "success", 0, log="built\n", artefact={"app.txt": "v1"})]
USERS = {"outsider": None, "reader": "read", "writer": "write"}


def write_bot_run(results: Path, repo: str, run_id: str = RUN_ID, branch: str = "main") -> None:
    folder = write_run(results / repo, run_id, STAGES, status="success")
    run = json.loads((folder / "run.json").read_text())
    run["trigger"] = {"kind": "push", "ref": f"refs/heads/{branch}", "sha": "a" * 40}
    (folder / "run.json").write_text(json.dumps(run))


@dataclass
class SiteUnderTest:
    app: Flask
    github: FakeGitHub
    settings: Settings
    state: StateStore

    @property
    def results(self) -> Path:
        """Where the bot keeps results: `<results>/<owner>/<repo>/run/<run id>/`."""
        return Path(self.settings.results)

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def sign_in(self, client: FlaskClient, login: str, next_path: str = "/") -> TestResponse:
        """The browser's round trip: /login -> GitHub (which signs `login` in) -> callback."""
        self.github.signing_in = login
        to_github = client.get(f"/login?next={quote(next_path, safe='')}")
        assert to_github.status_code == 302, to_github.status_code
        back = requests.get(to_github.headers["Location"], allow_redirects=False, timeout=10)
        assert back.status_code == 302, back.text
        callback = urlsplit(back.headers["Location"])
        return client.get(f"{callback.path}?{callback.query}")


def make_site(github: FakeGitHub, tmp_path: Path, **extra: str) -> Iterator[SiteUnderTest]:
    env = bot_env(github, tmp_path) | extra
    settings = load_settings(env)
    results = Path(env["DOCKERCISE_RESULTS"])
    for repo in (PUBLIC, PRIVATE):
        github.push(repo, {"README": "hello\n"})
        write_bot_run(results, repo)
    github.private.add(PRIVATE)
    for login, level in USERS.items():
        github.add_user(login)
        if level is not None:
            github.grant(PUBLIC, login, level)
            github.grant(PRIVATE, login, level)
    state = open_state(settings)
    state.set_private(PUBLIC, False)
    state.set_private(PRIVATE, True)
    app = create_bot_app(env)
    try:
        yield SiteUnderTest(app, github, settings, state)
    finally:
        state.close()
