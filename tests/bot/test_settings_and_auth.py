"""Settings parsed once (every bad one named), and installation tokens that refresh."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.github_api import GitHubApp, GitHubFailed
from bot.settings import SettingsInvalid, load_settings
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import bot_env


def test_every_missing_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(
            {
                "GITHUB_APP_ID": "twelve",
                "DOCKERCISE_REDIS_URL": "localhost:6379",
                "DOCKERCISE_KEEP_DAYS": "0",
                "DOCKERCISE_CACHE_DAYS": "a week",
            }
        )
    message = str(caught.value)
    for name in (
        "GITHUB_APP_ID must be a whole number",
        "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is not set",
        "GITHUB_WEBHOOK_SECRET is not set",
        "DOCKERCISE_PUBLIC_URL",
        "DOCKERCISE_REDIS_URL must be redis://",
        "DOCKERCISE_KEEP_DAYS must be at least 1",
        "DOCKERCISE_CACHE_DAYS must be a whole number",
    ):
        assert name in message


def test_private_key_from_a_file(github: FakeGitHub, tmp_path: Path) -> None:
    env = bot_env(github, tmp_path)
    key_file = tmp_path / "app.pem"
    key_file.write_text(env.pop("GITHUB_PRIVATE_KEY"))
    settings = load_settings(env | {"GITHUB_PRIVATE_KEY_PATH": str(key_file)})
    assert settings.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert "PRIVATE KEY" not in repr(settings)  # never printed with the settings
    with pytest.raises(SettingsInvalid, match="cannot read"):
        load_settings(env | {"GITHUB_PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")})


def test_serve_stops_at_once_naming_bad_settings(tmp_path: Path) -> None:
    dockercise = str(Path(sys.executable).parent / "dockercise")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DOCKERCISE_"))}
    done = subprocess.run(
        [dockercise, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "GITHUB_APP_ID is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_installation_tokens_are_shared_and_refresh_before_they_expire(github: FakeGitHub) -> None:
    github.push("octo/app", {"README": "x\n"})
    app = GitHubApp(github.app_id, github.private_key, github.url)
    github.token_ttl = 3600
    first = app.installation("octo/app").token
    assert app.installation("octo/app").token == first  # builds share a live token
    minted = [c for c in github.calls if c[1].endswith("/access_tokens")]
    assert len(minted) == 1
    github.token_ttl = 21  # PyGithub renews within 20 s of the end
    short = GitHubApp(github.app_id, github.private_key, github.url).installation("octo/app")
    token = short.token
    time.sleep(1.5)
    assert short.token != token
    assert ("GET", "/repos/octo/app/installation") in github.calls


def test_an_app_not_installed_is_a_clear_error(github: FakeGitHub) -> None:
    app = GitHubApp(github.app_id, github.private_key, github.url)
    with pytest.raises(GitHubFailed, match="the app is not installed for octo/nowhere"):
        app.installation("octo/nowhere")
