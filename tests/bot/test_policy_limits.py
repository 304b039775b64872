"""bot/policy.py: what every bot build may have under the operator's limits (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import BUILD_NETWORK, allowance, room_for_build
from bot.settings import SettingsInvalid, load_settings
from runner import pipeline
from runner.limits import Limits
from tests.conftest import WritePipeline

G = 1 << 30


def test_a_bot_build_gets_the_limits_and_no_network_for_image_builds(
    write_pipeline: WritePipeline,
) -> None:
    root = write_pipeline({".dockercise.yml": "a: {img: busybox, vol: ['/etc:/x'], run: x}\n"})
    loaded = pipeline.load(root)
    assert loaded is not None
    limits = Limits.defaults()
    allowed = allowance(loaded, fork=False, allowed_host_paths=(), limits=limits)
    assert allowed.limits == limits
    assert allowed.build_network == BUILD_NETWORK == "none"
    assert "DOCKERCISE_ALLOWED_HOST_PATHS" in allowed.denied["a"]


@pytest.mark.parametrize(
    ("free", "taken"), [(6 * G, True), (5 * G, True), (5 * G - 1, False), (0, False)]
)
def test_a_worker_short_of_disk_takes_no_build(free: int, taken: bool) -> None:
    why = room_for_build(free, Limits(min_free=5 * G))
    assert (why is None) is taken
    if why is not None:
        assert "less than DOCKERCISE_MIN_FREE (5 GiB)" in why
    assert room_for_build(0, Limits()) is None  # no watermark: always room


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----",
        "GITHUB_WEBHOOK_SECRET": "s",
        "DOCKERCISE_PUBLIC_URL": "https://ci.example.com",
        "DOCKERCISE_DATA_DIR": str(tmp_path),
        **extra,
    }


def test_the_settings_carry_the_limits_defaults_filled_in(tmp_path: Path) -> None:
    settings = load_settings(_env(tmp_path, DOCKERCISE_STAGE_MEMORY="512m"))
    assert settings.limits == Limits(**{**Limits.defaults().__dict__, "stage_memory": 512 << 20})


def test_a_bad_limit_stops_the_bot_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(_env(tmp_path, DOCKERCISE_STAGE_DISK="ten gigs", DOCKERCISE_MAX_STAGES="0"))
    assert caught.value.exit_code == 2
    problems = caught.value.problems
    assert any(p.startswith("DOCKERCISE_STAGE_DISK must be a size like 10g") for p in problems)
    assert any(p.startswith("DOCKERCISE_MAX_STAGES must be more than 0") for p in problems)
