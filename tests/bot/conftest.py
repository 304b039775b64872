"""The fake GitHub and bot settings pointing at it, shared by the bot's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings, load_settings
from tests.bot.fake_github import FakeGitHub

WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as fake:
        yield fake


def bot_env(github: FakeGitHub, tmp_path: Path, port: int = 8080) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": str(github.app_id),
        "GITHUB_PRIVATE_KEY": github.private_key,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": github.url,
        "DOCKERCISE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DOCKERCISE_DATA_DIR": str(tmp_path / "bot-data"),
        "DOCKERCISE_RESULTS": str(tmp_path / "results"),
    }


@pytest.fixture
def settings(github: FakeGitHub, tmp_path: Path) -> Settings:
    return load_settings(bot_env(github, tmp_path))
