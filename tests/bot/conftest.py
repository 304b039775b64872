"""The fake GitHub, bot settings pointing at it, and a real Redis, shared by the bot's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.settings import Settings, load_settings
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import Bot, bot_env, free_port, start_redis
from tests.conftest import remove_kept_images


@pytest.fixture(autouse=True)
def no_kept_images(tmp_path: Path) -> Iterator[None]:
    """Builds of the default branch keep images (SPEC §13): a test's own are removed after it."""
    yield
    if (tmp_path / "bot-data" / "cache" / "salt").is_file():
        remove_kept_images(tmp_path)


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


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private `redis-server` on a free loopback port, nothing persisted, for this session."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def fresh_redis(redis_url: str) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_url
