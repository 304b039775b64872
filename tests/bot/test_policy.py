"""What a bot build may have, decided from its stored trust (pure)."""

from __future__ import annotations

import pytest

from bot.policy import trusted_repository


@pytest.mark.parametrize(
    ("fork", "repo", "trusted"),
    [
        (False, "octo/app", True),
        (False, "Octo/App", True),
        (False, "octo/other", False),
        (True, "octo/app", False),  # a fork's pull request to a trusted repository
    ],
)
def test_trusted_settings_never_apply_to_a_fork(fork: bool, repo: str, trusted: bool) -> None:
    assert trusted_repository(fork, repo, ["octo/app"]) is trusted
