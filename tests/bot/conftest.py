"""The fake GitHub and bot settings pointing at it, shared by the bot's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings, load_settings
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import Bot, bot_env, free_port


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as fake:
        yield fake


@pytest.fixture
def settings(github: FakeGitHub, tmp_path: Path) -> Settings:
    return load_settings(bot_env(github, tmp_path))


@pytest.fixture
def bot(github: FakeGitHub, tmp_path: Path) -> Iterator[Bot]:
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = bot_env(github, tmp_path, port) | {"DOCKERCISE_STALE_AFTER": "3"}
    running = Bot(env, port, logs)
    yield running
    running.stop()
