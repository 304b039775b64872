"""Which mirrors go past DOCKERCISE_MIRROR_MAX (pure), and the setting's sizes."""

from __future__ import annotations

import pytest

from bot.eviction import MirrorUse, victims
from bot.settings import SettingsInvalid, load_settings
from tests.bot.fake_github import make_private_key

KEY = make_private_key()


def test_least_recently_used_go_first_until_the_rest_fit() -> None:
    mirrors = [MirrorUse("a", 10, 3.0), MirrorUse("b", 10, 1.0), MirrorUse("c", 10, 2.0)]
    assert victims(mirrors, 30) == []
    assert victims(mirrors, 25) == ["b"]
    assert victims(mirrors, 10) == ["b", "c"]
    assert victims(mirrors, 0) == ["b", "c", "a"]


def test_the_mirror_just_used_stays_even_over_the_limit() -> None:
    mirrors = [MirrorUse("big", 100, 1.0), MirrorUse("old", 5, 0.0)]
    assert victims(mirrors, 10, keep="big") == ["old"]


def _env(**extra: str) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": KEY,
        "GITHUB_WEBHOOK_SECRET": "s",
        "DOCKERCISE_PUBLIC_URL": "http://127.0.0.1:1",
        **extra,
    }


@pytest.mark.parametrize(
    ("raw", "size"),
    [("", 20 << 30), ("20g", 20 << 30), ("512M", 512 << 20), ("1048576", 1 << 20),
     ("2tb", 2 << 40), ("1k", 1024), ("1.5g", 3 << 29)],
)  # fmt: skip
def test_mirror_max_sizes(raw: str, size: int) -> None:
    assert load_settings(_env(DOCKERCISE_MIRROR_MAX=raw)).mirror_max == size


@pytest.mark.parametrize("raw", ["g", "-1g", "10kk", "20 gigabytes", "1bb"])
def test_mirror_max_refuses_what_is_not_a_size(raw: str) -> None:
    with pytest.raises(SettingsInvalid, match="DOCKERCISE_MIRROR_MAX must be a size"):
        load_settings(_env(DOCKERCISE_MIRROR_MAX=raw))
