"""The settings of SPEC §10's secrets and downstream rules: read once, every bad one named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsInvalid, load_settings
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import WEBHOOK_SECRET, bot_env


def test_by_default_no_repository_takes_unbound_secrets_and_nothing_goes_downstream(
    github: FakeGitHub, tmp_path: Path
) -> None:
    settings = load_settings(bot_env(github, tmp_path))
    assert settings.legacy_secrets == frozenset()
    assert not settings.accepts_unbound_secrets("octo/app")
    assert settings.events_secret == WEBHOOK_SECRET  # the bot's own events, as before
    assert settings.downstream_secret is None  # so none to meta.downstream
    assert settings.downstream_allow.hosts == frozenset()


def test_legacy_repositories_and_the_allowance_are_read(github: FakeGitHub, tmp_path: Path) -> None:
    env = bot_env(github, tmp_path) | {
        "DOCKERCISE_LEGACY_SECRETS": " Octo/App, octo/lib ,",
        "DOCKERCISE_DOWNSTREAM_ALLOW": "127.0.0.1, events.internal",
        "DOCKERCISE_EVENTS_SECRET": "events-secret",
    }
    settings = load_settings(env)
    assert settings.legacy_secrets == {"octo/app", "octo/lib"}
    assert settings.accepts_unbound_secrets("OCTO/app")
    assert not settings.accepts_unbound_secrets("octo/other")
    assert settings.downstream_allow.hosts == {"events.internal"}
    assert settings.events_secret == settings.downstream_secret == "events-secret"
    assert "events-secret" in settings.tokens and "events-secret" not in repr(settings)


def test_bad_trust_settings_are_each_named(github: FakeGitHub, tmp_path: Path) -> None:
    env = bot_env(github, tmp_path) | {
        "DOCKERCISE_LEGACY_SECRETS": "octo/app,not-a-repo",
        "DOCKERCISE_DOWNSTREAM_ALLOW": "ftp://x.example/",
        "DOCKERCISE_EVENTS_SECRET": WEBHOOK_SECRET,
    }
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(env)
    assert caught.value.problems == [
        "DOCKERCISE_LEGACY_SECRETS must list owner/repo names, not 'not-a-repo'",
        "DOCKERCISE_DOWNSTREAM_ALLOW: 'ftp://x.example/' is not an absolute https:// URL",
        "DOCKERCISE_EVENTS_SECRET must differ from GITHUB_WEBHOOK_SECRET: whoever receives the"
        " events could forge GitHub's deliveries with it (unset it to send no meta.downstream"
        " events)",
    ]
    assert WEBHOOK_SECRET not in str(caught.value)


def test_serve_refuses_the_webhook_secret_as_events_secret(
    github: FakeGitHub, tmp_path: Path
) -> None:
    dockercise = str(Path(sys.executable).parent / "dockercise")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DOCKERCISE_"))}
    env |= bot_env(github, tmp_path) | {"DOCKERCISE_EVENTS_SECRET": WEBHOOK_SECRET}
    done = subprocess.run(
        [dockercise, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "DOCKERCISE_EVENTS_SECRET must differ from GITHUB_WEBHOOK_SECRET" in done.stderr
    assert WEBHOOK_SECRET not in done.stderr and "Traceback" not in done.stderr
